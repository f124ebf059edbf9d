import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEchoClient, startEchoBackend, unaryCall } from '../../helpers/grpc-echo.js';
import { endpointSliceObject, KubeApiServer, serviceObject, type SliceEndpointSpec } from '../../helpers/kube-api.js';
import { driveTraffic, startBackends, startProxyProcess, type Traffic } from '../../helpers/traffic-kit.js';
import { waitUntil } from '../../helpers/wait.js';

// The recorded Pods, mapped to real loopback backends: nothing is ever sent to 10.244.x.x.
const WEB_0 = '127.0.0.2';
const WEB_1 = '127.0.0.3';
const WEB_2 = '127.0.0.4';
const REWRITE = { '10.244.1.10': WEB_0, '10.244.2.11': WEB_1, '10.244.3.12': WEB_2 };

/** Backends that served the `count` latest requests. */
function latest(traffic: Traffic, count: number): Set<string | undefined> {
  return new Set(traffic.results.slice(-count).map((r) => r.backend));
}

function servedSince(traffic: Traffic, since: number): Set<string | undefined> {
  return new Set(traffic.results.filter((r) => r.at >= since).map((r) => r.backend));
}

t.test('meshlet proxy --kubeconfig: requests naming the Service follow its endpoints through every change', async (t) => {
  const backends = await startBackends([WEB_0, WEB_1, WEB_2]);
  t.teardown(() => backends.close());
  const api = await KubeApiServer.start({ rewrite: { addresses: REWRITE, port: backends.port } });
  t.teardown(() => api.close());
  api.upsert('services', serviceObject({ name: 'web', namespace: 'demo', clusterIP: '10.96.0.111', ports: [{ port: 80, targetPort: 8080 }] }));
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-e2e-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = await api.writeKubeconfig(dir);
  const proxy = await startProxyProcess(['--kubeconfig', kubeconfig, '--namespace', 'demo', '--lb-policy', 'round-robin']);
  t.teardown(() => proxy.stop());

  const traffic = driveTraffic(proxy.listening['port'], 'web.demo.svc.cluster.local');
  t.teardown(() => traffic.stop());
  await waitUntil(() => traffic.results.length >= 100, 10_000, '100 requests');
  t.same(latest(traffic, 60), new Set([WEB_0, WEB_1]), 'balanced over the two ready Pods; the not-ready one gets nothing');

  const [terminating, becomesReady, terminatedGone, sliceDeleted] = api.recordedChanges();
  api.applyRecorded(terminating!);
  await waitUntil(() => traffic.results.length > 60 && latest(traffic, 60).size === 1 && latest(traffic, 60).has(WEB_0), 5000, 'web-1 to drain');
  t.pass('web-1 terminating: no new requests once the proxy heard of it');

  const readyAt = performance.now();
  api.applyRecorded(becomesReady!);
  await waitUntil(() => servedSince(traffic, readyAt).has(WEB_2), 5000, 'web-2 to get traffic');
  t.comment(`web-2 got its first request ${Math.round(backends.firstSeen.get(WEB_2)! - readyAt)} ms after turning ready`);
  await waitUntil(() => latest(traffic, 60).has(WEB_0) && latest(traffic, 60).has(WEB_2), 5000, 'web-0 and web-2 to share');
  t.notOk(latest(traffic, 60).has(WEB_1), 'the draining Pod still gets nothing new');

  api.applyRecorded(terminatedGone!);
  await api.stop();
  const downAt = performance.now();
  await waitUntil(() => traffic.results.filter((r) => r.at > downAt).length >= 200, 10_000, 'requests while the API is down');
  t.same(servedSince(traffic, downAt + 50), new Set([WEB_0, WEB_2]), 'API down: the last good set keeps serving');
  const adminPort = proxy.listening['admin'].port as number;
  const staleness = async () => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    return Number(/^meshlet_discovery_staleness_seconds\{target="demo\/web:80"\} (\S+)$/m.exec(text)?.[1] ?? NaN);
  };
  const staleFor = await staleness();
  t.ok(staleFor > 0, `staleness is reported while the API is down (${staleFor} s)`);

  api.applyRecorded(sliceDeleted!);
  const upAt = performance.now();
  await api.restart();
  await waitUntil(() => traffic.results.filter((r) => r.at > upAt).length > 60 && latest(traffic, 60).size === 1 && latest(traffic, 60).has(WEB_0), 10_000, 'the change made while down to apply');
  t.pass('API back: the slice deleted meanwhile is gone');
  t.equal(await staleness(), 0, 'fresh again');

  await traffic.stop();
  const failures = traffic.results.filter((r) => r.status !== 200);
  t.equal(failures.length, 0, `no failed request out of ${traffic.results.length}${failures.length ? `: ${JSON.stringify(failures.slice(0, 3))}` : ''}`);
  t.ok(backends.hits.get(WEB_1)! > 0 && backends.hits.get(WEB_2)! > 0, 'every backend served at some point');
});

t.test('gRPC over one HTTP/2 connection: calls naming the Service follow slices added, draining and deleted', async (t) => {
  const names = ['grpc-a', 'grpc-b', 'grpc-c'];
  const first = await startEchoBackend(names[0]!, '127.0.0.2');
  const backends = [first, await startEchoBackend(names[1]!, '127.0.0.3', first.port), await startEchoBackend(names[2]!, '127.0.0.4', first.port)];
  t.teardown(() => Promise.all(backends.map((b) => b.close())));
  const api = await KubeApiServer.start({ loadFixtures: false });
  t.teardown(() => api.close());
  api.upsert('services', serviceObject({ name: 'echo', namespace: 'demo', clusterIP: '10.96.0.150', ports: [{ name: 'grpc', port: 50051, targetPort: 'grpc' }] }));
  const slice = (name: string, endpoints: SliceEndpointSpec[]) => endpointSliceObject({ name, namespace: 'demo', service: 'echo', endpoints, ports: [{ name: 'grpc', port: first.port }] });
  api.upsert('endpointslices', slice('echo-1', [{ ip: '127.0.0.2', pod: 'grpc-a' }, { ip: '127.0.0.3', pod: 'grpc-b' }]));
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-e2e-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const proxy = await startProxyProcess(['--kubeconfig', await api.writeKubeconfig(dir), '--namespace', 'demo', '--lb-policy', 'round-robin']);
  t.teardown(() => proxy.stop());

  const client = createEchoClient(`127.0.0.1:${proxy.listening['port']}`, { 'grpc.default_authority': 'echo.demo:50051' });
  t.teardown(() => client.close());
  const calls: Array<{ backend?: string; error?: string }> = [];
  let stopped = false;
  const deadline = Date.now() + 60_000;
  const loop = (async () => {
    while (!stopped && Date.now() < deadline) {
      await unaryCall(client, { text: 'hi' }, { deadline: new Date(Date.now() + 5000) }).then(
        (reply) => calls.push({ backend: reply.backend }),
        (err: Error) => calls.push({ error: err.message }),
      );
    }
  })();
  t.teardown(async () => {
    stopped = true;
    await loop;
  });
  const recent = (n: number) => new Set(calls.slice(-n).map((c) => c.backend));
  const settle = (check: () => boolean, what: string) => waitUntil(() => calls.length > 40 && check(), 10_000, what);

  await settle(() => recent(40).size === 2 && recent(40).has('grpc-a') && recent(40).has('grpc-b'), 'calls over a and b');
  t.pass('balanced over both ready Pods on one client connection');
  api.upsert('endpointslices', slice('echo-2', [{ ip: '127.0.0.4', pod: 'grpc-c' }]));
  await settle(() => recent(40).size === 3, 'c to join');
  t.pass('a slice added: c takes calls');
  api.upsert('endpointslices', slice('echo-1', [{ ip: '127.0.0.2', pod: 'grpc-a' }, { ip: '127.0.0.3', pod: 'grpc-b', ready: false, serving: true, terminating: true }]));
  await settle(() => recent(40).size === 2 && !recent(40).has('grpc-b'), 'b to drain');
  t.pass('b terminating: no new calls');
  api.remove('endpointslices', 'demo', 'echo-2');
  await settle(() => recent(40).size === 1 && recent(40).has('grpc-a'), 'c to leave');
  t.pass('slice deleted: c gets nothing');
  await api.stop();
  const downAt = calls.length;
  await waitUntil(() => calls.length > downAt + 100, 10_000, 'calls while the API is down');
  t.same(new Set(calls.slice(downAt + 5).map((c) => c.backend)), new Set(['grpc-a']), 'API down: still served');
  stopped = true;
  await loop;
  const failed = calls.filter((c) => c.error);
  t.equal(failed.length, 0, `no failed call out of ${calls.length}${failed.length ? `: ${failed[0]!.error}` : ''}`);
});

t.test('meshlet proxy: requests to the ClusterIP of a Service in another namespace are balanced over its Pods', async (t) => {
  const backends = await startBackends([WEB_0, WEB_1]);
  t.teardown(() => backends.close());
  const api = await KubeApiServer.start({ loadFixtures: false });
  t.teardown(() => api.close());
  api.upsert('services', serviceObject({ name: 'orders', namespace: 'shop', clusterIP: '10.96.7.7', clusterIPs: ['10.96.7.7', 'fd00:96::7'], ports: [{ port: 8080, targetPort: backends.port }] }));
  api.upsert('endpointslices', endpointSliceObject({ name: 'orders-1', namespace: 'shop', service: 'orders', endpoints: [{ ip: WEB_0 }, { ip: WEB_1 }], ports: [{ port: backends.port }] }));
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-e2e-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const proxy = await startProxyProcess(['--kubeconfig', await api.writeKubeconfig(dir), '--namespace', 'demo', '--lb-policy', 'round-robin']);
  t.teardown(() => proxy.stop());
  for (const host of ['10.96.7.7:8080', '[fd00:96::7]:8080']) {
    const traffic = driveTraffic(proxy.listening['port'], host);
    t.teardown(() => traffic.stop());
    await waitUntil(() => traffic.results.length >= 60, 10_000, `60 requests to ${host}`);
    await traffic.stop();
    t.same(new Set(traffic.results.map((r) => r.backend)), new Set([WEB_0, WEB_1]), `${host}: both Pods of shop/orders served, nothing failed`);
  }
});
