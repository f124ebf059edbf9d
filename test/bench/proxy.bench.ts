/**
 * `npm run bench` (proxy part): direct to one backend vs through meshlet vs through HAProxy (when
 * installed), on loopback, 4 backends, one client connection with 50 concurrent streams. Prints
 * req/s, p50/p99 latency, the proxy's CPU µs per request (its own process CPU time), peak RSS,
 * balance (coefficient of variation of per-endpoint counts), added median latency at a fixed
 * 1,000 req/s (also in interleaved rounds, beside a plain Node TCP pipe: the floor for any relay
 * written in Node), the share a 20 ms slower endpoint gets with peak-ewma, and the same figures
 * for HTTP/1.1 keep-alive clients (4 connections and 1). Asserts nothing. BENCH_ONLY=http1 runs only
 * the HTTP/1.1 part, BENCH_ONLY=latency only the interleaved rounds at the fixed rate.
 *
 * Run alone: npm run build && node --import tsx test/bench/proxy.bench.ts   (BENCH_REQUESTS=N to change the size)
 */
import { execFileSync, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEchoClient, unaryCall, waitForReady } from '../helpers/grpc-echo.js';
import { MESHLET_BUILT_ARGS, startMeshlet } from '../../tools/meshlet-process.js';
import { fmt, freePort, printTable, PROXY_NODE_ARGS, PROXY_RUN_ENV, startHaproxy as startHaproxyIn, stopChild, type Contender } from './bench-kit.js';

const BACKENDS = 4;
const STREAMS = 50;
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 30_000);
const GRPC_CALLS = Math.round(REQUESTS / 6);
const FIXED_RATE_RPS = 1000;
const FIXED_RATE_SECONDS = 5;
const SLOW_EXTRA_MS = 20;
/** HTTP/1.1 client connections per run: several (spread over the backends) and one (every request on one). */
const H1_CONNECTION_COUNTS = [4, 1];
const H1_REQUESTS = 20_000;
/**
 * Requests before the measured HTTP/1.1 rounds, per contender and connection count: enough for V8
 * to have optimized the relay (with 2,000 the first measured batch still paid 10-30% for
 * compilation), so the figure is the steady state a long-running sidecar pays.
 */
const H1_WARMUP_REQUESTS = 10_000;
/** Measured HTTP/1.1 rounds, the contenders alternating within each; the median is reported. */
const H1_ROUNDS = 3;
/**
 * BENCH_ONLY=http1 runs only the HTTP/1.1 section (to compare a relay change before and after);
 * BENCH_ONLY=latency only the latency rounds (to find where the tail at the fixed rate comes from).
 */
const ONLY = process.env.BENCH_ONLY;
const LATENCY_ROUNDS = 5;
const LATENCY_ROUND_SECONDS = 3;
const CLK_TCK = 100;

// ---------------------------------------------------------------- backend child process
/**
 * gRPC-shaped HTTP/2 backends (reply + grpc-status trailer), cheap enough not to be the bottleneck,
 * and as many HTTP/1.1 keep-alive backends answering a small JSON body.
 */
async function runBackends(): Promise<void> {
  const counts = new Array<number>(BACKENDS).fill(0);
  const delays = new Array<number>(BACKENDS).fill(0);
  const ports: number[] = [];
  for (let i = 0; i < BACKENDS; i++) {
    const body = Buffer.from(JSON.stringify({ backend: `b${i}` }));
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
    server.on('stream', (stream) => {
      counts[i]!++;
      stream.on('error', () => undefined);
      stream.on('data', () => undefined);
      stream.on('end', () => {
        const reply = () => {
          if (stream.destroyed) return;
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end(frame);
        };
        if (delays[i]! > 0) setTimeout(reply, delays[i]);
        else reply();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    ports.push((server.address() as AddressInfo).port);
  }
  const h1Ports: number[] = [];
  for (let i = 0; i < BACKENDS; i++) {
    const reply = JSON.stringify({ backend: `h1-${i}` });
    const server = http.createServer({ keepAlive: true }, (req, res) => {
      counts[i]!++;
      req.resume();
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(reply);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    h1Ports.push((server.address() as AddressInfo).port);
  }
  process.on('message', (msg: { op: string; index?: number; delayMs?: number }) => {
    if (msg.op === 'counts') process.send!({ op: 'counts', counts: [...counts] });
    if (msg.op === 'reset') counts.fill(0);
    if (msg.op === 'delay') delays[msg.index!] = msg.delayMs!;
  });
  process.send!({ op: 'ready', ports, h1Ports });
}

// ---------------------------------------------------------------- measurement helpers
interface ProcessSample {
  cpuMs: number;
  peakRssMiB: number;
}

function sampleProcess(pid: number): ProcessSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  return { cpuMs, peakRssMiB: hwm ? Number(hwm[1]) / 1024 : NaN };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function cv(counts: number[]): number {
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  if (mean === 0) return NaN;
  const variance = counts.reduce((a, b) => a + (b - mean) ** 2, 0) / counts.length;
  return Math.sqrt(variance) / mean;
}

interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  ok: number;
  failed: number;
}

/** h2load, one connection, gRPC unary POSTs; latencies from its per-request log. */
function h2load(url: string, dataFile: string, requests: number, options: { streams?: number; rps?: number; h1Connections?: number } = {}): LoadResult {
  const log = join(workDir, `h2load-${Date.now()}.log`);
  const args =
    options.h1Connections !== undefined
      ? ['--h1', '-c', String(options.h1Connections), '-n', String(requests), `--log-file=${log}`]
      : ['-c', '1', '-n', String(requests), '-m', String(options.streams ?? STREAMS), '-d', dataFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `--log-file=${log}`];
  if (options.rps) args.push(`--rps=${options.rps}`);
  const out = execFileSync('h2load', [...args, url], { encoding: 'utf8', maxBuffer: 16 << 20 });
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1] ?? NaN);
  const okMatch = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(out);
  const latencies = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((line) => Number(line.split('\t')[2]) / 1000)
    .sort((a, b) => a - b);
  rmSync(log, { force: true });
  return { rps, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), p999Ms: percentile(latencies, 99.9), ok: Number(okMatch?.[1] ?? 0), failed: Number(okMatch?.[2] ?? 0) };
}

/** An unmodified @grpc/grpc-js client: one channel, 50 calls in flight. */
async function grpcLoad(target: string, calls: number): Promise<LoadResult> {
  const client = createEchoClient(target);
  await waitForReady(client, 10_000);
  const latencies: number[] = [];
  let failed = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: STREAMS }, async () => {
      while (next < calls) {
        next++;
        const t0 = performance.now();
        try {
          await unaryCall(client, {});
          latencies.push(performance.now() - t0);
        } catch {
          failed++;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  client.close();
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / seconds, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), p999Ms: percentile(latencies, 99.9), ok: latencies.length, failed };
}

// ---------------------------------------------------------------- the contenders
const startHaproxy = (ports: number[], protocol: 'h2' | 'h1' = 'h2') => startHaproxyIn(ports, workDir, { protocol });

async function startMeshletContender(ports: number[], policy: string): Promise<Contender> {
  const args = ['proxy', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--debug-admin', 'off', '--lb-policy', policy, '--upstream', ports.map((p) => `127.0.0.1:${p}`).join(',')];
  const proxy = await startMeshlet(args, { command: [...PROXY_NODE_ARGS, ...MESHLET_BUILT_ARGS], env: PROXY_RUN_ENV });
  return { name: `meshlet (${policy})`, url: `http://127.0.0.1:${proxy.listening['port']}`, pid: proxy.child.pid, stop: proxy.stop };
}

/**
 * The floor for any relay written in Node: a plain TCP pipe to backend 0 (no HTTP/2 parsing, no
 * balancing), in its own process with the proxy's Node flags. Only its latency is measured.
 */
async function startNodePipe(port: number): Promise<Contender> {
  const listen = await freePort();
  const script = `const net=require('node:net');net.createServer({noDelay:true},(a)=>{const b=net.connect({port:${port},host:'127.0.0.1',noDelay:true});a.pipe(b).pipe(a);a.on('error',()=>b.destroy());b.on('error',()=>a.destroy());}).listen(${listen},'127.0.0.1',()=>console.log('up'));`;
  const child = spawn(process.execPath, [...PROXY_NODE_ARGS, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...PROXY_RUN_ENV } });
  await once(child.stdout!, 'data');
  return { name: 'node TCP pipe (1 backend)', url: `http://127.0.0.1:${listen}`, pid: child.pid, stop: () => stopChild(child) };
}

/**
 * Added latency at a fixed rate (median and p99 of each round, minus direct's in the same round),
 * measured in interleaved rounds (every contender once per round) so that a noisy moment on a
 * shared machine does not land on one contender only. Prints the median over rounds of each added
 * figure, every round's, and meshlet's median added p99 as a multiple of HAProxy's (issue 13: at most 2).
 */
async function latencyRounds(direct: Contender, ports: number[], dataFile: string): Promise<void> {
  const started = [await startMeshletContender(ports, 'round-robin'), await startHaproxy(ports), await startNodePipe(ports[0]!)];
  const contenders = [direct, ...started.filter((c): c is Contender => c !== undefined)];
  const rounds = new Map<Contender, LoadResult[]>(contenders.map((c) => [c, []]));
  try {
    for (const c of contenders) h2load(c.url, dataFile, 1000, { streams: 1, rps: FIXED_RATE_RPS });
    for (let round = 0; round < LATENCY_ROUNDS; round++) {
      for (const c of contenders) rounds.get(c)!.push(h2load(c.url, dataFile, FIXED_RATE_RPS * LATENCY_ROUND_SECONDS, { streams: 1, rps: FIXED_RATE_RPS }));
    }
  } finally {
    for (const c of started) await c?.stop();
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const directRounds = rounds.get(direct)!;
  const added = (c: Contender, key: 'p50Ms' | 'p99Ms' | 'p999Ms') => rounds.get(c)!.map((r, i) => r[key] - directRounds[i]![key]);
  const show = (values: number[]) => values.map((v) => v.toFixed(3)).join(' ');
  console.log(
    `latency added over direct at a fixed ${FIXED_RATE_RPS} req/s, one stream, ${LATENCY_ROUNDS} interleaved rounds of ${LATENCY_ROUND_SECONDS} s ` +
      `(direct p50 ${median(directRounds.map((r) => r.p50Ms)).toFixed(3)} ms, p99 ${median(directRounds.map((r) => r.p99Ms)).toFixed(3)} ms); median of the rounds, then each round:`,
  );
  for (const c of contenders.slice(1)) {
    const p50 = added(c, 'p50Ms');
    const p99 = added(c, 'p99Ms');
    const p999 = added(c, 'p999Ms');
    console.log(`  ${c.name.padEnd(26)} +p50 ${median(p50).toFixed(3)} ms   +p99 ${median(p99).toFixed(3)} ms   +p99.9 ${median(p999).toFixed(3)} ms`);
    console.log(`  ${''.padEnd(26)} +p50 per round ${show(p50)}; +p99 ${show(p99)}; +p99.9 ${show(p999)}`);
  }
  const meshlet = contenders.find((c) => c.name.startsWith('meshlet'));
  const haproxy = contenders.find((c) => c.name.startsWith('haproxy'));
  if (meshlet !== undefined && haproxy !== undefined) {
    // A ratio of medians: per round, HAProxy's added p99 is often near zero or below (then a
    // per-round ratio means nothing).
    const m = median(added(meshlet, 'p99Ms'));
    const h = median(added(haproxy, 'p99Ms'));
    const ratio = h > 0 ? `${(m / h).toFixed(2)} times` : 'not a ratio (HAProxy added nothing at p99)';
    console.log(`  meshlet's added p99 (median of rounds) against HAProxy's: ${m.toFixed(3)} / ${h.toFixed(3)} ms = ${ratio} (issue 13: at most 2)`);
  }
}

// ---------------------------------------------------------------- main
const workDir = mkdtempSync(join(tmpdir(), 'meshlet-bench-'));

async function main(): Promise<void> {
  try {
    execFileSync('h2load', ['--version'], { stdio: 'ignore' });
  } catch {
    console.log('proxy bench: h2load not found. Install it with: sudo apt-get install -y nghttp2-client   (HAProxy for comparison: sudo apt-get install -y haproxy)');
    return;
  }
  const backends = fork(fileURLToPath(import.meta.url), ['--backends'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [ready] = (await once(backends, 'message')) as [{ ports: number[]; h1Ports: number[] }];
  const ports = ready.ports;
  const ask = async (op: string, extra: object = {}): Promise<number[]> => {
    backends.send({ op, ...extra });
    if (op !== 'counts') return [];
    const [msg] = (await once(backends, 'message')) as [{ counts: number[] }];
    return msg.counts;
  };
  const dataFile = join(workDir, 'request.bin');
  const body = Buffer.from('{}');
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  writeFileSync(dataFile, frame);

  if (ONLY === 'http1') {
    await http1Section(ready.h1Ports, dataFile, ask);
    backends.kill('SIGKILL');
    return;
  }
  if (ONLY === 'latency') {
    await latencyRounds({ name: 'direct (1 backend)', url: `http://127.0.0.1:${ports[0]}`, stop: async () => undefined }, ports, dataFile);
    backends.kill('SIGKILL');
    return;
  }
  console.log(`proxy bench: ${BACKENDS} loopback backends, 1 client connection x ${STREAMS} streams, ${REQUESTS} h2load gRPC requests per run; ${GRPC_CALLS} @grpc/grpc-js calls`);
  const rows: string[][] = [['', 'h2load req/s', 'p50 ms', 'p99 ms', 'grpc-js req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'RSS idle MiB', `peak RSS @${FIXED_RATE_RPS}/s`, 'peak RSS MiB', 'CV', `+p50 @${FIXED_RATE_RPS}/s ms`, 'failed']];

  const direct: Contender = { name: 'direct (1 backend)', url: `http://127.0.0.1:${ports[0]}`, stop: async () => undefined };
  const contenders: Array<() => Promise<Contender | undefined>> = [async () => direct, () => startMeshletContender(ports, 'round-robin'), () => startHaproxy(ports)];
  let directFixedP50 = NaN;
  for (const start of contenders) {
    const c = await start();
    if (!c) {
      rows.push(['haproxy', 'not installed (apt-get install -y haproxy)']);
      continue;
    }
    try {
      const idleRss = c.pid ? sampleProcess(c.pid).peakRssMiB : NaN;
      // The fixed rate first, so the peak RSS "under that load" is not the saturated runs' peak.
      const fixed = h2load(c.url, dataFile, FIXED_RATE_RPS * FIXED_RATE_SECONDS, { streams: 1, rps: FIXED_RATE_RPS });
      const fixedPeak = c.pid ? sampleProcess(c.pid).peakRssMiB : NaN;
      h2load(c.url, dataFile, 2000); // warm-up (JIT, pools)
      await ask('reset');
      const before = c.pid ? sampleProcess(c.pid) : undefined;
      const h = h2load(c.url, dataFile, REQUESTS);
      const after = c.pid ? sampleProcess(c.pid) : undefined;
      const counts = await ask('counts');
      const g = await grpcLoad(c.url.replace('http://', ''), GRPC_CALLS);
      const peak = c.pid ? sampleProcess(c.pid).peakRssMiB : NaN;
      if (c === direct) directFixedP50 = fixed.p50Ms;
      const cpuUs = before && after ? ((after.cpuMs - before.cpuMs) * 1000) / h.ok : NaN;
      const spread = c === direct ? NaN : cv(counts);
      rows.push([c.name, h.rps.toFixed(0), h.p50Ms.toFixed(2), h.p99Ms.toFixed(2), g.rps.toFixed(0), g.p50Ms.toFixed(2), g.p99Ms.toFixed(2), fmt(cpuUs, 1), fmt(idleRss, 1), fmt(fixedPeak, 1), fmt(peak, 1), fmt(spread, 4), c === direct ? `(${fixed.p50Ms.toFixed(3)})` : (fixed.p50Ms - directFixedP50).toFixed(3), String(h.failed + g.failed + fixed.failed)]);
    } finally {
      await c.stop();
    }
  }
  printTable(rows);
  console.log('CPU µs/req: proxy process user+sys CPU over the h2load run / requests. RSS: VmHWM of the compiled proxy (bin/meshlet.js, as in the image): after the fixed-rate run, then after the saturated runs.');
  console.log(`+p50 @${FIXED_RATE_RPS}/s: median latency added over direct, one stream at a fixed ${FIXED_RATE_RPS} req/s for ${FIXED_RATE_SECONDS} s (one run each; the rounds below are steadier).`);
  await latencyRounds(direct, ports, dataFile);

  await http1Section(ready.h1Ports, dataFile, ask);

  // The slow endpoint: one of four answers 20 ms later; peak-ewma should send it little.
  await ask('delay', { index: BACKENDS - 1, delayMs: SLOW_EXTRA_MS });
  for (const policy of ['peak-ewma', 'least-request', 'round-robin']) {
    const c = await startMeshletContender(ports, policy);
    try {
      h2load(c.url, dataFile, 1000);
      // Saturated (the proxy's own queueing is in every endpoint's latency), then at a fixed rate.
      for (const rps of [undefined, FIXED_RATE_RPS]) {
        await ask('reset');
        const h = h2load(c.url, dataFile, rps ? rps * FIXED_RATE_SECONDS : Math.round(REQUESTS / 3), rps ? { rps } : {});
        const counts = await ask('counts');
        const total = counts.reduce((a, b) => a + b, 0);
        const load = rps ? `fixed ${rps} req/s` : 'saturated';
        console.log(`slow endpoint (+${SLOW_EXTRA_MS} ms, 1 of ${BACKENDS}) with ${policy.padEnd(13)} ${load.padEnd(17)}: ${((counts[BACKENDS - 1]! / total) * 100).toFixed(2)}% of ${total} requests (fair share 25%); ${h.rps.toFixed(0)} req/s, p99 ${h.p99Ms.toFixed(1)} ms`);
      }
    } finally {
      await c.stop();
    }
  }
  backends.kill('SIGKILL');
}

/**
 * HTTP/1.1 keep-alive: 4 client connections, then 1, over 4 backends; direct vs meshlet vs HAProxy
 * in the same run.
 */
async function http1Section(h1Ports: number[], dataFile: string, ask: (op: string) => Promise<number[]>): Promise<void> {
  const direct: Contender = { name: 'direct (1 backend)', url: `http://127.0.0.1:${h1Ports[0]}`, stop: async () => undefined };
  const contenders: Contender[] = [direct];
  const rows: string[][] = [['HTTP/1.1 keep-alive', 'connections', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'CPU per round', 'CV', 'failed']];
  const ratios: string[] = [];
  try {
    contenders.push(await startMeshletContender(h1Ports, 'round-robin'));
    const haproxy = await startHaproxy(h1Ports, 'h1');
    if (haproxy) contenders.push(haproxy);
    else rows.push(['haproxy', 'not installed (apt-get install -y haproxy)']);
    for (const connections of H1_CONNECTION_COUNTS) {
      for (const c of contenders) h2load(c.url, dataFile, H1_WARMUP_REQUESTS, { h1Connections: connections });
      const rounds = new Map<Contender, Array<{ load: LoadResult; cpuUs: number; cv: number }>>(contenders.map((c) => [c, []]));
      for (let round = 0; round < H1_ROUNDS; round++) {
        for (const c of contenders) {
          await ask('reset');
          const before = c.pid ? sampleProcess(c.pid) : undefined;
          const load = h2load(c.url, dataFile, H1_REQUESTS, { h1Connections: connections });
          const after = c.pid ? sampleProcess(c.pid) : undefined;
          const counts = (await ask('counts')).slice(0, BACKENDS);
          rounds.get(c)!.push({ load, cpuUs: before && after ? ((after.cpuMs - before.cpuMs) * 1000) / load.ok : NaN, cv: cv(counts) });
        }
      }
      const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
      for (const c of contenders) {
        const runs = rounds.get(c)!;
        const cpu = runs.map((r) => r.cpuUs);
        rows.push([
          c.name,
          String(connections),
          median(runs.map((r) => r.load.rps)).toFixed(0),
          median(runs.map((r) => r.load.p50Ms)).toFixed(2),
          median(runs.map((r) => r.load.p99Ms)).toFixed(2),
          c === direct ? '-' : fmt(median(cpu), 1),
          c === direct ? '-' : cpu.map((x) => fmt(x, 1)).join(' '),
          c === direct ? '-' : fmt(Math.max(...runs.map((r) => r.cv)), 4),
          String(runs.reduce((sum, r) => sum + r.load.failed, 0)),
        ]);
      }
      const [meshlet, other] = [rounds.get(contenders[1]!)!, haproxy ? rounds.get(haproxy) : undefined];
      if (other) {
        const perRound = meshlet.map((m, i) => (m.cpuUs / other[i]!.cpuUs).toFixed(2)).join(' ');
        ratios.push(`  ${connections} connection(s): meshlet / HAProxy CPU per request ${(median(meshlet.map((r) => r.cpuUs)) / median(other.map((r) => r.cpuUs))).toFixed(2)} (medians; per round ${perRound}; issue 13: at most 1.5)`);
      }
    }
  } finally {
    for (const c of contenders) await c.stop();
  }
  console.log(
    `HTTP/1.1: ${H1_CONNECTION_COUNTS.join(' and ')} keep-alive client connections; per connection count ${H1_WARMUP_REQUESTS} warm-up GETs per contender, then ${H1_ROUNDS} rounds of ${H1_REQUESTS} GETs, the contenders alternating within each round; medians of the rounds (CV: the largest); ${BACKENDS} node:http backends`,
  );
  printTable(rows);
  for (const line of ratios) console.log(line);
}

if (process.argv.includes('--backends')) {
  await runBackends();
} else {
  try {
    await main();
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}
