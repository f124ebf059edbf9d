// `npm run bench:webhook`: reviews per second and p50/p99 latency of the real `meshlet webhook`
// process over keep-alive HTTPS on loopback, at a fixed 500 reviews/s and at the highest rate a few
// concurrent clients reach. Prints figures; asserts nothing. Bounded: ~15 s of load in total.
import { openSync, readFileSync, closeSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { readKubeFixture } from '../helpers/kube-fixtures.js';
import { spawnMeshlet } from '../../tools/meshlet-process.js';
import { makeCertDir, WebhookClient } from '../helpers/webhook-kit.js';

const FIXED_RATE_PER_S = 500;
const FIXED_DURATION_MS = 5_000;
const LEAD_IN_MS = 1_000;
const MAX_RATE_DURATION_MS = 5_000;
const MAX_RATE_CONCURRENCY = 8;
const WARMUP_REVIEWS = 500;
const READY_TIMEOUT_MS = 30_000;

function typicalReview(): string {
  const review = readKubeFixture('admissionreview-pod-create-annotated.json');
  review['request'].object.metadata.annotations['meshlet.dev/inject'] = 'enabled';
  return JSON.stringify(review);
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  return port;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface Result {
  name: string;
  reviews: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
}

async function timed(client: WebhookClient, body: string, latencies: number[]): Promise<boolean> {
  const started = performance.now();
  try {
    const answer = await client.send('POST', '/mutate?timeout=5s', body);
    latencies.push(performance.now() - started);
    return answer.status === 200 && answer.body.response?.patchType === 'JSONPatch';
  } catch {
    return false;
  }
}

/** Open loop: requests start on schedule whether or not earlier ones have finished. */
async function fixedRate(client: WebhookClient, body: string, durationMs: number): Promise<Result> {
  const latenciesMs: number[] = [];
  let errors = 0;
  const total = (FIXED_RATE_PER_S * durationMs) / 1000;
  const intervalMs = 1000 / FIXED_RATE_PER_S;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor((performance.now() - start) / intervalMs) + 1);
    for (; sent < due; sent++) pending.push(timed(client, body, latenciesMs).then((ok) => void (ok || errors++)));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
  return { name: `fixed ${FIXED_RATE_PER_S}/s`, reviews: total, errors, seconds: (performance.now() - start) / 1000, latenciesMs };
}

/** Closed loop: a few clients each send the next review as soon as the last is answered. */
async function maxRate(client: WebhookClient, body: string): Promise<Result> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let reviews = 0;
  const start = performance.now();
  const deadline = start + MAX_RATE_DURATION_MS;
  await Promise.all(
    Array.from({ length: MAX_RATE_CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        if (!(await timed(client, body, latenciesMs))) errors++;
        reviews++;
      }
    }),
  );
  return { name: `max rate (${MAX_RATE_CONCURRENCY} concurrent)`, reviews, errors, seconds: (performance.now() - start) / 1000, latenciesMs };
}

function report(result: Result): string {
  const sorted = [...result.latenciesMs].sort((a, b) => a - b);
  return [
    result.name.padEnd(26),
    `${(result.reviews / result.seconds).toFixed(0).padStart(6)} reviews/s`,
    `p50 ${percentile(sorted, 50).toFixed(2).padStart(6)} ms`,
    `p99 ${percentile(sorted, 99).toFixed(2).padStart(6)} ms`,
    `max ${sorted.at(-1)!.toFixed(2).padStart(7)} ms`,
    `errors ${result.errors}`,
  ].join('  ');
}

const certs = await makeCertDir();
const port = await freePort();
const logFile = join(certs.dir, 'webhook.log');
const logFd = openSync(logFile, 'w');
const child = spawnMeshlet(['webhook', '--host', '127.0.0.1', '--port', String(port), '--cert', certs.cert, '--key', certs.key, '--shutdown-delay', '0'], {
  stdio: ['ignore', logFd, 'inherit'],
});
const client = new WebhookClient(port, certs.caPem);
try {
  const readyBy = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const ready = await client.send('GET', '/readyz').then((r) => r.status === 200, () => false);
    if (ready) break;
    if (Date.now() > readyBy || child.exitCode !== null) throw new Error('meshlet webhook did not become ready');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const body = typicalReview();
  const warmup: number[] = [];
  // Warm up JIT and open every keep-alive connection the runs below use, so they measure steady state.
  await Promise.all(
    Array.from({ length: MAX_RATE_CONCURRENCY }, async () => {
      for (let i = 0; i < WARMUP_REVIEWS / MAX_RATE_CONCURRENCY; i++) await timed(client, body, warmup);
    }),
  );
  console.log(`meshlet webhook: a ${body.length}-byte AdmissionReview (one-container Pod, opted in), keep-alive HTTPS on 127.0.0.1, info log line per review to a file`);
  console.log(`machine: ${availableParallelism()} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} before the runs`);
  // One unmeasured second at the fixed rate first: the switch from warm-up to an open loop stalls
  // the first ~100 ms (flushing the warm-up's log lines, JIT of the new path).
  const leadIn = await fixedRate(client, body, LEAD_IN_MS);
  const fixed = await fixedRate(client, body, FIXED_DURATION_MS);
  const max = await maxRate(client, body);
  child.kill('SIGTERM');
  await once(child, 'exit');
  // The webhook's own time per review (durationMs in its log line: schema-checked body to response object).
  const handler = readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((line) => line.includes('"msg":"review"'))
    .map((line) => JSON.parse(line).durationMs as number)
    .slice(WARMUP_REVIEWS + leadIn.reviews);
  console.log(report(fixed), `  handler p50 ${pct(handler.slice(0, fixed.reviews), 50)} ms p99 ${pct(handler.slice(0, fixed.reviews), 99)} ms`);
  console.log(report(max), `  handler p50 ${pct(handler.slice(fixed.reviews), 50)} ms p99 ${pct(handler.slice(fixed.reviews), 99)} ms`);
} finally {
  client.close();
  if (child.exitCode === null) {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
  closeSync(logFd);
  await certs.cleanup();
}

function pct(values: number[], p: number): string {
  return percentile([...values].sort((a, b) => a - b), p).toFixed(2);
}
