import { DEFAULT_LB_POLICY, LB_POLICY } from '../src/common/contract.js';
import { analyseShares, formatMs, formatPercent, type EndpointTraffic, type ShareAnalysis } from '../src/diagnose/shares.js';
import { createEchoClient, startEchoBackend, unaryCall, waitForReady, type EchoBackend } from '../test/helpers/grpc-echo.js';
import { renderChart, type ChartRow } from './chart.js';
import { ConnectionBalancer } from './connection-balancer.js';
import { LoadGenerator, mean, percentile, type LoadWindow } from './load.js';
import { startMeshletProxy, type RunningProxy } from './meshlet-proxy.js';
import { LiveBlock, paint, type TerminalStyle } from './terminal.js';

/** How long each act sends traffic, in ms. */
export interface ActDurations {
  connection: number;
  meshlet: number;
  scaleUp: number;
  slow: number;
}

export const FULL_DURATIONS: ActDurations = { connection: 3500, meshlet: 4000, scaleUp: 4500, slow: 4500 };
export const QUICK_DURATIONS: ActDurations = { connection: 1500, meshlet: 1500, scaleUp: 2500, slow: 2500 };

/** In-flight calls the client keeps going over its one channel. */
const CONCURRENCY = 8;
/** Extra reply delay of the backend that turns slow in act 4. */
export const SLOW_DELAY_MS = 50;
const REDRAW_INTERVAL_MS = 200;
/** Calls sent through a fresh proxy before an act measures it (connections up, code warmed). */
const WARM_UP_CALLS = 30;

export interface ActResult {
  act: number;
  title: string;
  balancer: string;
  analysis: ShareAnalysis;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  errors: number;
  /** The one-line verdict printed under the chart. */
  verdict: string;
  /** The act showed what it is meant to show. */
  asExpected: boolean;
}

export interface DemoContext {
  out: NodeJS.WriteStream;
  style: TerminalStyle;
  durations: ActDurations;
}

interface Stage {
  backends: EchoBackend[];
  notes: Map<string, string>;
}

function trafficOf(window: LoadWindow, backends: readonly EchoBackend[]): EndpointTraffic[] {
  return backends.map((b) => ({
    endpoint: b.address,
    label: b.name,
    requests: window.requests.get(b.name) ?? 0,
    ...(window.latencySumMs.has(b.name) ? { durationSumSeconds: window.latencySumMs.get(b.name)! / 1000, durationCount: window.requests.get(b.name) ?? 0 } : {}),
  }));
}

function chartRows(window: LoadWindow, stage: Stage): ChartRow[] {
  return stage.backends.map((b) => ({
    name: b.name,
    requests: window.requests.get(b.name) ?? 0,
    ...(stage.notes.has(b.name) ? { note: stage.notes.get(b.name)! } : {}),
  }));
}

/** Sends traffic for `ms`, redrawing the chart live; returns what the client saw. */
async function watch(ctx: DemoContext, load: LoadGenerator, stage: Stage, ms: number, onTick?: () => void): Promise<LoadWindow> {
  const block = new LiveBlock(ctx.out, ctx.style);
  load.take();
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(REDRAW_INTERVAL_MS, Math.max(0, deadline - Date.now()))));
    onTick?.();
    block.update(renderChart(chartRows(load.peek(), stage), ctx.style));
  }
  const window = load.take();
  block.finish(renderChart(chartRows(window, stage), ctx.style));
  return window;
}

/** "backend-1 35%, backend-2 33%, backend-3 32%". */
function listShares(analysis: ShareAnalysis, names?: readonly string[]): string {
  return analysis.endpoints
    .filter((e) => names === undefined || names.includes(e.label ?? ''))
    .map((e) => `${e.label} ${formatPercent(e.share)}`)
    .join(', ');
}

/** Every listed backend took at least half of its fair share. */
function everyGetsAShare(analysis: ShareAnalysis, names?: readonly string[]): boolean {
  return analysis.endpoints.filter((e) => names === undefined || names.includes(e.label ?? '')).every((e) => e.share >= analysis.fairShare / 2);
}

function heading(ctx: DemoContext, act: number, title: string, story: string): void {
  ctx.out.write(`\n${paint(ctx.style, `Act ${act}: ${title}`, 'bold')}\n${paint(ctx.style, story, 'dim')}\n`);
}

function conclude(ctx: DemoContext, result: Omit<ActResult, 'p50Ms' | 'p99Ms' | 'meanMs' | 'errors'>, window: LoadWindow, problem: boolean): ActResult {
  const mark = problem ? paint(ctx.style, ctx.style.blocks ? '✗ problem:' : '[problem]', 'red', 'bold') : result.asExpected ? paint(ctx.style, ctx.style.blocks ? '✓' : '[ok]', 'green', 'bold') : paint(ctx.style, '[unexpected]', 'red', 'bold');
  ctx.out.write(`  ${mark} ${result.verdict}\n`);
  return { ...result, p50Ms: percentile(window.latenciesMs, 50), p99Ms: percentile(window.latenciesMs, 99), meanMs: mean(window.latenciesMs), errors: window.errors };
}

/** Plays the four acts and returns their results; everything it starts is closed before it returns. */
export async function playDemo(ctx: DemoContext): Promise<ActResult[]> {
  const cleanups: Array<() => Promise<unknown>> = [];
  const results: ActResult[] = [];
  try {
    const backends = await Promise.all(['backend-1', 'backend-2', 'backend-3'].map((name) => startEchoBackend(name)));
    cleanups.push(() => Promise.all(backends.map((b) => b.close())));
    ctx.out.write(`Started ${backends.length} gRPC backends on loopback: ${backends.map((b) => `${b.name} ${b.address}`).join(', ')}\n`);
    const stage: Stage = { backends: [...backends], notes: new Map() };

    // The proxy process starts while act 1 plays; its start-up (a second or two) is then not waited for.
    const starting = startMeshletProxy(backends.map((b) => b.address));
    cleanups.push(() => starting.then((p) => p.close()));
    starting.catch(() => undefined);
    results.push(await actConnectionBalancing(ctx, stage, cleanups));
    const proxy = await starting;
    const client = createEchoClient(proxy.address);
    cleanups.push(async () => client.close());
    await waitForReady(client);
    await Promise.all(Array.from({ length: WARM_UP_CALLS }, (_, i) => unaryCall(client, { text: `warm-up ${i}` })));
    const load = new LoadGenerator(client, CONCURRENCY);
    load.start();
    cleanups.push(() => load.stop());
    results.push(await actMeshlet(ctx, stage, load, proxy));
    results.push(await actScaleUp(ctx, stage, load, proxy, cleanups));
    results.push(await actSlowBackend(ctx, stage, load, results[results.length - 1]!));
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
  return results;
}

async function actConnectionBalancing(ctx: DemoContext, stage: Stage, cleanups: Array<() => Promise<unknown>>): Promise<ActResult> {
  heading(ctx, 1, 'a Kubernetes Service without meshlet', 'kube-proxy picks a backend per TCP connection; the gRPC client opens one connection and sends every call over it.');
  const balancer = new ConnectionBalancer(stage.backends.map((b) => ({ name: b.name, host: '127.0.0.1', port: b.port })));
  const address = await balancer.listen();
  cleanups.push(() => balancer.close());
  const client = createEchoClient(address);
  await waitForReady(client);
  const load = new LoadGenerator(client, CONCURRENCY);
  load.start();
  const window = await watch(ctx, load, stage, ctx.durations.connection);
  await load.stop();
  client.close();
  await balancer.close();
  const analysis = analyseShares(trafficOf(window, stage.backends));
  const connections = [...balancer.connections.values()].reduce((a, b) => a + b, 0);
  return conclude(
    ctx,
    {
      act: 1,
      title: 'kube-proxy style',
      balancer: 'per connection (kube-proxy)',
      analysis,
      verdict: `${analysis.summary} — ${connections} TCP connection${connections === 1 ? '' : 's'}, so one backend does the work`,
      asExpected: analysis.verdict === 'imbalanced',
    },
    window,
    true,
  );
}

async function actMeshlet(ctx: DemoContext, stage: Stage, load: LoadGenerator, proxy: RunningProxy): Promise<ActResult> {
  heading(ctx, 2, 'the same client through meshlet proxy', `The client still opens one connection, now to meshlet proxy (${proxy.address}), which balances every request (policy ${DEFAULT_LB_POLICY}).`);
  const window = await watch(ctx, load, stage, ctx.durations.meshlet);
  const analysis = analyseShares(trafficOf(window, stage.backends));
  return conclude(
    ctx,
    {
      act: 2,
      title: 'meshlet',
      balancer: 'meshlet, per request',
      analysis,
      verdict: `every backend gets its share: ${listShares(analysis)} (fair share ${formatPercent(analysis.fairShare)}, CV ${analysis.cv.toFixed(2)})`,
      asExpected: everyGetsAShare(analysis) && window.errors === 0,
    },
    window,
    false,
  );
}

async function actScaleUp(ctx: DemoContext, stage: Stage, load: LoadGenerator, proxy: RunningProxy, cleanups: Array<() => Promise<unknown>>): Promise<ActResult> {
  heading(ctx, 3, 'scale-up: two Pods join', 'Two backends start (as the HPA would add Pods); the client keeps its one connection open.');
  const added = await Promise.all(['backend-4', 'backend-5'].map((name) => startEchoBackend(name)));
  cleanups.push(() => Promise.all(added.map((b) => b.close())));
  stage.backends.push(...added);
  for (const b of added) stage.notes.set(b.name, 'new');
  const joinedAt = Date.now();
  await proxy.setUpstreams(stage.backends.map((b) => b.address));
  let atAllSeen: Map<string, number> | undefined;
  const window = await watch(ctx, load, stage, ctx.durations.scaleUp, () => {
    if (!atAllSeen && added.every((b) => (load.peek().requests.get(b.name) ?? 0) > 0)) atAllSeen = new Map(load.peek().requests);
  });
  for (const b of added) stage.notes.delete(b.name);
  const addedNames = added.map((b) => b.name);
  const firstAfterMs = added.map((b) => (load.firstSeen.has(b.name) ? load.firstSeen.get(b.name)! - joinedAt : undefined));
  const after: LoadWindow = { ...window, latencySumMs: new Map(), requests: new Map([...window.requests].map(([name, n]) => [name, n - (atAllSeen?.get(name) ?? n)])) };
  const analysis = analyseShares(trafficOf(atAllSeen ? after : window, stage.backends));
  const allSeen = firstAfterMs.every((ms) => ms !== undefined);
  const firstText = allSeen
    ? `${added.map((b) => b.name).join(' and ')} got their first requests ${firstAfterMs.map((ms) => `${(ms! / 1000).toFixed(1)} s`).join(' and ')} after joining`
    : `${added.filter((_, i) => firstAfterMs[i] === undefined).map((b) => b.name).join(', ')} got nothing in ${ctx.durations.scaleUp / 1000} s`;
  return conclude(
    ctx,
    {
      act: 3,
      title: 'scale-up',
      balancer: 'meshlet, 2 backends added',
      analysis,
      verdict: `${firstText}; since then ${listShares(analysis, addedNames)} (fair share ${formatPercent(analysis.fairShare)})`,
      asExpected: allSeen && atAllSeen !== undefined && everyGetsAShare(analysis, addedNames) && window.errors === 0,
    },
    window,
    false,
  );
}

async function actSlowBackend(ctx: DemoContext, stage: Stage, load: LoadGenerator, before: ActResult): Promise<ActResult> {
  const slow = stage.backends[1]!;
  heading(ctx, 4, `${slow.name} turns slow`, `${slow.name} now adds ${SLOW_DELAY_MS} ms to every reply; ${LB_POLICY.peakEwma} sees its latency and sends it less.`);
  slow.extraDelayMs = SLOW_DELAY_MS;
  stage.notes.set(slow.name, `slow +${SLOW_DELAY_MS} ms`);
  const window = await watch(ctx, load, stage, ctx.durations.slow);
  slow.extraDelayMs = 0;
  const analysis = analyseShares(trafficOf(window, stage.backends));
  const slowShare = analysis.endpoints.find((e) => e.label === slow.name)?.share ?? 0;
  // What the slow backend cost the client: the calls it served, times how much slower they were.
  const slowRequests = window.requests.get(slow.name) ?? 0;
  const otherRequests = analysis.totalRequests - slowRequests;
  const slowMeanMs = slowRequests > 0 ? window.latencySumMs.get(slow.name)! / slowRequests : SLOW_DELAY_MS;
  const otherMeanMs = otherRequests > 0 ? ([...window.latencySumMs].filter(([name]) => name !== slow.name).reduce((a, [, ms]) => a + ms, 0) / otherRequests) : 0;
  const extraMs = Math.max(SLOW_DELAY_MS, slowMeanMs - otherMeanMs);
  return conclude(
    ctx,
    {
      act: 4,
      title: 'slow backend',
      balancer: `meshlet, ${slow.name} +${SLOW_DELAY_MS} ms`,
      analysis,
      verdict:
        `${slow.name} got ${formatPercent(slowShare)} (fair share ${formatPercent(analysis.fairShare)}): its +${SLOW_DELAY_MS} ms added ${formatMs(slowShare * extraMs)} to the client's mean latency ` +
        `instead of ${formatMs(analysis.fairShare * extraMs)}; client p50 ${formatMs(percentile(window.latenciesMs, 50))} (was ${formatMs(before.p50Ms)})`,
      asExpected: slowShare < analysis.fairShare / 2 && window.errors === 0,
    },
    window,
    false,
  );
}
