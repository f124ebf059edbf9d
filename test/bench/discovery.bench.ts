// `node --import tsx test/bench/discovery.bench.ts` (part of `npm run bench`; needs `npm run build`).
// Three parts, each printed as it finishes; asserts nothing; everything on loopback.
// 1. Footprint: RSS of the compiled proxy (bin/meshlet.js, the sidecar's Node flags) idle (3 s and 15 s) after a few
//    requests, with a static --upstream list beside Kubernetes discovery against the replay API server
//    (plain HTTP kubeconfig, and HTTPS with a CA and token as in a Pod).
// 2. Propagation: from an EndpointSlice update leaving the (replayed) API server to the first request
//    the real `meshlet proxy` process sends to the new endpoint, while a client keeps sending keep-alive
//    HTTP/1.1 requests naming the Service. Aim: under 100 ms. Bounded: ITERATIONS updates, each waited
//    on for at most WAIT_MS (backends on 127.0.0.x).
// 3. Scale: N sidecar discovery clients (KubernetesSource, each with its own connections, as N Pods
//    would have), spread over SCALE_WORKERS child processes, all calling one Service; per EndpointSlice
//    change the API side's bytes written and CPU (the replay server runs alone in this process), and
//    the time until the last client saw the change; connections held. N = SCALE_SIZES.
//    Then the same with the shared watcher: one `meshlet discovery` process (from source) watches the
//    replay API server and N SharedWatcherSource clients subscribe to it; the API side's figures beside
//    the watcher's own (CPU and bytes written, from /proc), and an extrapolation to SCALE_EXTRAPOLATE_TO
//    meshed Pods. BENCH_SCALE_MODES="shared" runs one mode only.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../src/common/logger.js';
import { KubernetesSource } from '../../sidecar/discovery/kubernetes.js';
import { DISCOVERY_TOKEN_AUDIENCE } from '../../src/common/contract.js';
import { SharedWatcherSource } from '../../sidecar/discovery/shared-watcher-source.js';
import type { EndpointSource } from '../../sidecar/discovery/source.js';
import { loadKubeConfig } from '../../sidecar/discovery/kube-config.js';
import { MESHLET_BUILT_ARGS, startMeshlet, type MeshletProcess } from '../../tools/meshlet-process.js';
import { endpointSliceObject, KubeApiServer, serviceObject } from '../helpers/kube-api.js';
import { driveTraffic, startBackends, startProxyProcess } from '../helpers/traffic-kit.js';
import { PROXY_NODE_ARGS, PROXY_RUN_ENV } from './bench-kit.js';

const FOOTPRINT_REQUESTS = 50;
const FIXED_RATE_RPS = 1000;
const FIXED_RATE_SECONDS = 5;
const PACE_INTERVAL_MS = 10;
const PACED_SOCKETS = 16;
/** Probes as the injector sets them (kubelet opens a connection per probe): path and period. */
const KUBELET_PROBES: Array<[string, number]> = [
  ['/ready', 5000],
  ['/live', 10_000],
];
/** BENCH_FOOTPRINT_ONLY=1 runs the footprint part alone; BENCH_SCALE_ONLY=1 the scale part alone. */
const FOOTPRINT_ONLY = process.env.BENCH_FOOTPRINT_ONLY === '1';
const SCALE_ONLY = process.env.BENCH_SCALE_ONLY === '1';
/** After the last request, the proxy is left alone this long before its RSS is first read. */
const IDLE_SETTLE_MS = 3000;
/**
 * ...and this long (from the last request) before it is read again: V8's memory reducer collects
 * garbage and returns pages about 8 s after allocation stops, so this is what an idle Pod shows.
 */
const SETTLED_IDLE_MS = 15_000;
/** BENCH_SCALE_SIZES="10,50" for a quicker run. */
const SCALE_SIZES = (process.env.BENCH_SCALE_SIZES ?? '10,100,500').split(',').map(Number);
const SCALE_WORKERS = 4;
const SCALE_CHANGES = 5;
/** How long every client has to see one change before it counts as missed. */
const SCALE_WAIT_MS = 30_000;
const SCALE_START_TIMEOUT_MS = 120_000;
type ScaleMode = 'direct' | 'shared';
const SCALE_MODES = (process.env.BENCH_SCALE_MODES ?? 'direct,shared').split(',') as ScaleMode[];
/** The size the scale figures are extrapolated to (issue 14's goal). */
const SCALE_EXTRAPOLATE_TO = 5000;
/** The sidecars' token for the shared watcher (accepted by the replay server's TokenReviews). */
const BENCH_DISCOVERY_TOKEN = 'bench-discovery-token';
const ITERATIONS = 20;
const WAIT_MS = 5000;
const POLICIES = ['round-robin', 'peak-ewma'];
const BASE = '127.0.0.2';
const NEW_ADDRESSES = Array.from({ length: ITERATIONS }, (_, i) => `127.0.0.${10 + i}`);

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function measure(policy: string): Promise<{ samples: number[]; missed: number; requests: number; failures: number }> {
  const backends = await startBackends([BASE, ...NEW_ADDRESSES]);
  const api = await KubeApiServer.start({ loadFixtures: false });
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-bench-'));
  const slice = (addresses: string[]) =>
    endpointSliceObject({ name: 'bench-1', namespace: 'demo', service: 'bench', endpoints: addresses.map((ip, i) => ({ ip, pod: `bench-${i}` })), ports: [{ port: backends.port }] });
  api.upsert('services', serviceObject({ name: 'bench', namespace: 'demo', clusterIP: '10.96.0.200', ports: [{ port: 80, targetPort: backends.port }] }));
  api.upsert('endpointslices', slice([BASE]));
  const proxy = await startProxyProcess(['--kubeconfig', await api.writeKubeconfig(dir), '--namespace', 'demo', '--lb-policy', policy]);
  const traffic = driveTraffic(proxy.listening['port'], 'bench.demo.svc.cluster.local', ITERATIONS * WAIT_MS + 30_000);
  const samples: number[] = [];
  let missed = 0;
  try {
    const warmupBy = Date.now() + WAIT_MS;
    while (traffic.results.length < 200) {
      if (Date.now() > warmupBy) throw new Error(`warm-up: only ${traffic.results.length} requests through the proxy in ${WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const address of NEW_ADDRESSES) {
      const sentAt = performance.now();
      api.upsert('endpointslices', slice([BASE, address]));
      const deadline = sentAt + WAIT_MS;
      while (!backends.firstSeen.has(address) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
      const seenAt = backends.firstSeen.get(address);
      if (seenAt === undefined) missed++;
      else samples.push(seenAt - sentAt);
      api.upsert('endpointslices', slice([BASE]));
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await traffic.stop();
    await proxy.stop();
    await api.close();
    await backends.close();
    await rm(dir, { recursive: true, force: true });
  }
  return { samples: samples.sort((a, b) => a - b), missed, requests: traffic.results.length, failures: traffic.results.filter((r) => r.status !== 200).length };
}

// ---------------------------------------------------------------- 1. footprint

interface FootprintRow {
  label: string;
  idleRssMiB: number;
  settledRssMiB: number;
  /** VmHWM after the fixed-rate run: the peak so far, under that load. */
  loadedHwmMiB: number;
  served: number;
  failed: number;
  probesAnswered: number;
}

function memoryOf(pid: number): { rssMiB: number; hwmMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 };
}

/**
 * HTTP/1.1 GETs naming `host` at `rps` (a batch every PACE_INTERVAL_MS over keep-alive sockets) for
 * `seconds`; resolves with how many got a 200 and how many did not.
 */
async function pacedLoad(port: number, host: string, rps: number, seconds: number): Promise<{ ok: number; failed: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: PACED_SOCKETS });
  const perTick = Math.max(1, Math.round((rps * PACE_INTERVAL_MS) / 1000));
  const counts = { ok: 0, failed: 0 };
  const inFlight = new Set<Promise<void>>();
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent, headers: { host }, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) counts.ok++;
          else counts.failed++;
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', () => {
        counts.failed++;
        resolve();
      });
      req.end();
    });
  const started = performance.now();
  for (let tick = 0; tick < (seconds * 1000) / PACE_INTERVAL_MS; tick++) {
    for (let i = 0; i < perTick; i++) {
      const pending = one().then(() => {
        inFlight.delete(pending);
      });
      inFlight.add(pending);
    }
    const wait = started + (tick + 1) * PACE_INTERVAL_MS - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.all(inFlight);
  agent.destroy();
  return counts;
}

/**
 * GETs each probe path on the admin port at its period, on a new connection each time, until
 * stopped; `answered` counts the 200s.
 */
function probeLikeKubelet(adminPort: number): { answered: () => number; stop: () => void } {
  let answered = 0;
  const timers = KUBELET_PROBES.map(([path, periodMs]) =>
    setInterval(() => {
      const req = request({ host: '127.0.0.1', port: adminPort, path, agent: false, timeout: 1000 }, (res) => {
        if (res.statusCode === 200) answered++;
        res.resume();
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => undefined);
      req.end();
    }, periodMs),
  );
  return { answered: () => answered, stop: () => timers.forEach(clearInterval) };
}

async function footprint(): Promise<FootprintRow[]> {
  const backends = await startBackends([BASE]);
  const plain = await KubeApiServer.start({ loadFixtures: false });
  const tls = await KubeApiServer.start({ loadFixtures: false, tls: true, token: 'bench-token' });
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-bench-'));
  const rows: FootprintRow[] = [];
  let watcher: MeshletProcess | undefined;
  try {
    for (const api of [plain, tls]) {
      api.upsert('services', serviceObject({ name: 'web', namespace: 'demo', clusterIP: '10.96.0.111', ports: [{ port: 80, targetPort: backends.port }] }));
      api.upsert('endpointslices', endpointSliceObject({ name: 'web-1', namespace: 'demo', service: 'web', endpoints: [{ ip: BASE, pod: 'web-0' }], ports: [{ port: backends.port }] }));
    }
    const tlsKubeconfig = join(dir, 'kubeconfig-tls');
    await writeFile(tlsKubeconfig, tls.kubeconfig('demo'), { mode: 0o600 });
    plain.acceptToken(BENCH_DISCOVERY_TOKEN, 'system:serviceaccount:demo:default', [DISCOVERY_TOKEN_AUDIENCE]);
    const tokenFile = join(dir, 'discovery-token');
    await writeFile(tokenFile, BENCH_DISCOVERY_TOKEN, { mode: 0o600 });
    watcher = await startMeshlet(['discovery', '--listen', '127.0.0.1:0', '--kubeconfig', await plain.writeKubeconfig(dir)]);
    const cases: Array<[string, string[]]> = [
      ['static --upstream list', ['--upstream', `${BASE}:${backends.port}`]],
      ['Kubernetes, kubeconfig, HTTP', ['--kubeconfig', await plain.writeKubeconfig(dir), '--namespace', 'demo']],
      ['Kubernetes, HTTPS + CA + token', ['--kubeconfig', tlsKubeconfig, '--namespace', 'demo']],
      ['shared watcher (--discovery-server)', ['--discovery-server', `127.0.0.1:${watcher.listening['port']}`, '--discovery-token-file', tokenFile, '--namespace', 'demo']],
    ];
    for (const [label, args] of cases) {
      const proxy = await startMeshlet(['proxy', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--debug-admin', 'off', ...args], {
        command: [...PROXY_NODE_ARGS, ...MESHLET_BUILT_ARGS],
        env: PROXY_RUN_ENV,
      });
      const probes = probeLikeKubelet(proxy.listening['admin'].port);
      try {
        const traffic = driveTraffic(proxy.listening['port'], 'web.demo:80', 30_000);
        const deadline = Date.now() + 30_000;
        while (traffic.results.length < FOOTPRINT_REQUESTS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        await traffic.stop();
        await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
        const idle = memoryOf(proxy.child.pid!);
        await new Promise((r) => setTimeout(r, SETTLED_IDLE_MS - IDLE_SETTLE_MS));
        const settled = memoryOf(proxy.child.pid!);
        const load = await pacedLoad(proxy.listening['port'], 'web.demo:80', FIXED_RATE_RPS, FIXED_RATE_SECONDS);
        rows.push({ label, idleRssMiB: idle.rssMiB, settledRssMiB: settled.rssMiB, loadedHwmMiB: memoryOf(proxy.child.pid!).hwmMiB, served: traffic.results.filter((r) => r.status === 200).length + load.ok, failed: load.failed, probesAnswered: probes.answered() });
      } finally {
        probes.stop();
        await proxy.stop();
      }
    }
  } finally {
    await watcher?.stop();
    await plain.close();
    await tls.close();
    await backends.close();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

// ---------------------------------------------------------------- 3. scale

type WorkerMessage = { op: 'ready' } | { op: 'seen'; address: string; lastAt: number } | { op: 'failed'; error: string };
type ParentMessage = { op: 'start'; mode: ScaleMode; kubeconfig: string; server: { host: string; port: number }; tokenFile: string; count: number } | { op: 'expect'; address: string };

const nowMs = () => performance.timeOrigin + performance.now();

/** A child process holding `count` discovery clients; tells the parent when all of them see an address. */
async function runScaleWorker(): Promise<void> {
  const send = (message: WorkerMessage) => process.send!(message);
  const sources: EndpointSource[] = [];
  const seenAt: Array<Map<string, number>> = [];
  const waiting = new Set<string>();
  const report = (address: string) => {
    if (!waiting.has(address) || !seenAt.every((seen) => seen.has(address))) return;
    waiting.delete(address);
    send({ op: 'seen', address, lastAt: Math.max(...seenAt.map((seen) => seen.get(address)!)) });
  };
  process.on('message', (message: ParentMessage) => {
    if (message.op === 'expect') {
      waiting.add(message.address);
      report(message.address);
      return;
    }
    void (async () => {
      const log = createLogger({ level: 'warn' });
      for (let i = 0; i < message.count; i++) {
        const source =
          message.mode === 'direct'
            ? new KubernetesSource(await loadKubeConfig({ kubeconfig: message.kubeconfig, inCluster: false }), { namespace: 'demo', clusterDomain: 'cluster.local', firstSyncTimeoutMs: 60_000 }, log)
            : new SharedWatcherSource({ server: message.server, tokenFile: message.tokenFile, namespace: 'demo', clusterDomain: 'cluster.local', fallbackAfterMs: 3_600_000, firstSyncTimeoutMs: 60_000 }, log);
        sources.push(source);
        const seen = new Map<string, number>();
        seenAt.push(seen);
        const target = await source.resolve({ authority: 'bench.demo:80' });
        if (!target) throw new Error(`client ${i}: bench.demo:80 did not resolve`);
        const record = () => {
          const at = nowMs();
          for (const endpoint of target.endpoints.all) if (!seen.has(endpoint.host)) seen.set(endpoint.host, at);
          for (const address of waiting) report(address);
        };
        target.subscribe(record);
        record();
      }
      send({ op: 'ready' });
    })().catch((err: Error) => send({ op: 'failed', error: err.stack ?? err.message }));
  });
  process.on('disconnect', () => {
    void Promise.all(sources.map((s) => s.close())).finally(() => process.exit(0));
  });
}

interface ScaleRow {
  mode: ScaleMode;
  clients: number;
  /** The shared watcher's own CPU and bytes written per change (shared mode). */
  watcherCpuMsPerChange: number;
  watcherBytesPerChange: number;
  connections: number;
  watches: number;
  bytesPerChange: number;
  cpuMsPerChange: number;
  lastSeenMs: number[];
  missed: number;
}

/** CPU time (ms) and bytes written through write(2) (sockets included) by a process, from /proc. */
function processCounters(pid: number): { cpuMs: number; writtenBytes: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return { cpuMs: (ticks * 1000) / CLOCK_TICKS_PER_SECOND, writtenBytes: Number(/^wchar: (\d+)$/m.exec(io)?.[1] ?? NaN) };
}
/** USER_HZ: the unit of utime and stime in /proc/PID/stat (100 on every Linux we run on). */
const CLOCK_TICKS_PER_SECOND = 100;

async function measureScale(mode: ScaleMode, clients: number): Promise<ScaleRow> {
  const api = await KubeApiServer.start({ loadFixtures: false });
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-bench-'));
  const workers: ChildProcess[] = [];
  let watcher: MeshletProcess | undefined;
  const slice = (addresses: string[]) => endpointSliceObject({ name: 'bench-1', namespace: 'demo', service: 'bench', endpoints: addresses.map((ip, i) => ({ ip, pod: `bench-${i}` })), ports: [{ port: 8080 }] });
  try {
    api.upsert('services', serviceObject({ name: 'bench', namespace: 'demo', clusterIP: '10.96.0.200', ports: [{ port: 80, targetPort: 8080 }] }));
    const addresses = ['10.1.0.1'];
    api.upsert('endpointslices', slice(addresses));
    const kubeconfig = await api.writeKubeconfig(dir);
    const tokenFile = join(dir, 'discovery-token');
    await writeFile(tokenFile, BENCH_DISCOVERY_TOKEN, { mode: 0o600 });
    api.acceptToken(BENCH_DISCOVERY_TOKEN, 'system:serviceaccount:demo:default', [DISCOVERY_TOKEN_AUDIENCE]);
    if (mode === 'shared') watcher = await startMeshlet(['discovery', '--listen', '127.0.0.1:0', '--kubeconfig', kubeconfig]);
    const server = { host: '127.0.0.1', port: (watcher?.listening['port'] as number | undefined) ?? 0 };
    const perWorker = Math.ceil(clients / SCALE_WORKERS);
    const messages: WorkerMessage[] = [];
    let notify: (() => void) | undefined;
    for (let assigned = 0; assigned < clients; assigned += perWorker) {
      const worker = fork(fileURLToPath(import.meta.url), ['scale-worker'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      worker.on('message', (message: WorkerMessage) => {
        messages.push(message);
        notify?.();
      });
      worker.on('error', () => undefined);
      workers.push(worker);
      worker.send({ op: 'start', mode, kubeconfig, server, tokenFile, count: Math.min(perWorker, clients - assigned) } satisfies ParentMessage);
    }
    const waitFor = async (check: () => boolean, timeoutMs: number): Promise<boolean> => {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        const failed = messages.find((m) => m.op === 'failed');
        if (failed) throw new Error(`a scale worker failed: ${failed.error}`);
        if (Date.now() > deadline) return false;
        await new Promise<void>((resolve) => {
          notify = resolve;
          setTimeout(resolve, 100).unref();
        });
      }
      return true;
    };
    if (!(await waitFor(() => messages.filter((m) => m.op === 'ready').length === workers.length, SCALE_START_TIMEOUT_MS))) throw new Error(`${clients} clients did not start within ${SCALE_START_TIMEOUT_MS} ms`);
    await api.waitForWatches('endpointslices', mode === 'direct' ? clients : 1, SCALE_START_TIMEOUT_MS);
    const lastSeenMs: number[] = [];
    let bytes = 0;
    let cpuUs = 0;
    let watcherCpuMs = 0;
    let watcherBytes = 0;
    let missed = 0;
    for (let change = 0; change < SCALE_CHANGES; change++) {
      const address = `10.1.0.${change + 2}`;
      addresses.push(address);
      const before = { stats: api.transportStats(), cpu: process.cpuUsage(), watcher: watcher && processCounters(watcher.child.pid!) };
      const sentAt = nowMs();
      api.upsert('endpointslices', slice(addresses));
      for (const worker of workers) worker.send({ op: 'expect', address } satisfies ParentMessage);
      const seen = () => messages.filter((m): m is Extract<WorkerMessage, { op: 'seen' }> => m.op === 'seen' && m.address === address);
      if (!(await waitFor(() => seen().length === workers.length, SCALE_WAIT_MS))) {
        missed++;
        continue;
      }
      const cpu = process.cpuUsage(before.cpu);
      cpuUs += cpu.user + cpu.system;
      bytes += api.transportStats().bytesWritten - before.stats.bytesWritten;
      if (watcher && before.watcher) {
        const after = processCounters(watcher.child.pid!);
        watcherCpuMs += after.cpuMs - before.watcher.cpuMs;
        watcherBytes += after.writtenBytes - before.watcher.writtenBytes;
      }
      lastSeenMs.push(Math.max(...seen().map((m) => m.lastAt)) - sentAt);
    }
    const measured = SCALE_CHANGES - missed;
    return {
      mode,
      clients,
      watcherCpuMsPerChange: watcherCpuMs / Math.max(1, measured),
      watcherBytesPerChange: watcherBytes / Math.max(1, measured),
      connections: api.transportStats().openConnections,
      watches: api.openWatches(),
      bytesPerChange: bytes / Math.max(1, measured),
      cpuMsPerChange: cpuUs / 1000 / Math.max(1, measured),
      lastSeenMs: lastSeenMs.sort((a, b) => a - b),
      missed,
    };
  } finally {
    for (const worker of workers) if (worker.connected) worker.disconnect();
    await Promise.all(workers.map((w) => (w.exitCode === null && w.signalCode === null ? once(w, 'exit') : undefined)));
    await watcher?.stop();
    await api.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** A figure at SCALE_EXTRAPOLATE_TO from the two largest sizes measured (linear in N). */
function extrapolate(rows: ScaleRow[], figure: (row: ScaleRow) => number): number {
  const [a, b] = rows.slice(-2);
  if (!a || !b || a.clients === b.clients) return b ? (figure(b) * SCALE_EXTRAPOLATE_TO) / b.clients : NaN;
  const slope = (figure(b) - figure(a)) / (b.clients - a.clients);
  return figure(b) + slope * (SCALE_EXTRAPOLATE_TO - b.clients);
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  if (!SCALE_ONLY) await footprintAndPropagation();
  if (!FOOTPRINT_ONLY) await scale();
  console.log(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

async function footprintAndPropagation(): Promise<void> {
  console.log(
    `footprint: the compiled proxy (node ${PROXY_NODE_ARGS.join(' ')} bin/meshlet.js proxy): RSS idle ${IDLE_SETTLE_MS} ms and ${SETTLED_IDLE_MS} ms after ${FOOTPRINT_REQUESTS} requests naming web.demo (kubelet's probes throughout), then peak RSS (VmHWM) after ${FIXED_RATE_SECONDS} s of HTTP/1.1 GETs at ${FIXED_RATE_RPS}/s`,
  );
  for (const row of await footprint()) {
    console.log(`  ${row.label.padEnd(36)} RSS idle ${row.idleRssMiB.toFixed(1)} / ${row.settledRssMiB.toFixed(1)} MiB  peak @${FIXED_RATE_RPS}/s ${row.loadedHwmMiB.toFixed(1)} MiB  (${row.served} requests served, ${row.failed} failed; ${row.probesAnswered} probes answered)`);
  }
  if (FOOTPRINT_ONLY) return;
  console.log(`discovery: EndpointSlice MODIFIED event written by the replay API server -> first request at the new endpoint, through the real meshlet proxy (${ITERATIONS} updates, sequential keep-alive HTTP/1.1 client)`);
  for (const policy of POLICIES) {
    const { samples, missed, requests, failures } = await measure(policy);
    const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
    console.log(
      `  --lb-policy ${policy.padEnd(11)} p50 ${fmt(percentile(samples, 50))}  p95 ${fmt(percentile(samples, 95))}  max ${fmt(samples.at(-1) ?? NaN)}  (n=${samples.length}, not reached within ${WAIT_MS} ms: ${missed}; ${requests} requests, ${failures} failed; aim < 100 ms)`,
    );
  }
}

async function scale(): Promise<void> {
  for (const mode of SCALE_MODES) {
    console.log(
      mode === 'direct'
        ? `scale, direct: N discovery clients (one KubernetesSource each, ${SCALE_WORKERS} processes), one Service, ${SCALE_CHANGES} EndpointSlice changes each; API side = the replay server alone in this process`
        : `scale, shared watcher: one \`meshlet discovery\` process, N SharedWatcherSource clients (${SCALE_WORKERS} processes) subscribed to it; API side as above, watcher = its CPU and bytes written (/proc)`,
    );
    console.log(
      `  ${'N'.padStart(4)}  ${'API conns'.padStart(9)}  ${'API watches'.padStart(11)}  ${'API KiB/change'.padStart(14)}  ${'API CPU ms/change'.padStart(17)}  ${'watcher KiB/change'.padStart(18)}  ${'watcher CPU ms/change'.padStart(21)}  ${'last client saw it: p50 / max ms'.padStart(32)}  missed`,
    );
    const rows: ScaleRow[] = [];
    for (const clients of SCALE_SIZES) {
      const row = await measureScale(mode, clients);
      rows.push(row);
      const p50 = percentile(row.lastSeenMs, 50);
      const shared = (value: number, digits: number) => (mode === 'shared' ? value.toFixed(digits) : '-');
      console.log(
        `  ${String(row.clients).padStart(4)}  ${String(row.connections).padStart(9)}  ${String(row.watches).padStart(11)}  ${(row.bytesPerChange / 1024).toFixed(1).padStart(14)}  ${row.cpuMsPerChange.toFixed(1).padStart(17)}  ${shared(row.watcherBytesPerChange / 1024, 1).padStart(18)}  ${shared(row.watcherCpuMsPerChange, 1).padStart(21)}  ${`${p50.toFixed(1)} / ${(row.lastSeenMs.at(-1) ?? NaN).toFixed(1)}`.padStart(32)}  ${row.missed}`,
      );
    }
    const last = rows.at(-1)!;
    const p50At = (row: ScaleRow) => percentile(row.lastSeenMs, 50);
    console.log(
      mode === 'direct'
        ? `  extrapolated to ${SCALE_EXTRAPOLATE_TO} sidecars: ${Math.round((last.watches * SCALE_EXTRAPOLATE_TO) / last.clients)} API watches, ${((extrapolate(rows, (r) => r.bytesPerChange) / 1024 / 1024)).toFixed(1)} MiB and ${extrapolate(rows, (r) => r.cpuMsPerChange).toFixed(0)} ms of API CPU per change (replay server), last client after ~${extrapolate(rows, p50At).toFixed(0)} ms (p50, linear)`
        : `  extrapolated to ${SCALE_EXTRAPOLATE_TO} sidecars: ${last.watches} API watches (independent of N), ${(last.bytesPerChange / 1024).toFixed(1)} KiB and ${last.cpuMsPerChange.toFixed(1)} ms of API CPU per change; the watcher writes one message per sidecar: ${((last.watcherBytesPerChange * SCALE_EXTRAPOLATE_TO) / last.clients / 1024 / 1024).toFixed(1)} MiB and ~${((last.watcherCpuMsPerChange * SCALE_EXTRAPOLATE_TO) / last.clients).toFixed(0)} ms of its CPU per change (proportional; /proc counts CPU in 10 ms ticks), which bounds when the last sidecar of a cluster hears of it (each parses its own message on its own core); here, with all N clients on this machine, the last after ~${extrapolate(rows, p50At).toFixed(0)} ms (p50, linear; goal < 1000 ms)`,
    );
  }
}

if (process.argv[2] === 'scale-worker') await runScaleWorker();
else await main();
