import * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { createEchoClient, startEchoBackend, unaryCall, waitForReady, type EchoBackend, type EchoClientInstance, type EchoReply } from '../../helpers/grpc-echo.js';
import { TestSource, startTestProxy, tally } from '../../helpers/proxy-harness.js';
import { waitUntil } from '../../helpers/wait.js';

/**
 * The point of meshlet: one client channel, every endpoint busy. Unmodified @grpc/grpc-js clients
 * (one channel, default pick_first) through the standalone proxy.
 */
/**
 * Real backends named `names`, the standalone proxy over them with `policy`, and one unmodified
 * client channel through it, ready; everything closes at the test's teardown.
 */
async function startScenario(t: Test, names: string[], policy: string): Promise<{ backends: EchoBackend[]; source: TestSource; client: EchoClientInstance }> {
  const backends = await Promise.all(names.map((n) => startEchoBackend(n)));
  const source = new TestSource(backends.map((b) => b.address));
  const { proxy, target } = await startTestProxy(source, { 'lb-policy': policy });
  const client = createEchoClient(target);
  t.teardown(async () => {
    client.close();
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
  });
  await waitForReady(client);
  return { backends, source, client };
}

/** Runs `total` calls with `concurrency` in flight; returns reply backends and errors. */
async function load(client: EchoClientInstance, total: number, concurrency: number, request = {}): Promise<{ backends: string[]; errors: grpc.ServiceError[] }> {
  const backends: string[] = [];
  const errors: grpc.ServiceError[] = [];
  let next = 0;
  const worker = async () => {
    while (next < total) {
      next++;
      try {
        backends.push((await unaryCall(client, request)).backend);
      } catch (err) {
        errors.push(err as grpc.ServiceError);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { backends, errors };
}

/**
 * Equal endpoints, shares checked within `tolerance`. The sequential peak-ewma case is issue 11's
 * real-cluster report (one grpc-js channel, sequential unary calls, 3 equal Pods: 76/151/73 of 300
 * before): 100 ±15 each (33% ±5).
 */
const spreadCases = [
  { name: 'round-robin', policy: 'round-robin', endpoints: 4, calls: 2000, concurrency: 8, tolerance: 0.1 },
  { name: 'least-request', policy: 'least-request', endpoints: 4, calls: 2000, concurrency: 16, tolerance: 0.1 },
  { name: 'peak-ewma (default)', policy: 'peak-ewma', endpoints: 4, calls: 2000, concurrency: 16, tolerance: 0.1 },
  { name: 'peak-ewma (default), sequential calls', policy: 'peak-ewma', endpoints: 3, calls: 300, concurrency: 1, tolerance: 0.15 },
];

for (const c of spreadCases) {
  t.test(`${c.name}: every endpoint gets its share within ±${c.tolerance * 100}% over ${c.calls} calls on one channel`, async (t) => {
    const { client } = await startScenario(t, Array.from({ length: c.endpoints }, (_, i) => `e${i}`), c.policy);
    const { backends: served, errors } = await load(client, c.calls, c.concurrency, { delayMs: c.concurrency > 1 ? 1 : 0 });
    t.equal(errors.length, 0, 'no call failed');
    const share = c.calls / c.endpoints;
    for (const [name, count] of tally(served)) {
      t.ok(Math.abs(count - share) <= share * c.tolerance, `${name} served ${count}, share ${share}`);
    }
    t.equal(tally(served).size, c.endpoints, 'every endpoint served calls');
  });
}

t.test('peak-ewma sends a slow endpoint clearly less than its share', async (t) => {
  const { backends, client } = await startScenario(t, ['fast1', 'fast2', 'fast3', 'slow'], 'peak-ewma');
  backends[3]!.extraDelayMs = 20;
  const { backends: served, errors } = await load(client, 1200, 8);
  t.equal(errors.length, 0);
  const slow = tally(served).get('slow') ?? 0;
  t.ok(slow < 1200 / 4 / 3, `slow endpoint served ${slow} of 1200 (fair share 300)`);
});

t.test('endpoints added and removed under load: zero failed calls, new ones get traffic, removed ones stop', async (t) => {
  const { backends, source, client } = await startScenario(t, ['one', 'two', 'three'], 'least-request');
  source.set([backends[0]!.address, backends[1]!.address]);
  const running = load(client, 3000, 20, { delayMs: 2 });
  const snapshot = () => backends.map((b) => b.calls);
  // Changes come at points of progress of the load, not of time: after 300 calls, then once the added endpoint served 150.
  await waitUntil(() => backends[0]!.calls + backends[1]!.calls >= 300, 10_000, 'the first 300 calls');
  source.set(backends.map((b) => b.address));
  const afterAdd = snapshot();
  await waitUntil(() => backends[2]!.calls >= afterAdd[2]! + 150, 10_000, '150 calls on the added endpoint');
  source.set([backends[1]!.address, backends[2]!.address]);
  const afterRemove = snapshot();
  const { errors } = await running;
  const end = snapshot();
  t.equal(errors.length, 0, `no failed calls (${errors.map((e) => e.message).slice(0, 3).join('; ')})`);
  t.ok(afterRemove[2]! > afterAdd[2]!, 'the added endpoint got traffic');
  t.ok(end[0]! - afterRemove[0]! <= 20, `the removed endpoint got at most its in-flight calls after removal (${end[0]! - afterRemove[0]!})`);
  t.ok(end[1]! > afterRemove[1]! && end[2]! > afterRemove[2]!, 'the remaining endpoints carried the rest');
});

t.test('an endpoint killed mid-stream: the client gets UNAVAILABLE within 2 s, later calls succeed', async (t) => {
  const { backends, client } = await startScenario(t, ['victim', 'survivor'], 'round-robin');
  // Open server streams until one lands on the victim.
  let victimCall: any;
  for (let i = 0; i < 4 && !victimCall; i++) {
    const call = (client as any).serverStream({ count: 100000, delayMs: 20 });
    const first = await new Promise<EchoReply>((resolve) => call.once('data', resolve));
    if (first.backend === 'victim') victimCall = call;
    else {
      call.on('error', () => undefined);
      call.cancel();
    }
  }
  t.ok(victimCall, 'a stream is on the victim');
  const status = new Promise<{ code: number; at: number }>((resolve) => victimCall.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, at: Date.now() })));
  const killedAt = Date.now();
  backends[0]!.server.forceShutdown();
  const { code, at } = await status;
  t.equal(code, grpc.status.UNAVAILABLE, 'the broken stream ends with UNAVAILABLE');
  t.ok(at - killedAt < 2000, `within 2 s (${at - killedAt} ms)`);
  const { backends: served, errors } = await load(client, 50, 5);
  t.equal(errors.length, 0, 'later calls succeed');
  t.same([...new Set(served)], ['survivor']);
});

