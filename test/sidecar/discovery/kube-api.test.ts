import t, { type Test } from 'tap';
import { CoreV1Api, DiscoveryV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import { KubeApiServer, serviceObject } from '../../helpers/kube-api.js';
import { waitUntil } from '../../helpers/wait.js';

// The replay server is shared with other tests (diagnose): its protocol is checked through the real
// client library here, so a regression shows up as a failure of its own.

async function client(t: Test) {
  const api = await KubeApiServer.start();
  t.teardown(() => api.close());
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  return { api, kc, core: kc.makeApiClient(CoreV1Api), discovery: kc.makeApiClient(DiscoveryV1Api) };
}

t.test('lists carry the recorded items and the list resourceVersion', async (t) => {
  const { discovery } = await client(t);
  const list = await discovery.listNamespacedEndpointSlice({ namespace: 'demo', labelSelector: 'kubernetes.io/service-name=web' });
  t.same(list.items.map((s) => s.metadata?.name), ['web-7xk2p', 'web-q9m4d']);
  t.equal(list.metadata?.resourceVersion, '206');
  t.same((await discovery.listNamespacedEndpointSlice({ namespace: 'demo', labelSelector: 'kubernetes.io/service-name=other' })).items, []);
  t.same((await discovery.listNamespacedEndpointSlice({ namespace: 'other' })).items, []);
});

t.test('get returns one object, 404 a Status the client reports', async (t) => {
  const { api, core } = await client(t);
  api.upsert('services', serviceObject({ name: 'web', namespace: 'demo', clusterIP: '10.96.0.111', ports: [{ port: 80, targetPort: 8080 }] }));
  const service = await core.readNamespacedService({ name: 'web', namespace: 'demo' });
  t.equal(service.spec?.clusterIP, '10.96.0.111');
  await t.rejects(core.readNamespacedService({ name: 'nope', namespace: 'demo' }), { code: 404 });
});

t.test('a watch without resourceVersion starts with ADDED for every object, then streams changes', async (t) => {
  const { api, kc } = await client(t);
  const events: string[] = [];
  const controller = await new Watch(kc).watch('/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices', {}, (type, object) => events.push(`${type} ${object.metadata.name}`), () => {});
  t.teardown(() => controller.abort());
  await api.waitForWatches('endpointslices');
  api.remove('endpointslices', 'demo', 'web-q9m4d');
  await waitUntil(() => events.length >= 3, 3000, 'three watch events');
  t.same(events, ['ADDED web-7xk2p', 'ADDED web-q9m4d', 'DELETED web-q9m4d']);
});

t.test('an old resourceVersion gets the recorded 410 Expired ERROR event', async (t) => {
  const { kc } = await client(t);
  const events: Array<{ type: string; code?: number; reason?: string }> = [];
  await new Promise<void>((resolve) => {
    void new Watch(kc).watch('/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices', { resourceVersion: '100' }, (type, object) => events.push({ type, code: object.code, reason: object.reason }), () => resolve());
  });
  t.same(events, [{ type: 'ERROR', code: 410, reason: 'Expired' }]);
});

t.test('403 names verb, resource and group like the apiserver; extra routes answer first', async (t) => {
  const { api, core } = await client(t);
  api.forbid({ plural: 'pods', namespace: 'demo', verb: 'list' });
  await t.rejects(core.listNamespacedPod({ namespace: 'demo' }), { code: 403, body: /cannot list resource \\"pods\\" in API group \\"\\" in the namespace \\"demo\\"/ });
  api.route('GET', /^\/api\/v1\/namespaces\/demo\/pods\/([^/]+)\/proxy\/metrics$/, (_req, res, match) => {
    res.end(`pod ${match[1]}\n`);
  });
  const response = await fetch(`${api.url}/api/v1/namespaces/demo/pods/web-0:9090/proxy/metrics`);
  t.equal(await response.text(), 'pod web-0:9090\n');
});
