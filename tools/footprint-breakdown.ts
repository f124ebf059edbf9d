/**
 * Where the compiled proxy's memory goes (README, "Where the memory goes"):
 * `npm run build && node --import tsx tools/footprint-breakdown.ts`.
 * Each stage is a fresh `node <PROXY_NODE_FLAGS> --expose-gc` process with PROXY_ENV (tsx is never
 * loaded into it) that loads one more group of modules (tsc's output in dist/) than the stage before,
 * collects garbage twice, and reports its RSS (anonymous and file-backed), V8 heap used and total,
 * V8 code space and external memory. The last stages run the real proxy (`meshlet proxy` from the
 * bundle in dist/meshlet/, as bin/meshlet.js does) and read the same figures once it listens.
 * Prints the median of RUNS processes per stage. Asserts nothing; everything on loopback.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PROXY_ENV, PROXY_NODE_FLAGS } from '../src/common/contract.js';
import { KubeApiServer, endpointSliceObject, serviceObject } from '../test/helpers/kube-api.js';
import { REPO_ROOT } from './meshlet-process.js';

const RUNS = Number(process.env.FOOTPRINT_RUNS ?? 5);
/** FOOTPRINT_NODE_ARGS="--max-semi-space-size=2" measures other V8 flags than the injector's. */
const NODE_ARGS = (process.env.FOOTPRINT_NODE_ARGS ?? PROXY_NODE_FLAGS.join(' ')).split(' ').filter(Boolean);
/** A proxy stage reads its figures this long after it logged `listening`. */
const PROXY_SETTLE_MS = 2000;
/** FOOTPRINT_ONLY_PROXY=1: only the stages that run the proxy. */
const ONLY_PROXY = process.env.FOOTPRINT_ONLY_PROXY === '1';
const STAGE_TIMEOUT_MS = 30_000;

const dist = (path: string) => JSON.stringify(pathToFileURL(join(REPO_ROOT, 'dist', path)).href);

/** Prints one JSON line of figures on fd 3 after two full collections. */
const REPORT = `
  const v8 = await import('node:v8');
  const { readFileSync, writeSync } = await import('node:fs');
  globalThis.gc(); globalThis.gc();
  const m = process.memoryUsage();
  const code = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'code_space');
  const smaps = readFileSync('/proc/self/smaps_rollup', 'utf8');
  const anon = Number(/Anonymous:\\s+(\\d+) kB/.exec(smaps)[1]) * 1024;
  writeSync(3, JSON.stringify({ rss: m.rss, anon, file: m.rss - anon, heapUsed: m.heapUsed, heapTotal: m.heapTotal, code: code.space_used_size, external: m.external }) + '\\n');
`;

interface Stage {
  label: string;
  /** ESM source run in the measured process before REPORT. */
  load: string;
  /** Proxy stages: run the CLI with these args, report after it listens. */
  proxyArgs?: string[];
}

function stages(kubeconfig: string): Stage[] {
  const logger = `const { createLineLogger } = await import(${dist('sidecar/log/line-logger.js')}); globalThis.log = createLineLogger({ level: 'info' });`;
  const builtins = `await Promise.all(['node:net', 'node:http', 'node:fs', 'node:dns/promises', 'node:module'].map((m) => import(m)));`;
  const sidecar = `await import(${dist('src/cli.js')}); await import(${dist('sidecar/main.js')});`;
  const tls = `await Promise.all(['node:https', 'node:tls', 'node:crypto'].map((m) => import(m)));`;
  const discovery = `await import(${dist('sidecar/discovery/kube-config.js')}); await import(${dist('sidecar/discovery/kubernetes.js')});`;
  // A hot function: its optimizing compile pages TurboFan's own machine code in from the node
  // binary (file-backed RSS). Every stage after it includes it, so their deltas are the modules alone.
  const hot = `globalThis.sum = 0; const twice = (i) => i * 2; for (let i = 0; i < 5e6; i++) globalThis.sum += twice(i);`;
  return [
    { label: 'bare node', load: '' },
    { label: '+ one optimized (TurboFan) function', load: hot },
    { label: '+ our logger (sidecar/log/)', load: hot + logger },
    { label: '+ node:net/http/fs/dns/module', load: hot + logger + builtins },
    { label: '+ the CLI and the sidecar modules', load: hot + logger + builtins + sidecar },
    { label: '+ node:https/tls/crypto', load: hot + logger + builtins + sidecar + tls },
    { label: '+ the Kubernetes discovery modules', load: hot + logger + builtins + sidecar + tls + discovery },
    { label: 'proxy listening, static --upstream', load: '', proxyArgs: ['--upstream', '127.0.0.1:9'] },
    { label: 'proxy listening, Kubernetes over HTTPS', load: '', proxyArgs: ['--kubeconfig', kubeconfig, '--namespace', 'demo'] },
  ];
}

type Figures = Record<'rss' | 'anon' | 'file' | 'heapUsed' | 'heapTotal' | 'code' | 'external', number>;

async function measureOnce(stage: Stage): Promise<Figures> {
  const proxy = stage.proxyArgs
    ? `
      process.argv.splice(1, Infinity, 'meshlet', 'proxy', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--debug-admin', 'off', ...${JSON.stringify(stage.proxyArgs)});
      void import(${dist('meshlet/bin.js')});
      await new Promise((r) => setTimeout(r, ${PROXY_SETTLE_MS}));`
    : '';
  const source = `${stage.load}${proxy}${REPORT} process.exit(0);`;
  const child = spawn(process.execPath, [...NODE_ARGS, '--expose-gc', '--input-type=module', '-e', source], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...PROXY_ENV },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdio[3]!.on('data', (c: Buffer) => out.push(c));
  child.stderr!.on('data', (c: Buffer) => err.push(c));
  const timer = setTimeout(() => child.kill('SIGKILL'), STAGE_TIMEOUT_MS);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  if (code !== 0) throw new Error(`stage "${stage.label}" exited ${code}: ${Buffer.concat(err).toString('utf8').slice(0, 2000)}`);
  return JSON.parse(Buffer.concat(out).toString('utf8')) as Figures;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1).padStart(6);

const api = await KubeApiServer.start({ loadFixtures: false, tls: true, token: 'bench-token' });
const dir = await mkdtemp(join(tmpdir(), 'meshlet-footprint-'));
try {
  api.upsert('services', serviceObject({ name: 'web', namespace: 'demo', clusterIP: '10.96.0.111', ports: [{ port: 80, targetPort: 8080 }] }));
  api.upsert('endpointslices', endpointSliceObject({ name: 'web-1', namespace: 'demo', service: 'web', endpoints: [{ ip: '127.0.0.2', pod: 'web-0' }], ports: [{ port: 8080 }] }));
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, api.kubeconfig('demo'), { mode: 0o600 });
  console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`${Object.entries(PROXY_ENV).map(([k, v]) => `${k}=${v} `).join('')}node ${NODE_ARGS.join(' ')} --expose-gc, after two full GCs; median of ${RUNS} processes per stage (MiB)`);
  console.log(`  ${'stage'.padEnd(40)} ${'RSS'.padStart(6)} ${'+RSS'.padStart(6)} ${'anon'.padStart(6)} ${'file'.padStart(6)} ${'heap'.padStart(6)} ${'heapT'.padStart(6)} ${'code'.padStart(6)} ${'extern'.padStart(6)}`);
  let previous: number | undefined;
  for (const stage of stages(kubeconfig).filter((s) => !ONLY_PROXY || s.proxyArgs)) {
    const runs: Figures[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await measureOnce(stage));
    const f = (k: keyof Figures) => median(runs.map((r) => r[k]));
    const delta = stage.proxyArgs || previous === undefined ? '' : mib(f('rss') - previous);
    console.log(`  ${stage.label.padEnd(40)} ${mib(f('rss'))} ${delta.padStart(6)} ${mib(f('anon'))} ${mib(f('file'))} ${mib(f('heapUsed'))} ${mib(f('heapTotal'))} ${mib(f('code'))} ${mib(f('external'))}`);
    if (!stage.proxyArgs) previous = f('rss');
  }
  console.log(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
} finally {
  await api.close();
  await rm(dir, { recursive: true, force: true });
}
