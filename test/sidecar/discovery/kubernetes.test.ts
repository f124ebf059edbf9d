import t, { type Test } from 'tap';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKubeConfig } from '../../../sidecar/discovery/kube-config.js';
import { KubernetesSource, type KubernetesSourceOptions } from '../../../sidecar/discovery/kubernetes.js';
import type { Target } from '../../../sidecar/discovery/source.js';
import { endpointSliceObject, KubeApiServer, serviceObject } from '../../helpers/kube-api.js';
import { captureLogs } from '../../helpers/log-capture.js';
import { describeSet, waitForEndpoints, waitUntil } from '../../helpers/wait.js';

const WEB_SERVICE = serviceObject({ name: 'web', namespace: 'demo', clusterIP: '10.96.0.111', ports: [{ port: 80, targetPort: 8080 }] });
const FAST_TUNING = { initialBackoffMs: 50, maxBackoffMs: 300, requestTimeoutMs: 2000 };

async function setUp(t: Test, options: Partial<KubernetesSourceOptions> = {}, configure?: (api: KubeApiServer) => void) {
  const api = await KubeApiServer.start({ token: 'sa-token' });
  api.upsert('services', WEB_SERVICE);
  configure?.(api);
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-kube-'));
  const kubeconfig = await api.writeKubeconfig(dir);
  const logs = captureLogs();
  const source = new KubernetesSource(await loadKubeConfig({ kubeconfig, inCluster: false }), { namespace: 'demo', clusterDomain: 'cluster.local', tuning: FAST_TUNING, ...options }, logs.log);
  t.teardown(async () => {
    await source.close();
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { api, source, ...logs };
}

async function resolveWeb(t: Test, source: KubernetesSource): Promise<Target> {
  const target = await source.resolve({ authority: 'web' });
  if (!target) throw new Error('web did not resolve');
  t.teardown(target.subscribe(() => {}));
  return target;
}

const endpointSlicesLists = (api: KubeApiServer) => api.requests.filter((r) => r.path.endsWith('/endpointslices') && r.verb === 'list').length;

t.test('the recorded EndpointSlices of demo/web become its endpoints: ready ones only', async (t) => {
  const { source, api } = await setUp(t);
  const target = await resolveWeb(t, source);
  t.equal(target.id, 'demo/web:80');
  t.same(describeSet(target.endpoints), ['10.244.1.10:8080 ready', '10.244.2.11:8080 ready'], '10.244.3.12 is neither ready nor serving: left out');
  t.match(target.endpoints.get('10.244.1.10:8080'), { pod: 'web-0', zone: 'zone-a' });
  t.equal(target.stale, false);
  t.ok(target.lastSyncedAt! > Date.now() - 5000);
  await api.waitForWatches('endpointslices');
  const list = api.requests.find((r) => r.verb === 'list' && r.path.endsWith('/endpointslices'));
  t.match(list, { path: '/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices', query: { labelSelector: 'kubernetes.io/service-name=web' } });
  const watch = api.requests.find((r) => r.verb === 'watch' && r.path.endsWith('/endpointslices'));
  t.match(watch?.query, { labelSelector: 'kubernetes.io/service-name=web', resourceVersion: api.resourceVersion, allowWatchBookmarks: 'true' }, 'watches from the list RV, by the Service label');
  t.equal(watch?.authorization, 'Bearer sa-token', 'authenticated with the kubeconfig token');
});

t.test('the recorded changes are followed one by one: terminating drains, ready joins, removed leaves', async (t) => {
  const { source, api } = await setUp(t);
  const target = await resolveWeb(t, source);
  await api.waitForWatches('endpointslices');
  const [terminating, becomesReady, terminatedGone, sliceDeleted] = api.recordedChanges();
  const steps: Array<[typeof terminating, string[]]> = [
    [terminating, ['10.244.1.10:8080 ready', '10.244.2.11:8080 draining']],
    [becomesReady, ['10.244.1.10:8080 ready', '10.244.2.11:8080 draining', '10.244.3.12:8080 ready']],
    [terminatedGone, ['10.244.1.10:8080 ready', '10.244.3.12:8080 ready']],
    [sliceDeleted, ['10.244.1.10:8080 ready']],
  ];
  for (const [event, expected] of steps) {
    api.applyRecorded(event!);
    const set = await waitForEndpoints(target, (s) => describeSet(s).join() === expected.join(), 3000, expected.join(', '));
    t.same(describeSet(set), expected, `${event!.type} ${event!.object.metadata.name}`);
  }
});

t.test('every way of naming the Service, its ClusterIP and its Pod IPs resolve to one target', async (t) => {
  const { source, lines } = await setUp(t);
  const web = await resolveWeb(t, source);
  for (const authority of ['web:80', 'web.demo', 'web.demo.svc:80', 'web.demo.svc.cluster.local', 'WEB.demo.svc.cluster.local.:80']) {
    t.equal(await source.resolve({ authority }), web, authority);
  }
  t.equal(await source.resolve({ originalDst: { host: '10.96.0.111', port: 80 } }), web, 'ClusterIP:port');
  t.equal(await source.resolve({ authority: '10.96.0.111:80' }), web, 'a ClusterIP authority');
  t.equal(await source.resolve({ authority: 'example.com', originalDst: { host: '10.96.0.111', port: 80 } }), web, 'not a Service name: the original destination decides');
  t.equal(await source.resolve({ originalDst: { host: '10.244.2.11', port: 8080 } }), web, 'a Pod IP:targetPort is balanced over its Service');
  t.equal(await source.resolve({ originalDst: { host: '10.244.1.10', port: 8080 } }), web);
  t.equal(lines.filter((l) => /Pod IP/.test(l.msg)).length, 1, 'said once');
  t.match(lines.find((l) => /Pod IP/.test(l.msg)), { level: 'info', endpoint: '10.244.2.11', service: 'demo/web' });
});

t.test('what is not a Service meshlet can find passes through (undefined)', async (t) => {
  const { source, api } = await setUp(t, {}, (api) => {
    api.upsert('services', serviceObject({ name: 'ext', namespace: 'demo', clusterIP: '', type: 'ExternalName', externalName: 'example.com', ports: [{ port: 80 }] }));
  });
  for (const hint of [
    { authority: 'cart' },
    { authority: 'web:8080' },
    { authority: 'web.other' },
    { authority: 'ext' },
    { authority: 'web.demo.svc.other.domain' },
    { originalDst: { host: '10.96.0.112', port: 80 } },
    { originalDst: { host: '10.96.0.111', port: 443 } },
    { originalDst: { host: '198.18.0.1', port: 80 } },
    {},
  ]) {
    t.equal(await source.resolve(hint), undefined, JSON.stringify(hint));
  }
  t.equal(api.openWatches('endpointslices'), 0, 'no EndpointSlice watch was started for them');
});

t.test('watches start lazily per Service and stop when it goes unused', async (t) => {
  const { source, api } = await setUp(t, { idleTimeoutMs: 300 }, (api) => {
    api.upsert('services', serviceObject({ name: 'cart', namespace: 'demo', clusterIP: '10.96.0.112', ports: [{ port: 80, targetPort: 8080 }] }));
  });
  t.equal(api.openWatches(), 0, 'nothing is watched before the first request');
  const web = (await source.resolve({ authority: 'web' }))!;
  const unsubscribe = web.subscribe(() => {});
  const cart = (await source.resolve({ authority: 'cart' }))!;
  t.ok(cart);
  await api.waitForWatches('endpointslices', 2);
  t.same(source.watchedServices, ['demo/cart', 'demo/web']);
  t.notOk(api.requests.some((r) => r.path === '/apis/discovery.k8s.io/v1/endpointslices' || r.path === '/api/v1/services'), 'nothing cluster-wide');
  await waitUntil(() => source.watchedServices.length === 1, 3000, 'cart to go idle');
  t.same(source.watchedServices, ['demo/web'], 'web has a subscriber and stays');
  await waitUntil(() => api.openWatches('endpointslices') === 1, 3000, 'the cart watch to close');
  unsubscribe();
  await waitUntil(() => source.watchedServices.length === 0, 3000, 'web to go idle');
  await waitUntil(() => api.openWatches() === 0, 3000, 'every watch to close');
  const again = await resolveWeb(t, source);
  t.equal(again.endpoints.ready.length, 2, 'a later request starts over');
});

t.test('slices added to a Service are merged, IPv4 and IPv6, and named targetPorts follow each slice', async (t) => {
  const { source, api } = await setUp(t, {}, (api) => {
    api.upsert('services', serviceObject({ name: 'grpc', namespace: 'demo', clusterIP: '10.96.0.120', clusterIPs: ['10.96.0.120', 'fd00:96::120'], ports: [{ name: 'grpc', port: 50051, targetPort: 'grpc-port' }, { name: 'metrics', port: 9090, targetPort: 9090 }] }));
    api.upsert('endpointslices', endpointSliceObject({ name: 'grpc-v4', namespace: 'demo', service: 'grpc', endpoints: [{ ip: '10.244.1.20', pod: 'grpc-a' }], ports: [{ name: 'grpc', port: 50051 }, { name: 'metrics', port: 9090 }] }));
  });
  const grpc = (await source.resolve({ authority: 'grpc:50051' }))!;
  t.teardown(grpc.subscribe(() => {}));
  t.same(describeSet(grpc.endpoints), ['10.244.1.20:50051 ready']);
  api.upsert('endpointslices', endpointSliceObject({ name: 'grpc-v6', namespace: 'demo', service: 'grpc', addressType: 'IPv6', endpoints: [{ ip: 'fd00:244::21', pod: 'grpc-b' }], ports: [{ name: 'grpc', port: 50051 }] }));
  api.upsert('endpointslices', endpointSliceObject({ name: 'grpc-other-port', namespace: 'demo', service: 'grpc', endpoints: [{ ip: '10.244.1.22', pod: 'grpc-c' }], ports: [{ name: 'grpc', port: 6000 }] }));
  const set = await waitForEndpoints(grpc, (s) => s.size === 3, 3000, 'three endpoints');
  t.same(describeSet(set), ['10.244.1.20:50051 ready', '10.244.1.22:6000 ready', '[fd00:244::21]:50051 ready'], 'a Pod whose named port is 6000 is reached on 6000');
  t.equal(await source.resolve({ originalDst: { host: 'fd00:96::120', port: 50051 } }), grpc, 'the IPv6 ClusterIP maps too');
  t.equal(await source.resolve({ originalDst: { host: '10.244.1.22', port: 6000 } }), grpc, 'a Pod IP on its own target port maps to the Service port');
  const metrics = (await source.resolve({ authority: 'grpc.demo:9090' }))!;
  t.same(describeSet(metrics.endpoints), ['10.244.1.20:9090 ready'], 'each Service port is its own target');
});

t.test('a watch the server closes is resumed from its resourceVersion, without a relist', async (t) => {
  const { source, api } = await setUp(t);
  const target = await resolveWeb(t, source);
  await api.waitForWatches('endpointslices');
  const lists = endpointSlicesLists(api);
  const listedRv = api.resourceVersion;
  api.closeWatches('endpointslices');
  const [terminating] = api.recordedChanges();
  api.applyRecorded(terminating!);
  await waitForEndpoints(target, (s) => s.get('10.244.2.11:8080')?.state === 'draining', 3000, 'the change made while the watch was closed');
  await api.waitForWatches('endpointslices');
  t.equal(endpointSlicesLists(api), lists, 'no relist');
  const resumed = api.requests.filter((r) => r.verb === 'watch' && r.path.endsWith('/endpointslices')).at(-1);
  t.equal(resumed?.query.resourceVersion, listedRv, 'resumed from the last RV it had seen');
  t.equal(target.stale, false);
});

t.test('410 Gone relists and the set follows what changed meanwhile', async (t) => {
  const { source, api, lines } = await setUp(t);
  const target = await resolveWeb(t, source);
  await api.waitForWatches('endpointslices');
  const lists = endpointSlicesLists(api);
  api.remove('endpointslices', 'demo', 'web-7xk2p');
  api.expireHistory();
  api.upsert('endpointslices', endpointSliceObject({ name: 'web-new', namespace: 'demo', service: 'web', endpoints: [{ ip: '10.244.4.40', pod: 'web-4' }], ports: [{ port: 8080 }] }));
  await waitForEndpoints(target, (s) => s.has('10.244.4.40:8080'), 3000, 'the slice added after the relist');
  t.ok(endpointSlicesLists(api) > lists, 'relisted');
  t.notOk(target.endpoints.has('10.244.1.10:8080'), 'the slice deleted before the 410 is gone');
  t.ok(lines.some((l) => l.msg === 'resource version expired, relisting'));
});

t.test('a 410 ERROR event when resuming a watch after an apiserver restart also relists', async (t) => {
  const { source, api } = await setUp(t);
  const target = await resolveWeb(t, source);
  await api.waitForWatches('endpointslices');
  const listedRv = api.resourceVersion;
  await api.stop();
  await waitUntil(() => target.stale, 3000, 'the target to turn stale');
  api.expireHistory();
  api.remove('endpointslices', 'demo', 'web-7xk2p');
  await api.restart();
  await waitForEndpoints(target, (s) => s.size === 0 && !target.stale, 5000, 'the relisted (empty) set');
  const watches = api.requests.filter((r) => r.verb === 'watch' && r.path.endsWith('/endpointslices'));
  t.ok(watches.some((w, i) => i > 0 && w.query.resourceVersion === listedRv), 'first tried to resume, got 410');
});

t.test('the API down for a while: the last good set stays, marked stale; back up, it catches up', async (t) => {
  const { source, api, lines, waitForCount } = await setUp(t);
  const target = await resolveWeb(t, source);
  await api.waitForWatches('endpointslices');
  const syncedBefore = target.lastSyncedAt!;
  await api.stop();
  await waitUntil(() => target.stale, 3000, 'stale');
  t.same(describeSet(target.endpoints), ['10.244.1.10:8080 ready', '10.244.2.11:8080 ready'], 'still the last good set');
  t.equal(source.isApiReachable, false);
  t.equal(await source.resolve({ authority: 'web' }), target, 'known targets still resolve while the API is down');
  await waitForCount((l) => l.msg === 'API still unreachable' && l.service === 'demo/web', 3, 5000, 'three retries of the endpoints watch');
  t.equal(lines.filter((l) => l.msg === 'API unreachable, keeping last good set' && l.service === 'demo/web').length, 1, 'warned once, not on every retry');
  const [terminating, becomesReady] = api.recordedChanges();
  api.applyRecorded(terminating!);
  api.applyRecorded(becomesReady!);
  await api.restart();
  const set = await waitForEndpoints(target, (s) => s.size === 3 && !target.stale, 5000, 'the changes made while down');
  t.same(describeSet(set), ['10.244.1.10:8080 ready', '10.244.2.11:8080 draining', '10.244.3.12:8080 ready']);
  t.ok(target.lastSyncedAt! > syncedBefore, 'lastSyncedAt moved on');
  await waitUntil(() => source.isApiReachable, 3000, 'every watch to be back');
  t.ok(lines.some((l) => l.msg === 'API contact restored'));
});

t.test('a missing RBAC permission is logged as an error naming the rule, and recovers once granted', async (t) => {
  const { source, api, lines, waitFor, waitForCount } = await setUp(t, { firstSyncTimeoutMs: 500 }, (api) => api.forbid({ plural: 'endpointslices', namespace: 'demo' }));
  t.equal(await source.resolve({ authority: 'web' }), undefined, 'cannot list: passed through');
  const error = await waitFor((l) => l.level === 'error', 3000, 'the RBAC error');
  t.match(error, { verb: 'list', resource: 'endpointslices', group: 'discovery.k8s.io', namespace: 'demo', statusCode: 403 });
  t.match(error.msg, /missing RBAC permission: allow list endpointslices\.discovery\.k8s\.io in namespace demo/);
  await waitForCount((l) => l.msg === 'API still unreachable' && l.statusCode === 403, 2, 5000, 'two refused retries');
  t.equal(lines.filter((l) => l.level === 'error').length, 1, 'said once while it lasts');
  api.allowAll();
  await waitUntil(() => source.watchedServices.length === 1 && api.openWatches('endpointslices') === 1, 3000, 'the watch to start once allowed');
  const target = await resolveWeb(t, source);
  t.equal(target.endpoints.ready.length, 2);
});

t.test('a missing permission on services names that rule', async (t) => {
  const { source, waitFor } = await setUp(t, { firstSyncTimeoutMs: 300 }, (api) => api.forbid({ plural: 'services', namespace: 'demo', verb: 'list' }));
  t.equal(await source.resolve({ authority: 'web' }), undefined);
  t.match(await waitFor((l) => l.level === 'error', 3000, 'the RBAC error'), { verb: 'list', resource: 'services', group: '', namespace: 'demo', msg: /allow list services in namespace demo/ });
});

t.test('resolve waits for the first list, but only so long', async (t) => {
  await t.test('a slow API is waited for', async (t) => {
    const { source, api } = await setUp(t);
    api.responseDelayMs = 300;
    const target = await source.resolve({ authority: 'web' });
    t.equal(target?.endpoints.ready.length, 2, 'answered with the listed set, not an empty one');
  });
  await t.test('an API slower than the bound passes the request through', async (t) => {
    const { source, api } = await setUp(t, { firstSyncTimeoutMs: 1000 });
    api.responseDelayMs = 4000;
    const started = Date.now();
    t.equal(await source.resolve({ authority: 'web' }), undefined);
    t.ok(Date.now() - started < 3000, 'bounded');
    t.equal(source.isApiReachable, false);
    const again = Date.now();
    t.equal(await source.resolve({ authority: 'web.demo' }), undefined);
    t.ok(Date.now() - again < 500, 'the next request does not wait again for the same list');
  });
});

t.test('Service changes re-map ports: a new targetPort name picks the slice port of that name', async (t) => {
  const { source, api } = await setUp(t, {}, (api) => {
    api.upsert('services', serviceObject({ name: 'multi', namespace: 'demo', clusterIP: '10.96.0.130', ports: [{ name: 'a', port: 80, targetPort: 'a' }] }));
    api.upsert('endpointslices', endpointSliceObject({ name: 'multi-1', namespace: 'demo', service: 'multi', endpoints: [{ ip: '10.244.5.1' }], ports: [{ name: 'a', port: 8080 }, { name: 'b', port: 8081 }] }));
  });
  const target = (await source.resolve({ authority: 'multi' }))!;
  t.teardown(target.subscribe(() => {}));
  t.same(describeSet(target.endpoints), ['10.244.5.1:8080 ready']);
  api.upsert('services', serviceObject({ name: 'multi', namespace: 'demo', clusterIP: '10.96.0.130', ports: [{ name: 'b', port: 80, targetPort: 'b' }] }));
  await waitForEndpoints(target, (s) => s.has('10.244.5.1:8081'), 3000, 'the renamed port');
  t.pass('followed');
});

t.test('in a Pod: TLS with the mounted CA, and the projected token is re-read when kubelet rotates it', async (t) => {
  const api = await KubeApiServer.start({ tls: true, token: 'token-1' });
  api.upsert('services', WEB_SERVICE);
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-token-'));
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, 'token-1\n');
  await writeFile(join(dir, 'ca.crt'), api.caPem!);
  const kc = await loadKubeConfig({ inCluster: true, tokenFile }, { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(api.port) });
  const { log } = captureLogs();
  const source = new KubernetesSource(kc, { namespace: 'demo', clusterDomain: 'cluster.local', tuning: FAST_TUNING }, log);
  t.teardown(async () => {
    await source.close();
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  const target = await resolveWeb(t, source);
  t.equal(target.endpoints.ready.length, 2, 'listed over TLS with the token');

  await writeFile(join(dir, 'token.next'), 'token-2\n');
  await rename(join(dir, 'token.next'), tokenFile);
  api.requireToken('token-2');
  api.closeWatches();
  const [terminating] = api.recordedChanges();
  api.applyRecorded(terminating!);
  await waitForEndpoints(target, (s) => s.get('10.244.2.11:8080')?.state === 'draining', 5000, 'the change seen with the rotated token');
  t.equal(api.requests.at(-1)?.authorization, 'Bearer token-2');
  t.notOk(api.requests.some((r) => r.authorization === 'Bearer token-2' && r.verb === 'list' && r.path.endsWith('/endpointslices')), 'resumed the watch, no relist needed');
});

t.test('bad credentials settings fail at start with what to do', async (t) => {
  await t.rejects(loadKubeConfig({ inCluster: true }, {}), { code: 'MESHLET_MISSING_PREREQUISITE', message: /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT.*--kubeconfig FILE/ });
  await t.rejects(loadKubeConfig({ kubeconfig: '/nonexistent/kubeconfig', inCluster: false }), { message: /--kubeconfig \/nonexistent\/kubeconfig: cannot be loaded/ });
});

t.test('a watch that goes silent past the stall timeout is restarted', async (t) => {
  const { source, api } = await setUp(t, { tuning: { ...FAST_TUNING, stallTimeoutMs: 300 } });
  const target = await resolveWeb(t, source);
  await api.waitForWatches('endpointslices');
  const watchCount = () => api.requests.filter((r) => r.verb === 'watch' && r.path.endsWith('/endpointslices')).length;
  await waitUntil(() => watchCount() >= 3, 5000, 'the silent watch to be replaced twice');
  const [terminating] = api.recordedChanges();
  api.applyRecorded(terminating!);
  await waitForEndpoints(target, (s) => s.get('10.244.2.11:8080')?.state === 'draining', 3000, 'a change on the new watch');
  t.pass('changes still arrive');
});

t.test('a ClusterIP of a Service in another namespace, IPv4 or IPv6, resolves to that Service and follows its slices', async (t) => {
  const { source, api, lines } = await setUp(t, {}, (api) => {
    api.upsert('services', serviceObject({ name: 'orders', namespace: 'shop', clusterIP: '10.96.7.7', clusterIPs: ['10.96.7.7', 'fd00:96::7'], ports: [{ name: 'http', port: 8080, targetPort: 9000 }] }));
    api.upsert('endpointslices', endpointSliceObject({ name: 'orders-1', namespace: 'shop', service: 'orders', endpoints: [{ ip: '10.244.7.1', pod: 'orders-0' }], ports: [{ name: 'http', port: 9000 }] }));
  });
  const byIp = await source.resolve({ originalDst: { host: '10.96.7.7', port: 8080 } });
  t.equal(byIp?.id, 'shop/orders:8080', 'the v4 ClusterIP names shop/orders, not the caller namespace');
  t.teardown(byIp!.subscribe(() => {}));
  t.same(describeSet(byIp!.endpoints), ['10.244.7.1:9000 ready']);
  t.equal(await source.resolve({ originalDst: { host: 'fd00:96::7', port: 8080 } }), byIp, 'the v6 ClusterIP');
  t.equal(await source.resolve({ authority: '[fd00:96::7]:8080' }), byIp, 'a v6 ClusterIP authority');
  t.equal(await source.resolve({ authority: 'orders.shop:8080' }), byIp, 'and by name: the same target');
  t.equal(await source.resolve({ originalDst: { host: '10.96.7.7', port: 81 } }), undefined, 'a port the Service does not have passes through');
  const cluster = api.requests.filter((r) => r.path === '/api/v1/services');
  t.same([...new Set(cluster.map((r) => r.verb))].sort(), ['list', 'watch'], 'one cluster-wide list and watch of Services');
  api.upsert('endpointslices', endpointSliceObject({ name: 'orders-1', namespace: 'shop', service: 'orders', endpoints: [{ ip: '10.244.7.1', pod: 'orders-0' }, { ip: '10.244.7.2', pod: 'orders-1' }], ports: [{ name: 'http', port: 9000 }] }));
  await waitForEndpoints(byIp!, (s) => s.size === 2, 3000, 'the second Pod');
  api.upsert('services', serviceObject({ name: 'late', namespace: 'other', clusterIP: '10.96.8.8', ports: [{ port: 80 }] }));
  let late: Target | undefined;
  for (let attempt = 0; attempt < 60 && late === undefined; attempt++) {
    late = await source.resolve({ originalDst: { host: '10.96.8.8', port: 80 } });
    if (!late) await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(late?.id, 'other/late:80', 'a Service created later resolves through the same watch');
  t.ok(lines.some((l) => l.msg === 'watching the ClusterIPs of every namespace'));
});

t.test('without cluster-wide read on Services, another namespace\'s ClusterIP passes through and the rule to add is logged once', async (t) => {
  const { source, lines, waitFor, waitForCount } = await setUp(t, { firstSyncTimeoutMs: 500 }, (api) => {
    api.upsert('services', serviceObject({ name: 'orders', namespace: 'shop', clusterIP: '10.96.7.7', ports: [{ port: 8080 }] }));
    api.forbid({ plural: 'services', clusterWide: true });
  });
  t.equal(await source.resolve({ originalDst: { host: '10.96.7.7', port: 8080 } }), undefined, 'passed through');
  t.equal((await source.resolve({ originalDst: { host: '10.96.0.111', port: 80 } }))?.id, 'demo/web:80', 'the own namespace\'s ClusterIPs still resolve');
  await waitFor((l) => l.level === 'error', 3000, 'the RBAC error');
  await waitForCount((l) => l.msg === 'API still unreachable' && l.statusCode === 403, 2, 5000, 'two refused retries');
  const errors = lines.filter((l) => l.level === 'error');
  t.equal(errors.length, 1, 'said once while it lasts');
  t.match(errors[0], { verb: 'list', resource: 'services', rule: 'list services cluster-wide', msg: /allow list services cluster-wide \(a ClusterRole .* ClusterRoleBinding/ });
  t.equal(source.isApiReachable, true, 'names still resolve through the API: the DNS fallback is not needed');
});

t.test('a Pod IP owned by two Services passes through, said once; owned by one, it is balanced over that Service', async (t) => {
  const { source, lines } = await setUp(t, {}, (api) => {
    api.upsert('services', serviceObject({ name: 'web-canary', namespace: 'demo', clusterIP: '10.96.0.150', ports: [{ port: 80, targetPort: 8080 }] }));
    api.upsert('endpointslices', endpointSliceObject({ name: 'web-canary-1', namespace: 'demo', service: 'web-canary', endpoints: [{ ip: '10.244.2.11', pod: 'web-1' }], ports: [{ port: 8080 }] }));
  });
  await resolveWeb(t, source);
  t.ok(await source.resolve({ authority: 'web-canary' }), 'both Services are in use');
  t.equal(await source.resolve({ originalDst: { host: '10.244.2.11', port: 8080 } }), undefined, 'web and web-canary both own 10.244.2.11');
  t.equal(await source.resolve({ originalDst: { host: '10.244.2.11', port: 8080 } }), undefined);
  const warnings = lines.filter((l) => l.msg.startsWith('Pod IP belongs to several Services'));
  t.equal(warnings.length, 1, 'said once');
  t.match(warnings[0], { level: 'warn', endpoint: '10.244.2.11', services: ['demo/web', 'demo/web-canary'] });
  t.equal((await source.resolve({ originalDst: { host: '10.244.1.10', port: 8080 } }))?.id, 'demo/web:80', 'only web owns 10.244.1.10');
});

t.test('a refused list passes the request through at once instead of waiting out the first-sync bound', async (t) => {
  const { source } = await setUp(t, { firstSyncTimeoutMs: 10_000 }, (api) => api.forbid({ plural: 'services', clusterWide: true }));
  const started = Date.now();
  t.equal(await source.resolve({ originalDst: { host: '10.96.7.7', port: 8080 } }), undefined, 'an unknown ClusterIP with the cluster-wide Services list forbidden');
  t.ok(Date.now() - started < 5000, `answered after ${Date.now() - started} ms, not after the 10 s bound`);
  const again = Date.now();
  t.equal(await source.resolve({ originalDst: { host: '10.96.7.8', port: 8080 } }), undefined);
  t.ok(Date.now() - again < 5000, 'the next one does not wait either');
});
