import t from 'tap';
import { BALANCE_SCENARIOS, runLoad, startScenarioBackends } from '../../helpers/balance-scenarios.js';
import { TestSource, startTestProxy } from '../../helpers/proxy-harness.js';

/**
 * Issue 11, against real servers: every scenario of the balance-quality table through the
 * standalone proxy with its default policy, on loopback, asserting the goal the bench prints
 * beside the figure (test/helpers/balance-scenarios.ts). Backends answer by request count, not by
 * time. Three figures rest on measured latency (the 20 ms slower endpoint, and equal endpoints
 * with 50 streams in flight, whose time to first headers is all that tells them apart): here
 * client, backends and proxy share one event loop on a shared machine, and a stall inflates some
 * endpoints' latency and not others', so those are held to looser limits (sharedMachineLimit: no
 * endpoint under half its fair share; the slow one under 10%, less than half of what round-robin
 * gives it). The model test (balancer-model.test.ts) holds the same scenarios to the exact goals
 * on a simulated clock, and the bench prints the figures.
 */

for (const scenario of BALANCE_SCENARIOS) {
  t.test(`default policy: ${scenario.name}`, async (t) => {
    const backends = await startScenarioBackends(scenario);
    const joining = scenario.join?.endpoint;
    const source = new TestSource(backends.filter((_, i) => i !== joining).map((b) => b.address));
    const { proxy } = await startTestProxy(source, { 'lb-policy': 'peak-ewma' });
    t.teardown(async () => {
      await proxy.close();
      await Promise.all(backends.map((b) => b.close()));
    });
    const result = await runLoad({
      protocol: scenario.protocol,
      port: proxy.address.port,
      requests: scenario.requests,
      concurrency: scenario.concurrency,
      ratePerSecond: scenario.ratePerSecond,
      before: (index) => {
        if (index === scenario.join?.beforeRequest) source.set(backends.map((b) => b.address));
      },
    });
    t.equal(result.errors, 0, 'no request failed in the proxy');
    const verdict = scenario.judge(result, backends.map((b) => b.name), scenario.sharedMachineLimit);
    t.ok(verdict.met, `${verdict.figure} (goal: ${verdict.goal})`);
  });
}

t.test('the debug view explains the default policy: the parts of each endpoint weight and why each pick went where it did', async (t) => {
  const scenario = BALANCE_SCENARIOS.find((s) => s.name.startsWith('one 503 first') && s.protocol === 'h1')!;
  const backends = await startScenarioBackends(scenario);
  const { proxy } = await startTestProxy(new TestSource(backends.map((b) => b.address)), { 'lb-policy': 'peak-ewma' });
  t.teardown(async () => {
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
  });
  const result = await runLoad({ protocol: 'h1', port: proxy.address.port, requests: 12, concurrency: 1 });
  const failed = backends.find((b) => b.name === result.backends[0])!;
  const view = (await (await fetch(`http://127.0.0.1:${proxy.debugAdmin!.port}/debug/endpoints`)).json()) as any;
  const [target] = view.targets;
  t.equal(target.policy, 'peak-ewma');
  const parts = { latencyMs: Number, equalBelowMs: Number, latencyFactor: Number, failureRatio: Number, failureFactor: Number, ramp: Number, inFlight: Number, weight: Number, cost: Number, credit: Number };
  for (const e of target.endpoints) t.match(e.score, parts, `${e.endpoint} shows every part of its weight`);
  const scored = target.endpoints.find((e: any) => e.endpoint === failed.address);
  t.ok(scored.score.failureRatio > 0 && scored.score.failureFactor > 1, `the endpoint that answered 503 shows its failure evidence (ratio ${scored.score.failureRatio}, ×${scored.score.failureFactor})`);
  t.ok(scored.score.weight > 0.5, `and still most of its weight (${scored.score.weight})`);
  t.equal(target.recentPicks.length, 12);
  for (const pick of target.recentPicks.slice(0, 8)) {
    t.match(pick.why, /^peak-ewma: (lowest cost, \(in flight \d+ \+ 1\) \/ weight = [\d.]+.*, most credit among those \([-\d.]+\)|its turn by weight \(credit [\d.]+ reached a whole pick, [\d.]+\)); weight [\d.]+ of [\d.]+ = latency ×[\d.]+ \([\d.]+ ms\) \/ failures ×[\d.]+$/, pick.chosen);
  }
  t.match(target.recentPicks.at(-1).why, /^new-endpoint: /, 'the first pick of each endpoint says it was new');
});
