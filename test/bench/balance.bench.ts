/**
 * `npm run bench` (balance part): the balance-quality table of issue 11. Every scenario of
 * test/helpers/balance-scenarios.ts (loopback backends, 3-4 endpoints) through the compiled
 * meshlet proxy with each policy, and through HAProxy `leastconn` where it applies (not where an
 * endpoint joins: its endpoints are fixed at start), in the same run. Per scenario and contender:
 * each endpoint's share, the smallest share as a fraction of a fair share, client p50/p99, and the
 * scenario's figure beside its goal (the goals are for the default policy). Asserts nothing.
 *
 * Run alone: npm run build && node --import tsx test/bench/balance.bench.ts
 *   (BENCH_BALANCE_ONLY=text runs only the scenarios whose name contains it)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { MESHLET_BUILT_ARGS, startMeshlet } from '../../tools/meshlet-process.js';
import { DEFAULT_LB_POLICY } from '../../src/common/contract.js';
import {
  BALANCE_SCENARIOS,
  countIn,
  percentile,
  runLoad,
  smallestShareOfFair,
  startScenarioBackends,
  type BalanceScenario,
  type LoadResult,
  type ScenarioBackend,
} from '../helpers/balance-scenarios.js';
import { fmt, isHaproxyInstalled, printTable, PROXY_NODE_ARGS, PROXY_RUN_ENV, startHaproxy, type Contender } from './bench-kit.js';

const POLICIES = ['peak-ewma', 'least-request', 'round-robin'];
/** Slow-start windows compared on the cold-endpoint scenario (the default is chosen from these). */
const SLOW_START_WINDOWS_MS = [0, 2_000, 10_000, 30_000];
const ONLY = process.env.BENCH_BALANCE_ONLY;

/** A started contender, and how to add the joining endpoint (undefined: it cannot). */
interface Running extends Contender {
  join?: (addresses: string[]) => Promise<void>;
}

const workDir = mkdtempSync(join(tmpdir(), 'meshlet-balance-bench-'));

/** The compiled proxy over the endpoints listed in a watched file, so an endpoint can join. */
async function startMeshletOver(addresses: string[], policy: string, slowStartMs?: number): Promise<Running> {
  const file = join(workDir, `endpoints-${policy}.json`);
  writeFileSync(file, JSON.stringify(addresses));
  const args = ['proxy', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--debug-admin', 'off', '--lb-policy', policy, '--upstream', file];
  if (slowStartMs !== undefined) args.push('--slow-start-ms', String(slowStartMs));
  const proxy = await startMeshlet(args, { command: [...PROXY_NODE_ARGS, ...MESHLET_BUILT_ARGS], env: PROXY_RUN_ENV });
  return {
    name: `meshlet ${policy}${policy === DEFAULT_LB_POLICY ? ' (default)' : ''}`,
    url: `http://127.0.0.1:${proxy.listening['port']}`,
    pid: proxy.child.pid,
    stop: proxy.stop,
    join: async (all) => {
      const updated = proxy.waitForLine((l) => l.msg === 'endpoints updated' && l.ready === all.length, 10_000, 'the joined endpoint');
      writeFileSync(file, JSON.stringify(all));
      await updated;
    },
  };
}

async function runScenario(s: BalanceScenario, start: (addresses: string[]) => Promise<Running | undefined>): Promise<string[] | undefined> {
  const run = await loadScenario(s, start);
  if (!run) return undefined;
  const { result, names, contender } = run;
  const from = s.warmup ?? 0;
  const judged = result.backends.length - from;
  const shares = names.map((n) => `${((countIn(result, n, from) / judged) * 100).toFixed(1)}`).join('/');
  const verdict = s.judge(result, names);
  const latencies = result.latenciesMs.slice(from);
  return [
    `  ${contender}`,
    shares,
    fmt(smallestShareOfFair(result, names), 2),
    fmt(percentile(latencies, 50), 2),
    fmt(percentile(latencies, 99), 2),
    String(result.errors),
    verdict.figure,
    `${verdict.goal}${contender.includes('(default)') ? (verdict.met ? '  met' : '  MISSED') : ''}`,
  ];
}

/** Runs one scenario through one contender on fresh backends; undefined when the contender is not available. */
async function loadScenario(s: BalanceScenario, start: (addresses: string[]) => Promise<Running | undefined>): Promise<{ result: LoadResult; names: string[]; contender: string } | undefined> {
  const backends: ScenarioBackend[] = await startScenarioBackends(s);
  const joining = s.join?.endpoint;
  const initial = backends.filter((_, i) => i !== joining).map((b) => b.address);
  const contender = await start(initial);
  if (!contender) {
    await Promise.all(backends.map((b) => b.close()));
    return undefined;
  }
  try {
    const result = await runLoad({
      protocol: s.protocol,
      port: Number(new URL(contender.url).port),
      requests: s.requests,
      concurrency: s.concurrency,
      ratePerSecond: s.ratePerSecond,
      before: async (index) => {
        if (index === s.join?.beforeRequest) await contender.join!(backends.map((b) => b.address));
      },
    });
    return { result, names: backends.map((b) => b.name), contender: contender.name };
  } finally {
    await contender.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
}

async function main(): Promise<void> {
  const [load1, load5] = loadavg();
  console.log(`balance bench: issue-11 scenarios on loopback, meshlet (compiled) with each policy${isHaproxyInstalled() ? ', HAProxy leastconn (1 thread)' : ' (HAProxy not installed: apt-get install -y haproxy)'}; load average ${load1!.toFixed(2)} / ${load5!.toFixed(2)}`);
  const rows: string[][] = [['scenario / contender', 'shares %', 'min/fair', 'p50 ms', 'p99 ms', 'errors', 'figure', 'goal (default policy)']];
  for (const s of BALANCE_SCENARIOS) {
    if (ONLY !== undefined && !s.name.includes(ONLY)) continue;
    const how = `${s.protocol === 'h1' ? 'HTTP/1.1' : 'h2c'}, ${s.endpoints} endpoints, ${s.requests} requests, ${s.ratePerSecond ? `${s.ratePerSecond} req/s` : `${s.concurrency} in flight`}${s.warmup ? `, first ${s.warmup} not counted` : ''}`;
    rows.push([`${s.name} (${how})`]);
    for (const policy of POLICIES) {
      const row = await runScenario(s, (addresses) => startMeshletOver(addresses, policy));
      if (row) rows.push(row);
    }
    if (s.join === undefined) {
      const row = await runScenario(s, (addresses) => startHaproxy(addresses.map((a) => Number(a.split(':')[1])), workDir, { protocol: s.protocol, balance: 'leastconn' }));
      if (row) rows.push(row);
    }
  }
  printTable(rows);
  console.log('shares: per endpoint, of the requests counted; min/fair: the smallest share / a fair share; p50/p99: client latency; errors: requests the proxy failed.');
  if (ONLY === undefined || 'slow start'.includes(ONLY)) await compareSlowStart();
}

/**
 * The cold endpoint with peak-ewma under each slow-start window: how many requests after it joined
 * until its 50 slow requests were served (warm), its requests among the next 400 (fair 100), and
 * the client p99 over the requests after the join.
 */
async function compareSlowStart(): Promise<void> {
  const s = BALANCE_SCENARIOS.find((c) => c.join !== undefined)!;
  const joinAt = s.join!.beforeRequest;
  const rows: string[][] = [['--slow-start-ms', 'warm after (requests)', 'cold one in next 400', 'p99 after join ms']];
  for (const windowMs of SLOW_START_WINDOWS_MS) {
    const run = await loadScenario(s, (addresses) => startMeshletOver(addresses, 'peak-ewma', windowMs));
    if (!run) continue;
    const cold = run.names[s.join!.endpoint]!;
    let seen = 0;
    let warmAt = -1;
    for (let i = joinAt; i < run.result.backends.length && warmAt < 0; i++) if (run.result.backends[i] === cold && ++seen === 50) warmAt = i - joinAt;
    rows.push([String(windowMs), warmAt < 0 ? 'not within the run' : String(warmAt), String(countIn(run.result, cold, joinAt, joinAt + 400)), fmt(percentile(run.result.latenciesMs.slice(joinAt), 99), 2)]);
  }
  console.log(`\nslow start: ${s.name}, peak-ewma, ${s.requests} sequential requests, the endpoint joins before request ${joinAt}`);
  printTable(rows);
}

try {
  await main();
} finally {
  rmSync(workDir, { recursive: true, force: true });
}
