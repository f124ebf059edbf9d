import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectCluster } from '../../src/diagnose/cluster.js';
import { diagnoseService } from '../../src/diagnose/diagnose.js';
import { formatDiagnosis } from '../../src/diagnose/report.js';
import { endpointSliceObject, KubeApiServer, serviceObject, type KubeObject } from '../helpers/kube-api.js';
import { diagnoseRole, isAllowed, requestAttributes } from './rbac.js';

/** A meshed caller Pod (sidecar injected), not running, so diagnose only reads the API about it. */
function meshedPod(namespace: string, name: string, serviceAccountName: string, discoveryServer?: string): KubeObject {
  const proxyEnv = discoveryServer === undefined ? [] : [{ name: 'MESHLET_DISCOVERY_SERVER', value: discoveryServer }];
  return {
    metadata: { name, namespace, annotations: { 'meshlet.dev/status': 'injected' } },
    spec: {
      serviceAccountName,
      initContainers: [{ name: 'meshlet-proxy', image: 'ghcr.io/meshlet/meshlet:0.1.0', restartPolicy: 'Always', env: proxyEnv }],
      containers: [{ name: 'app', image: 'example/app:1.0' }],
    },
    status: { phase: 'Pending' },
  };
}

async function diagnose(t: Test, api: KubeApiServer): Promise<{ report: string; access: Awaited<ReturnType<typeof diagnoseService>>['discoveryAccess'] }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-diagnose-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const diagnosis = await diagnoseService(connectCluster(await api.writeKubeconfig(dir)), { namespace: 'demo', service: 'web', clientNamespaces: ['demo', 'shop'], windowMs: 0, scrapeTimeoutMs: 1000 });
  return { report: formatDiagnosis(diagnosis), access: diagnosis.discoveryAccess };
}

async function cluster(t: Test): Promise<KubeApiServer> {
  const api = await KubeApiServer.start({ loadFixtures: false });
  t.teardown(() => api.close());
  api.upsert('services', serviceObject({ name: 'web', namespace: 'demo', clusterIP: '10.96.0.111', ports: [{ port: 80, targetPort: 8080 }] }));
  api.upsert('endpointslices', endpointSliceObject({ name: 'web-1', namespace: 'demo', service: 'web', endpoints: [{ ip: '10.244.1.10', pod: 'web-0' }], ports: [{ port: 8080 }] }));
  api.upsert('pods', meshedPod('demo', 'client-a', 'default'));
  api.upsert('pods', meshedPod('shop', 'orders-0', 'orders'));
  api.upsert('pods', meshedPod('shop', 'orders-1', 'orders'));
  return api;
}

t.test('diagnose names what the callers\' sidecars may not read, per service account, with the command that grants it', async (t) => {
  const api = await cluster(t);
  api.forbid({ plural: 'endpointslices', namespace: 'demo', verb: 'watch' });
  api.forbid({ plural: 'services', clusterWide: true });
  const { report, access } = await diagnose(t, api);
  t.same(
    access.map((a) => [a.namespace, a.serviceAccount, a.checked, a.missing]),
    [
      ['demo', 'default', true, ['watch endpointslices.discovery.k8s.io in namespace demo']],
      ['shop', 'orders', true, ['watch endpointslices.discovery.k8s.io in namespace demo']],
    ],
    'one entry per service account of the meshed callers',
  );
  t.same(access[1]!.missingClusterWide, ['list services cluster-wide', 'watch services cluster-wide']);
  t.match(report, /! sidecars in shop \(service account orders\) may not watch endpointslices\.discovery\.k8s\.io in namespace demo: their requests to web pass through unbalanced/);
  t.match(report, /fix: kubectl create rolebinding meshlet-proxy-discovery-shop --clusterrole=meshlet-proxy-discovery --group=system:serviceaccounts:shop -n demo/);
  t.match(report, /note: sidecars in shop \(service account orders\) may not list services cluster-wide, watch services cluster-wide: a ClusterIP of another namespace passes through/);
  t.match(report, /fix: kubectl create clusterrolebinding meshlet-proxy-service-index-shop --clusterrole=meshlet-proxy-service-index --group=system:serviceaccounts:shop/);
  const role = diagnoseRole();
  for (const request of api.requests) {
    const attrs = requestAttributes(request);
    t.ok(attrs && isAllowed(role.rules, attrs), `manifests/observability/diagnose-rbac.yaml allows ${request.method} ${request.path}`);
  }
});

t.test('with every grant in place diagnose reports nothing missing', async (t) => {
  const api = await cluster(t);
  const { report, access } = await diagnose(t, api);
  t.ok(access.length === 2 && access.every((a) => a.checked && a.missing.length === 0 && a.missingClusterWide.length === 0 && a.fixes.length === 0));
  t.notMatch(report, /may not|fix: kubectl create (cluster)?rolebinding/);
});

t.test('when diagnose may not ask, it says so instead of guessing', async (t) => {
  const api = await cluster(t);
  api.route('POST', /^\/apis\/authorization\.k8s\.io\/v1\/subjectaccessreviews$/, (_req, res) => {
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Forbidden', code: 403, message: 'subjectaccessreviews.authorization.k8s.io is forbidden' }));
  });
  const { report, access } = await diagnose(t, api);
  t.ok(access.every((a) => !a.checked && a.missing.length === 0));
  t.match(report, /\? could not check what the sidecars in demo \(service account default\) may read: diagnose needs create on subjectaccessreviews/);
});

t.test('callers on the shared watcher need no RBAC of their own: missing rules are a note about the fallback, not a failure', async (t) => {
  const api = await cluster(t);
  api.upsert('pods', meshedPod('tools', 'cli-0', 'cli', 'meshlet-discovery.meshlet-system.svc:15010'));
  api.forbid({ plural: 'endpointslices', namespace: 'demo', verb: 'watch' });
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-diagnose-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const diagnosis = await diagnoseService(connectCluster(await api.writeKubeconfig(dir)), { namespace: 'demo', service: 'web', clientNamespaces: ['demo', 'tools'], windowMs: 0, scrapeTimeoutMs: 1000 });
  const report = formatDiagnosis(diagnosis);
  t.same(
    diagnosis.discoveryAccess.map((a) => [a.namespace, a.sharedWatcher]),
    [
      ['demo', false],
      ['tools', true],
    ],
    'the account whose proxies name a discovery server is on the shared watcher',
  );
  t.match(report, /! sidecars in demo \(service account default\) may not watch endpointslices/, 'direct watchers still get the failure');
  t.match(report, /note: sidecars in tools \(service account cli\) get endpoints from meshlet discovery; they may not watch endpointslices\.discovery\.k8s\.io in namespace demo, which only matters while the shared watcher is unreachable/);
  t.notMatch(report, /! sidecars in tools/, 'no failure is reported for them');
});
