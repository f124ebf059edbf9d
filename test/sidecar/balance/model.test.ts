import t from 'tap';
import { createLogger } from '../../../src/common/logger.js';
import { ProxyMetrics } from '../../../sidecar/admin/metrics.js';
import { DEFAULT_EJECTION } from '../../../sidecar/balance/ejection.js';
import type { EndpointStats } from '../../../sidecar/balance/endpoint-stats.js';
import { createPolicy } from '../../../sidecar/balance/policy.js';
import { DEFAULT_SLOW_START_MS, registerBuiltinPolicies } from '../../../sidecar/balance/setup.js';
import { OUTCOME, TargetBalancer } from '../../../sidecar/balance/target-balancer.js';
import { EndpointSet, makeEndpoint } from '../../../sidecar/discovery/endpoint-set.js';
import { TargetState } from '../../../sidecar/discovery/source.js';
import { DEFAULT_UPSTREAM } from '../../../sidecar/upstream/endpoint-upstream.js';

/**
 * The balancing model without sockets: the default policy against the issue-11 scenarios on a
 * simulated clock (each request's latency is given per endpoint, requests run `concurrency` at a
 * time and end in time order), so every share below is exact and the same on every run. The same
 * scenarios run against real servers in balance-scenarios.test.ts.
 */
registerBuiltinPolicies();
const log = createLogger({ level: 'silent' });

interface Answer {
  ms: number;
  failed?: boolean;
}

interface Scenario {
  endpoints: number;
  requests: number;
  concurrency: number;
  /** The answer of endpoint `index` to its `nth` request (0-based) at `now`. */
  answer: (index: number, nth: number, now: number) => Answer;
  /** Endpoint index → simulated time (ms) it joins; others are there from the start. */
  joins?: Record<number, number>;
  policy?: string;
  slowStartMs?: number;
}

/** Runs a scenario; returns requests per endpoint index, in order of picks. */
function simulate(s: Scenario): { counts: number[]; picks: number[] } {
  const target = new TargetState('shop/cart:8080');
  const present = (now: number) => Array.from({ length: s.endpoints }, (_, i) => i).filter((i) => (s.joins?.[i] ?? 0) <= now);
  let members = present(0);
  target.update(EndpointSet.of(members.map((i) => makeEndpoint('198.18.0.1', 1000 + i))));
  const options = { ejection: DEFAULT_EJECTION, slowStartMs: s.slowStartMs ?? DEFAULT_SLOW_START_MS, retryBudget: { ratio: 0.2, minPerSecond: 0, maxTokens: 10 }, upstream: DEFAULT_UPSTREAM };
  const balancer = new TargetBalancer(target, createPolicy(s.policy ?? 'peak-ewma', options), options, new ProxyMetrics(), log);
  const counts = new Array<number>(s.endpoints).fill(0);
  const picks: number[] = [];
  const running: Array<{ endsAt: number; stats: EndpointStats; answer: Answer }> = [];
  let now = 0;
  for (let sent = 0; sent < s.requests; sent++) {
    while (running.length >= s.concurrency) {
      running.sort((a, b) => a.endsAt - b.endsAt);
      const done = running.shift()!;
      now = done.endsAt;
      balancer.finish(done.stats, done.answer.ms, done.answer.failed ? OUTCOME.failure : OUTCOME.success, now);
    }
    const next = present(now);
    if (next.length !== members.length) {
      members = next;
      target.update(EndpointSet.of(members.map((i) => makeEndpoint('198.18.0.1', 1000 + i))));
    }
    const pick = balancer.pick(now);
    if (pick.kind !== 'endpoint') throw new Error(pick.reason);
    const index = pick.endpoint.endpoint.port - 1000;
    const answer = s.answer(index, counts[index]!, now);
    counts[index]!++;
    picks.push(index);
    running.push({ endsAt: now + answer.ms, stats: pick.endpoint, answer });
  }
  return { counts, picks };
}

/** A small seeded generator (LCG), so the latency noise is the same on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

t.test('equal endpoints, sequential calls: every endpoint gets its share exactly', async (t) => {
  const noise = seededRandom(11);
  const s: Scenario = { endpoints: 3, requests: 300, concurrency: 1, answer: () => ({ ms: 0.4 + noise() * 1.5 }) };
  t.same(simulate(s).counts, [100, 100, 100]);
});

t.test('equal endpoints, 50 concurrent streams of 200 ms: each gets its share', async (t) => {
  const s: Scenario = { endpoints: 4, requests: 1000, concurrency: 50, answer: () => ({ ms: 200 }) };
  for (const c of simulate(s).counts) t.ok(Math.abs(c - 250) <= 250 * 0.05, `${c} of 1000 (fair share 250)`);
});

t.test('100 concurrent 200 ms streams over 4: 25 ±8 each', async (t) => {
  const s: Scenario = { endpoints: 4, requests: 100, concurrency: 100, answer: () => ({ ms: 200 }) };
  for (const c of simulate(s).counts) t.ok(c >= 17 && c <= 33, `${c} of 100`);
});

t.test('one 503 among successes: that endpoint still gets at least 60% of its share of the next 400', async (t) => {
  let failedOn = -1;
  const s: Scenario = {
    endpoints: 4,
    requests: 401,
    concurrency: 1,
    answer: (i) => {
      const first = failedOn === -1;
      if (first) failedOn = i;
      return { ms: 0.5, failed: first };
    },
  };
  const { picks } = simulate(s);
  const after = picks.slice(1).filter((i) => i === failedOn).length;
  t.ok(after >= 100 * 0.6, `the endpoint that answered 503 got ${after} of the next 400 (fair share 100)`);
});

t.test('one 200 ms pause once: that endpoint keeps at least 80% of its share', async (t) => {
  let paused = false;
  const s: Scenario = {
    endpoints: 3,
    requests: 300,
    concurrency: 1,
    answer: (i, n) => {
      if (i === 1 && n === 5 && !paused) {
        paused = true;
        return { ms: 200 };
      }
      return { ms: 0.5 };
    },
  };
  const { counts } = simulate(s);
  t.ok(paused, 'the pause happened');
  t.ok(counts[1]! >= 100 * 0.8, `the endpoint that paused got ${counts[1]} of 300`);
});

t.test('one endpoint 20 ms slower: at most 2% saturated (64 in flight) and 1% at a steady rate (1 in flight)', async (t) => {
  const slow = (i: number) => ({ ms: i === 3 ? 21 : 1 });
  const saturated = simulate({ endpoints: 4, requests: 20_000, concurrency: 64, answer: slow }).counts[3]!;
  t.ok(saturated <= 20_000 * 0.02, `saturated: ${saturated} of 20,000`);
  const steady = simulate({ endpoints: 4, requests: 20_000, concurrency: 1, answer: slow }).counts[3]!;
  t.ok(steady <= 20_000 * 0.01, `steady: ${steady} of 20,000`);
  t.ok(steady > 0, 'still sampled');
});

for (const concurrency of [1, 16]) {
  t.test(`one endpoint failing fast on every request (concurrency ${concurrency}): under 5%`, async (t) => {
    const { counts } = simulate({ endpoints: 4, requests: 10_000, concurrency, answer: (i) => ({ ms: i === 0 ? 0.2 : 1, failed: i === 0 }) });
    t.ok(counts[0]! < 10_000 * 0.05, `${counts[0]} of 10,000`);
  });
}

t.test('a cold endpoint joining (first 50 requests 30 ms slower): traffic at once, a small share while slow, its full share once warm', async (t) => {
  const s: Scenario = {
    endpoints: 4,
    requests: 12_000,
    concurrency: 8,
    joins: { 3: 500 },
    answer: (i, n) => ({ ms: i === 3 && n < 50 ? 31 : 1 }),
  };
  const { picks } = simulate(s);
  const joinedAt = picks.findIndex((i) => i === 3);
  t.ok(joinedAt > 0, `the new endpoint got a request at pick ${joinedAt}`);
  const window = (from: number, to: number) => picks.slice(from, to).filter((i) => i === 3).length;
  const early = window(joinedAt, joinedAt + 400);
  t.ok(early < 100 * 0.5, `while cold: ${early} of the next 400 (fair share 100)`);
  const late = window(picks.length - 2000, picks.length);
  t.ok(late >= 500 * 0.8, `once warm: ${late} of the last 2,000 (fair share 500)`);
});

t.test('slow start off: a warm new endpoint gets its full share at once', async (t) => {
  const s: Scenario = { endpoints: 4, requests: 4000, concurrency: 1, joins: { 3: 100 }, slowStartMs: 0, answer: () => ({ ms: 1 }) };
  const { picks } = simulate(s);
  const joinedAt = picks.findIndex((i) => i === 3);
  const next = picks.slice(joinedAt, joinedAt + 400).filter((i) => i === 3).length;
  t.ok(next >= 90, `${next} of the 400 picks after it joined`);
});
