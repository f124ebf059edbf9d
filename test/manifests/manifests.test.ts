import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadAll } from 'js-yaml';
import {
  ADMIN_PATH,
  ANNOTATION,
  INJECT_DISABLED,
  INJECT_ENABLED,
  MESHLET_NAMESPACE,
  NAMESPACE_INJECTION_LABEL,
  PROXY_ADMIN_PORT,
  PROXY_UID,
  WEBHOOK_PORT,
} from '../../src/common/contract.js';
import { parseCommand } from '../../src/common/config.js';
import { PROTECTED_NAMESPACES } from '../../src/inject/eligibility.js';
import { command as webhookCommand, parseWebhookOptions } from '../../src/webhook/main.js';
import { REPO_ROOT } from '../../tools/meshlet-process.js';

const DIR = join(REPO_ROOT, 'manifests');
const load = (file: string) => (loadAll(readFileSync(join(DIR, file), 'utf8')) as any[]).filter((d) => d !== null);
const kustomization = load('kustomization.yaml')[0];
const installed = (kustomization.resources as string[]).flatMap((file) => load(file).map((doc) => ({ ...doc, file })));
const find = (kind: string, name?: string) => installed.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
const one = (kind: string, name?: string) => {
  const found = find(kind, name);
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name ?? ''}, found ${found.length}`);
  return found[0];
};

t.test('the kustomization installs every manifest file beside it, each parsing to valid objects', async (t) => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  t.same([...kustomization.resources].sort(), files.sort());
  for (const doc of installed) {
    t.type(doc.apiVersion, 'string', `${doc.file}: apiVersion`);
    t.type(doc.kind, 'string', `${doc.file}: kind`);
    t.type(doc.metadata?.name, 'string', `${doc.file}: metadata.name`);
  }
  const examples = readdirSync(join(DIR, 'examples')).flatMap((f) => load(join('examples', f)));
  t.ok(examples.length >= 2, 'examples parse too');
});

t.test(`namespace ${MESHLET_NAMESPACE} holds the namespaced objects`, async (t) => {
  one('Namespace', MESHLET_NAMESPACE);
  for (const doc of installed.filter((d) => ['Deployment', 'Service', 'ServiceAccount', 'PodDisruptionBudget'].includes(d.kind))) {
    t.equal(doc.metadata.namespace, MESHLET_NAMESPACE, `${doc.kind} ${doc.metadata.name}`);
  }
});

t.test('the webhook Deployment: 2 replicas, PDB, HTTPS probes, non-root, read-only, resource requests, flags it accepts', async (t) => {
  const deployment = one('Deployment', 'meshlet-webhook');
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  t.equal(deployment.spec.replicas, 2);
  t.match(deployment.spec.template.metadata.labels, deployment.spec.selector.matchLabels);
  t.match(container.readinessProbe.httpGet, { path: '/readyz', scheme: 'HTTPS', port: 'https' });
  t.match(container.livenessProbe.httpGet, { path: '/healthz', scheme: 'HTTPS', port: 'https' });
  t.match(pod.securityContext, { runAsNonRoot: true, runAsUser: Number, seccompProfile: { type: 'RuntimeDefault' } });
  t.not(pod.securityContext.runAsUser, 0);
  t.match(container.securityContext, { runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  t.equal(container.securityContext.capabilities.add, undefined, 'no capability added');
  t.ok(container.resources.requests.cpu && container.resources.requests.memory, 'requests set');
  t.equal(container.args[0], 'webhook');
  const options = parseWebhookOptions(parseCommand(webhookCommand, container.args.slice(1), {}));
  t.equal(options.port, container.ports.find((p: any) => p.name === 'https').containerPort);
  t.equal(options.caBundleFor, one('MutatingWebhookConfiguration').metadata.name, '--ca-bundle-for names the shipped configuration');
  const mount = container.volumeMounts.find((m: any) => options.certFile.startsWith(m.mountPath));
  t.ok(mount, 'the certificate comes from a mounted volume');
  t.equal(pod.volumes.find((v: any) => v.name === mount.name).secret.secretName, 'meshlet-webhook-tls');
  t.equal(pod.serviceAccountName, one('ServiceAccount', 'meshlet-webhook').metadata.name);

  const pdb = one('PodDisruptionBudget', 'meshlet-webhook');
  t.same(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
  t.equal(pdb.spec.minAvailable, 1);
  const service = one('Service', 'meshlet-webhook');
  t.same(service.spec.selector, deployment.spec.selector.matchLabels);
  t.equal(service.spec.ports[0].targetPort, 'https');
});

t.test('the MutatingWebhookConfiguration: opt-in only, short timeout, reinvoked if needed, fails closed', async (t) => {
  const config = one('MutatingWebhookConfiguration');
  t.equal(config.webhooks.length, 1);
  const webhook = config.webhooks[0];
  t.same(webhook.admissionReviewVersions, ['v1']);
  t.equal(webhook.sideEffects, 'None');
  t.ok(webhook.timeoutSeconds >= 1 && webhook.timeoutSeconds <= 5, `timeoutSeconds ${webhook.timeoutSeconds}`);
  t.equal(webhook.reinvocationPolicy, 'IfNeeded');
  t.equal(webhook.failurePolicy, 'Fail');
  t.same(webhook.rules, [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }]);
  t.same(webhook.namespaceSelector.matchExpressions[0], { key: NAMESPACE_INJECTION_LABEL, operator: 'In', values: [INJECT_ENABLED] });
  t.same(webhook.namespaceSelector.matchExpressions[1], { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...PROTECTED_NAMESPACES] });
  t.equal(webhook.matchConditions.length, 1);
  t.match(webhook.matchConditions[0].expression, `'${ANNOTATION.inject}' in object.metadata.annotations`);
  t.match(webhook.matchConditions[0].expression, `!= '${INJECT_DISABLED}'`);
  const service = one('Service', webhook.clientConfig.service.name);
  t.equal(webhook.clientConfig.service.namespace, service.metadata.namespace);
  t.equal(webhook.clientConfig.service.port, service.spec.ports[0].port);
  t.equal(webhook.clientConfig.service.path, '/mutate');
  t.equal(webhook.clientConfig.caBundle, undefined, 'caBundle is written by the webhook, never shipped');
});

t.test("the image's user, the webhook's UID and port, and the proxy's admin port in manifests/ are the contract's", async (t) => {
  const user = /^USER (\d+):(\d+)$/m.exec(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  t.same(user?.slice(1).map(Number), [PROXY_UID, PROXY_UID], 'the image runs as PROXY_UID');
  const pod = one('Deployment', 'meshlet-webhook').spec.template.spec;
  const container = pod.containers[0];
  t.match(pod.securityContext, { runAsUser: PROXY_UID, runAsGroup: PROXY_UID, fsGroup: PROXY_UID }, 'the webhook Pod runs as the image user');
  t.match(container.securityContext, { runAsUser: PROXY_UID, runAsGroup: PROXY_UID });
  t.equal(parseWebhookOptions(parseCommand(webhookCommand, container.args.slice(1), {})).port, WEBHOOK_PORT, 'the webhook listens on WEBHOOK_PORT');
  for (const file of ['prometheus-rule.yaml', 'diagnose-rbac.yaml']) {
    const text = readFileSync(join(DIR, 'observability', file), 'utf8');
    const ports = [...text.matchAll(/port (\d+)/g)].map((m) => Number(m[1]));
    t.ok(ports.length > 0, `${file} says where the sidecars' metrics are`);
    t.ok(ports.every((p) => p === PROXY_ADMIN_PORT), `${file}: port ${ports.join(', ')} is PROXY_ADMIN_PORT`);
    t.match(text, ADMIN_PATH.metrics);
  }
});

t.test("the webhook's RBAC is get and patch on its own configuration only", async (t) => {
  const role = one('ClusterRole', 'meshlet-webhook');
  t.same(role.rules, [
    { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: [one('MutatingWebhookConfiguration').metadata.name], verbs: ['get', 'patch'] },
  ]);
  const binding = one('ClusterRoleBinding', 'meshlet-webhook');
  t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'meshlet-webhook' });
  t.same(binding.subjects, [{ kind: 'ServiceAccount', name: 'meshlet-webhook', namespace: MESHLET_NAMESPACE }]);
  t.equal(find('Role').length + find('RoleBinding').length, 0, 'no other grants in the install');
});

t.test("the proxies' discovery role reads Services and EndpointSlices and nothing else", async (t) => {
  const role = one('ClusterRole', 'meshlet-proxy-discovery');
  t.same(role.rules, [
    { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
  ]);
  t.equal(find('ClusterRoleBinding').filter((b) => b.roleRef.name === role.metadata.name).length, 0, 'never granted cluster-wide');
  const [binding] = load(join('examples', 'meshed-namespace-rolebinding.yaml'));
  t.equal(binding.kind, 'RoleBinding');
  t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
  t.same(binding.subjects, [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: `system:serviceaccounts:${binding.metadata.namespace}` }]);
  const [namespace] = load(join('examples', 'meshed-namespace.yaml'));
  t.equal(namespace.metadata.labels[NAMESPACE_INJECTION_LABEL], INJECT_ENABLED);
  t.equal(namespace.metadata.name, binding.metadata.namespace);
});

t.test('no private key is shipped in manifests/ or certs/', async (t) => {
  for (const dir of ['manifests', 'certs']) {
    for (const entry of readdirSync(join(REPO_ROOT, dir), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const text = readFileSync(join(entry.parentPath, entry.name), 'utf8');
      t.notMatch(text, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, `${dir}/${entry.name}`);
    }
  }
});
