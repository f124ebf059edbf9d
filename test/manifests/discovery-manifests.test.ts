import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadAll } from 'js-yaml';
import { DISCOVERY_TOKEN_AUDIENCE, MESHLET_NAMESPACE } from '../../src/common/contract.js';
import { parseCommand } from '../../src/common/config.js';
import { command as discoveryCommand, parseDiscoveryOptions } from '../../src/discovery/main.js';
import { injectPod } from '../../src/inject/injector.js';
import { INJECTOR_FLAGS, parseInjectorConfig } from '../../src/inject/settings.js';
import { loadPodFixture, PINNED_VERSION } from '../helpers/injector-fixtures.js';
import { REPO_ROOT } from '../../tools/meshlet-process.js';

const DIR = join(REPO_ROOT, 'manifests');
const load = (file: string) => (loadAll(readFileSync(join(DIR, file), 'utf8')) as any[]).filter((d) => d !== null);
const docs = load('discovery.yaml');
const one = (kind: string) => {
  const found = docs.filter((d) => d.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind} in discovery.yaml, found ${found.length}`);
  return found[0];
};

t.test('the shared watcher: 2 replicas, PDB, non-root, read-only, no capabilities, resources, probes, flags it accepts', async (t) => {
  const deployment = one('Deployment');
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  t.equal(deployment.spec.replicas, 2);
  t.equal(deployment.metadata.namespace, MESHLET_NAMESPACE);
  t.match(pod.securityContext, { runAsNonRoot: true, runAsUser: Number, seccompProfile: { type: 'RuntimeDefault' } });
  t.not(pod.securityContext.runAsUser, 0);
  t.match(container.securityContext, { runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  t.equal(container.securityContext.capabilities.add, undefined, 'no capability added');
  t.ok(container.resources.requests.cpu && container.resources.requests.memory && container.resources.limits.memory, 'requests and a memory limit');
  t.equal(container.args[0], 'discovery');
  const options = parseDiscoveryOptions(parseCommand(discoveryCommand, container.args.slice(1), {}));
  const port = container.ports.find((p: any) => p.name === 'discovery');
  t.equal(options.listen.port, port.containerPort, '--listen is the declared port');
  t.match(container.readinessProbe.httpGet, { path: '/readyz', port: 'discovery' });
  t.match(container.livenessProbe.httpGet, { path: '/healthz', port: 'discovery' });
  t.equal(pod.serviceAccountName, one('ServiceAccount').metadata.name);
  t.same(one('PodDisruptionBudget').spec.selector.matchLabels, deployment.spec.selector.matchLabels);
  const service = one('Service');
  t.same(service.spec.selector, deployment.spec.selector.matchLabels);
  t.equal(service.spec.ports[0].targetPort, 'discovery');
});

t.test('its ClusterRole: list and watch Services and EndpointSlices, create TokenReviews, nothing else; bound to its service account', async (t) => {
  const role = one('ClusterRole');
  t.same(role.rules, [
    { apiGroups: [''], resources: ['services'], verbs: ['list', 'watch'] },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
  ]);
  const binding = one('ClusterRoleBinding');
  t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
  t.same(binding.subjects, [{ kind: 'ServiceAccount', name: one('ServiceAccount').metadata.name, namespace: MESHLET_NAMESPACE }]);
});

t.test('the installed webhook points injected proxies at this Service, with a token for its audience', async (t) => {
  const webhook = load('webhook-deployment.yaml').find((d) => d.kind === 'Deployment');
  const args: string[] = webhook.spec.template.spec.containers[0].args;
  const config = parseInjectorConfig(parseCommand({ name: 'webhook', summary: '', flags: INJECTOR_FLAGS }, args.filter((a) => a.startsWith('--proxy-image') || a.startsWith('--discovery-server')), {}));
  const service = one('Service');
  t.equal(config.discoveryServer, `${service.metadata.name}.${service.metadata.namespace}.svc:${service.spec.ports[0].port}`);
  const outcome = injectPod(loadPodFixture('plain'), 'demo', config, PINNED_VERSION);
  if (outcome.kind !== 'injected') return t.fail('the plain Pod is meshed');
  const proxy = [...(outcome.pod.spec!.initContainers ?? []), ...outcome.pod.spec!.containers].find((c) => c.name === 'meshlet-proxy')!;
  t.same(proxy.env!.find((e) => e.name === 'MESHLET_DISCOVERY_SERVER')?.value, config.discoveryServer);
  const volume = outcome.pod.spec!.volumes!.find((v) => v.projected?.sources?.some((s) => s.serviceAccountToken?.audience === DISCOVERY_TOKEN_AUDIENCE));
  t.ok(volume, `a projected token for the audience ${DISCOVERY_TOKEN_AUDIENCE}`);
  t.ok(proxy.volumeMounts!.some((m) => m.name === volume!.name), 'mounted into the proxy');
});
