import t from 'tap';
import { createLogger } from '../../../src/common/logger.js';
import { ProxyMetrics } from '../../../sidecar/admin/metrics.js';
import { DEFAULT_EJECTION } from '../../../sidecar/balance/ejection.js';
import { RetryBudget } from '../../../sidecar/balance/retry-budget.js';
import { registerBuiltinPolicies } from '../../../sidecar/balance/setup.js';
import { createPolicy } from '../../../sidecar/balance/policy.js';
import type { EndpointStats } from '../../../sidecar/balance/endpoint-stats.js';
import { OUTCOME, TargetBalancer, type Outcome } from '../../../sidecar/balance/target-balancer.js';
import { EndpointSet, makeEndpoint } from '../../../sidecar/discovery/endpoint-set.js';
import { TargetState } from '../../../sidecar/discovery/source.js';
import { DEFAULT_UPSTREAM } from '../../../sidecar/upstream/endpoint-upstream.js';

/**
 * Policies, ejection and draining, driven by an explicit clock (every balancer method takes `now`),
 * so latency decay and backoff need no sleeps.
 */
registerBuiltinPolicies();
const log = createLogger({ level: 'silent' });

function balancerFor(policy: string, keys: string[], states: Record<string, 'ready' | 'draining'> = {}) {
  const target = new TargetState('shop/cart:8080');
  const set = (ks: string[]) => target.update(EndpointSet.of(ks.map((k) => makeEndpoint('198.18.0.1', Number(k), states[k] ?? 'ready'))));
  set(keys);
  const options = { ejection: DEFAULT_EJECTION, slowStartMs: 0, retryBudget: { ratio: 0.2, minPerSecond: 0, maxTokens: 10 }, upstream: DEFAULT_UPSTREAM };
  const balancer = new TargetBalancer(target, createPolicy(policy, options), options, new ProxyMetrics(), log);
  return { balancer, target, set };
}

function pickKey(balancer: TargetBalancer, now: number): string {
  const pick = balancer.pick(now);
  if (pick.kind !== 'endpoint') throw new Error(pick.reason);
  return pick.endpoint.key;
}

t.test('round-robin takes each endpoint in turn', async (t) => {
  const { balancer } = balancerFor('round-robin', ['1', '2', '3']);
  t.same([1, 2, 3, 4, 5, 6].map((i) => pickKey(balancer, i)), ['198.18.0.1:1', '198.18.0.1:2', '198.18.0.1:3', '198.18.0.1:1', '198.18.0.1:2', '198.18.0.1:3']);
});

t.test('least-request avoids the endpoint with requests in flight', async (t) => {
  const { balancer } = balancerFor('least-request', ['1', '2']);
  const busy = balancer.pick(0);
  if (busy.kind !== 'endpoint') throw new Error('no pick');
  for (let i = 0; i < 5; i++) busy.endpoint.inFlight++;
  const keys = Array.from({ length: 20 }, (_, i) => {
    const pick = balancer.pick(i);
    if (pick.kind !== 'endpoint') throw new Error(pick.reason);
    balancer.finish(pick.endpoint, 1, OUTCOME.success, i);
    return pick.endpoint.key;
  });
  t.ok(keys.every((k) => k !== busy.endpoint.key), 'every pick went to the idle endpoint');
});

/** `picks` sequential requests on `balancer`, each answered at once with the latency and outcome given per endpoint. */
function serveSequentially(balancer: TargetBalancer, latencyOf: (key: string) => number, outcomeOf: (key: string) => Outcome, picks: number): string[] {
  const keys: string[] = [];
  for (let i = 0; i < picks; i++) {
    const pick = balancer.pick(i);
    if (pick.kind !== 'endpoint') throw new Error(pick.reason);
    balancer.finish(pick.endpoint, latencyOf(pick.endpoint.key), outcomeOf(pick.endpoint.key), i);
    keys.push(pick.endpoint.key);
  }
  return keys;
}

t.test('peak-ewma: a slow endpoint gets little; a fast failure does not look fast; the pick says why', async (t) => {
  const { balancer } = balancerFor('peak-ewma', ['1', '2']);
  const [a] = [...balancer.endpoints()] as [EndpointStats];
  const slow = serveSequentially(balancer, (k) => (k === a.key ? 50 : 1), () => OUTCOME.success, 400).filter((k) => k === a.key).length;
  t.ok(slow > 0 && slow <= 400 * 0.03, `the 50 ms endpoint is still sampled but gets little (${slow} of 400)`);
  t.ok(a.latencyMs > 10, `its estimate shows it, well above its peer's 1 ms (${a.latencyMs} ms)`);
  t.match(balancer.pickLog.recent().find((p) => p.chosen !== a.key), { policy: 'peak-ewma', why: /^peak-ewma: lowest cost, \(in flight 0 \+ 1\) \/ weight = 1, most credit among those .*; weight 1 of [\d.]+ = latency ×1 \([\d.]+ ms\) \/ failures ×1$/ });
  let next = 400;
  for (let i = 0; i < 1000 && serveSequentially(balancer, (k) => (k === a.key ? 50 : 1), () => OUTCOME.success, 1)[0] !== a.key; i++) next++;
  t.match(balancer.pickLog.recent()[0], { chosen: a.key, why: /^peak-ewma: its turn by weight \(credit [\d.]+ reached a whole pick, [\d.]+\); weight 0\.01 of 1\.01 = latency ×0 \([\d.]+ ms\) \/ failures ×1$/ }, `the slow one's pick ${next - 400} later says why`);
  // Another target: b fails fast, 1 ms answers that are UNAVAILABLE, three in four (never 5 in a row).
  const other = balancerFor('peak-ewma', ['1', '2']).balancer;
  const [, b] = [...other.endpoints()] as [EndpointStats, EndpointStats];
  let n = 0;
  const failing = serveSequentially(other, () => 1, (k) => (k === b.key && n++ % 4 !== 3 ? OUTCOME.failure : OUTCOME.success), 400).filter((k) => k === b.key).length;
  t.ok(b.failureRatio > 0.3, `failure ratio rises (${b.failureRatio})`);
  t.ok(b.latencyMs >= 1, 'fast failures do not make it look fast');
  t.ok(failing < 200 / 4, `the mostly failing endpoint gets under a quarter of its fair share (${failing} of 400)`);
});

t.test('N failures in a row eject an endpoint for a growing backoff, then it is retried', async (t) => {
  const { balancer } = balancerFor('round-robin', ['1', '2']);
  const bad = [...balancer.endpoints()][0]!;
  for (let i = 0; i < DEFAULT_EJECTION.consecutiveFailures; i++) {
    bad.inFlight++;
    balancer.finish(bad, 1, OUTCOME.failure, 1000);
  }
  t.ok(bad.isEjected(1000), 'ejected');
  const firstUntil = bad.ejectedUntil;
  t.ok(Array.from({ length: 6 }, () => pickKey(balancer, 1001)).every((k) => k !== bad.key), 'no traffic while ejected');
  t.equal(balancer.counts(1001).ejected, 1);
  const back = firstUntil + 1;
  const keys = Array.from({ length: 4 }, () => pickKey(balancer, back));
  t.ok(keys.includes(bad.key), 'tried again after the backoff');
  bad.inFlight++;
  balancer.finish(bad, 1, OUTCOME.failure, back);
  t.ok(bad.isEjected(back), 'one more failure ejects it again');
  t.ok(bad.ejectedUntil - back > (firstUntil - 1000) * 1.2, 'for longer');
});

t.test('a failed connection ejects at once; with every endpoint ejected the balancer still tries one', async (t) => {
  const { balancer } = balancerFor('round-robin', ['1']);
  const only = [...balancer.endpoints()][0]!;
  only.inFlight++;
  balancer.finish(only, 1, OUTCOME.connectFailure, 10);
  t.ok(only.isEjected(10));
  t.equal(pickKey(balancer, 11), only.key, 'better a maybe than a certain failure');
});

t.test('new endpoints get the next request, whatever the policy; removed ones drain and then leave', async (t) => {
  const peak = balancerFor('peak-ewma', ['1', '2']);
  for (let i = 0; i < 20; i++) pickKey(peak.balancer, i);
  peak.set(['1', '2', '3']);
  t.equal(pickKey(peak.balancer, 21), '198.18.0.1:3', 'peak-ewma: the very next request goes to the new endpoint');
  const { balancer, set } = balancerFor('round-robin', ['1']);
  const inFlight = balancer.pick(0);
  set(['1', '2']);
  t.equal(pickKey(balancer, 1), '198.18.0.1:2', 'the new endpoint is picked at once');
  set(['2']);
  t.equal(balancer.counts().draining, 1, 'the removed one drains while it has requests in flight');
  t.ok(Array.from({ length: 4 }, () => pickKey(balancer, 2)).every((k) => k === '198.18.0.1:2'), 'and gets nothing new');
  for (const s of [...balancer.endpoints()]) while (s.inFlight > 0) balancer.finish(s, 1, OUTCOME.success, 3);
  t.equal(inFlight.kind, 'endpoint');
  t.same([...balancer.endpoints()].map((s) => s.key), ['198.18.0.1:2'], 'gone once idle');
});

t.test('terminating (draining) endpoints get no new requests', async (t) => {
  const { balancer } = balancerFor('round-robin', ['1', '2'], { '2': 'draining' });
  t.ok(Array.from({ length: 4 }, () => pickKey(balancer, 1)).every((k) => k === '198.18.0.1:1'));
  const empty = balancerFor('round-robin', ['1'], { '1': 'draining' }).balancer.pick(0);
  t.match(empty, { kind: 'unavailable', reason: /no ready endpoints/ });
});

t.test('the retry budget allows a fraction of requests and refills over time', async (t) => {
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 1, maxTokens: 5 }, 0);
  t.ok(budget.tryWithdraw(0), 'the initial allowance');
  t.notOk(budget.tryWithdraw(0), 'then nothing');
  for (let i = 0; i < 10; i++) budget.deposit();
  t.ok(budget.tryWithdraw(0) && budget.tryWithdraw(0), 'ten requests earn two retries');
  t.notOk(budget.tryWithdraw(0));
  t.ok(budget.tryWithdraw(1000), 'a second later there is one more');
});
