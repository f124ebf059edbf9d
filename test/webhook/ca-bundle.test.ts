import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { load } from 'js-yaml';
import { generateCertificates } from '../../src/certs/forge.js';
import { captureLogs } from '../helpers/log-capture.js';
import { publishCaBundle, publishCaBundleWithRetry } from '../../src/webhook/ca-bundle.js';
import { KubeWebhookApi } from '../helpers/kube-webhook-api.js';
import { REPO_ROOT } from '../../tools/meshlet-process.js';
import { startTestWebhook } from '../helpers/webhook-kit.js';

const NAME = 'meshlet-injector';
const shipped = () => load(readFileSync(join(REPO_ROOT, 'manifests', 'mutatingwebhookconfiguration.yaml'), 'utf8')) as any;
const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');

async function api(t: Test, object = shipped()) {
  const server = new KubeWebhookApi();
  server.put(object);
  const kubeconfig = await server.start();
  t.teardown(() => server.stop());
  return { server, kubeconfig };
}

t.test('on start, the webhook writes its CA into the shipped MutatingWebhookConfiguration', async (t) => {
  const { server, kubeconfig } = await api(t);
  const kit = await startTestWebhook({ caBundleFor: NAME, kubeconfig });
  t.teardown(kit.stop);
  t.equal(await kit.webhook.caBundlePublished, true);
  const stored = server.objects.get(NAME);
  t.equal(decode(stored.webhooks[0].clientConfig.caBundle), kit.certs.caPem, 'caBundle is the CA that signed the serving certificate');
  t.same(stored.webhooks[0].clientConfig.service, shipped().webhooks[0].clientConfig.service, 'the rest of clientConfig is untouched');
  const patch = server.requests.find((r) => r.method === 'PATCH')!;
  t.equal(patch.contentType, 'application/json-patch+json');
  t.equal(patch.authorization, `Bearer ${server.token}`);
  t.match(patch.url, `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${NAME}`);
  t.same(
    (patch.body as Array<{ op: string; path: string }>).map((op) => [op.op, op.path]),
    [
      ['test', '/webhooks/0/name'],
      ['add', '/webhooks/0/clientConfig/caBundle'],
    ],
  );
  t.same(
    server.requests.map((r) => r.method),
    ['GET', 'PATCH'],
    'only get and patch, what the RBAC grants',
  );
});

t.test('a CA that is already published is not patched again', async (t) => {
  const { server, kubeconfig } = await api(t);
  const ca = generateCertificates({ names: ['localhost'] }).caCertPem;
  t.equal(await publishCaBundle({ name: NAME, kubeconfig }, ca), 1);
  t.equal(await publishCaBundle({ name: NAME, kubeconfig }, ca), 0);
  t.same(
    server.requests.map((r) => r.method),
    ['GET', 'PATCH', 'GET'],
  );
});

t.test('every webhook entry of the configuration gets the CA', async (t) => {
  const object = shipped();
  object.webhooks.push({ ...structuredClone(object.webhooks[0]), name: 'second.meshlet.dev', clientConfig: { ...object.webhooks[0].clientConfig, caBundle: 'b2xk' } });
  const { server, kubeconfig } = await api(t, object);
  const ca = generateCertificates({ names: ['localhost'] }).caCertPem;
  t.equal(await publishCaBundle({ name: NAME, kubeconfig }, ca), 2);
  t.same(
    server.objects.get(NAME).webhooks.map((w: any) => decode(w.clientConfig.caBundle)),
    [ca, ca],
  );
});

t.test('an API server that is not answering yet is retried with backoff until it does', async (t) => {
  const { server, kubeconfig } = await api(t);
  server.failNext = 2;
  const { log: logger, lines } = captureLogs('info');
  const ca = generateCertificates({ names: ['localhost'] }).caCertPem;
  const ok = await publishCaBundleWithRetry({ name: NAME, kubeconfig }, ca, logger, new AbortController().signal);
  t.equal(ok, true);
  t.equal(lines.filter((l) => l.msg === 'publishing caBundle failed').length, 2, 'each failure is logged');
  t.match(lines.at(-1), { msg: 'caBundle published', webhookConfiguration: NAME, changed: 1 });
  t.equal(decode(server.objects.get(NAME).webhooks[0].clientConfig.caBundle), ca);
});

t.test('a missing configuration is retried and shutting down abandons it', async (t) => {
  const { server, kubeconfig } = await api(t);
  server.objects.clear();
  const { log: logger, lines, waitFor } = captureLogs('info');
  const abort = new AbortController();
  const publishing = publishCaBundleWithRetry({ name: NAME, kubeconfig }, 'ca', logger, abort.signal);
  await waitFor(() => true, 10_000, 'the first log line');
  abort.abort();
  t.equal(await publishing, false);
  t.match(lines[0], { msg: 'publishing caBundle failed', err: { code: 404 } });
});

t.test('a certificate rotation publishes the new CA', async (t) => {
  const { server, kubeconfig } = await api(t);
  const kit = await startTestWebhook({ caBundleFor: NAME, kubeconfig });
  t.teardown(kit.stop);
  await kit.webhook.caBundlePublished;
  const next = generateCertificates({ names: ['localhost', '127.0.0.1'] });
  const reloaded = kit.logs.waitFor((l) => l.msg === 'certificate reloaded', 10_000, '"certificate reloaded"');
  await writeFile(kit.certs.ca, next.caCertPem);
  await writeFile(kit.certs.key, next.keyPem);
  await writeFile(kit.certs.cert, next.certPem);
  await kit.webhook.reloadCertificates();
  await reloaded;
  t.equal(
    decode(server.objects.get(NAME).webhooks[0].clientConfig.caBundle),
    `${next.caCertPem.trimEnd()}\n${kit.certs.caPem.trimEnd()}\n`,
    'the new CA first, the old one kept for replicas that have not reloaded yet',
  );
  const published = kit.logs.lines.map((l, i) => (l['msg'] === 'caBundle published' ? i : -1)).filter((i) => i >= 0);
  t.equal(published.length, 2, 'published on start and on rotation');
  t.ok(published[1]! < kit.logs.lines.findIndex((l) => l['msg'] === 'certificate reloaded'), 'the CA is published before the new certificate is served');
});
