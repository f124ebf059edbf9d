import { once } from 'node:events';
import { copyFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { connect } from 'node:tls';
import t from 'tap';
import { generateCertificates } from '../../src/certs/forge.js';
import { loadPodFixture } from '../helpers/injector-fixtures.js';
import { startTestWebhook, WebhookClient } from '../helpers/webhook-kit.js';

/** The certificate the server presents to a fresh TLS connection that trusts `caPem`. */
async function servedCertificate(port: number, caPem: string): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' });
  try {
    await once(socket, 'secureConnect');
    return socket.getPeerX509Certificate()!.fingerprint256;
  } finally {
    socket.destroy();
  }
}

function review(uid: string) {
  const pod = loadPodFixture('plain');
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid, kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'demo', operation: 'CREATE', object: pod },
  };
}

t.test('new certificate files are served to new connections while an in-flight review completes', async (t) => {
  const kit = await startTestWebhook();
  t.teardown(kit.stop);
  const before = await servedCertificate(kit.webhook.port, kit.certs.caPem);

  // Start a review and stop half-way through its body: it is in flight across the reload.
  const body = Buffer.from(JSON.stringify(review('in-flight-1')));
  const inFlight = request({
    host: '127.0.0.1',
    port: kit.webhook.port,
    method: 'POST',
    path: '/mutate?in-flight-1',
    ca: kit.certs.caPem,
    servername: 'localhost',
    headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
  });
  inFlight.on('error', (err) => t.fail(`in-flight review failed: ${err.message}`));
  inFlight.write(body.subarray(0, 100));
  const responded = once(inFlight, 'response');
  // The server has the review (headers parsed, body incomplete) before the certificate changes.
  await kit.logs.waitFor((l) => l.msg === 'request received' && l['url'] === '/mutate?in-flight-1', 10_000, 'the in-flight request received');

  const next = generateCertificates({ names: ['localhost', '127.0.0.1'] });
  const reloaded = kit.logs.waitFor((l) => l.msg === 'certificate reloaded', 10_000, '"certificate reloaded"');
  // Key first, then certificate: in between the pair does not match and must not be installed.
  await writeFile(kit.certs.key, next.keyPem);
  await writeFile(kit.certs.cert, next.certPem);
  await reloaded;

  const after = await servedCertificate(kit.webhook.port, next.caCertPem);
  t.not(after, before, 'a new connection is served the new certificate');
  const freshClient = new WebhookClient(kit.webhook.port, next.caCertPem);
  t.teardown(() => freshClient.close());
  const fresh = await freshClient.review(review('after-reload'));
  t.equal(fresh.status, 200, 'a client trusting only the new CA gets answers');
  t.equal(fresh.body.response.uid, 'after-reload');

  inFlight.end(body.subarray(100));
  const [response] = (await responded) as [import('node:http').IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  t.equal(response.statusCode, 200, 'the in-flight review completed');
  const answered = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  t.equal(answered.response.uid, 'in-flight-1');
  t.equal(answered.response.patchType, 'JSONPatch');
});

t.test('a certificate that does not match its key is refused and the old one keeps serving', async (t) => {
  const kit = await startTestWebhook();
  t.teardown(kit.stop);
  const before = await servedCertificate(kit.webhook.port, kit.certs.caPem);
  const other = generateCertificates({ names: ['localhost'] });
  await writeFile(kit.certs.cert, other.certPem);
  t.equal(await kit.webhook.reloadCertificates(), false, 'the mismatched pair is not installed');
  await kit.logs.waitFor((l) => l.level === 'warn' && /not usable yet/.test(l.msg) && /not a usable pair/.test(l.err?.message ?? ''), 10_000, 'the warning about the unusable pair');
  t.equal(await servedCertificate(kit.webhook.port, kit.certs.caPem), before, 'the previous certificate is still served');
  t.equal((await kit.client.review(review('still-serving'))).status, 200);
  const reloaded = kit.logs.waitFor((l) => l.msg === 'certificate reloaded', 10_000, '"certificate reloaded"');
  await writeFile(kit.certs.key, other.keyPem);
  await kit.webhook.reloadCertificates();
  await reloaded;
  t.not(await servedCertificate(kit.webhook.port, other.caCertPem), before, 'once the key matches, the pair is installed');
});

t.test('a certificate replaced by copying over it is picked up by the watcher', async (t) => {
  const kit = await startTestWebhook();
  t.teardown(kit.stop);
  const staged = await startTestWebhook();
  t.teardown(staged.stop);
  const reloaded = kit.logs.waitFor((l) => l.msg === 'certificate reloaded', 10_000, '"certificate reloaded"');
  await copyFile(staged.certs.key, kit.certs.key);
  await copyFile(staged.certs.cert, kit.certs.cert);
  await reloaded;
  t.equal(await servedCertificate(kit.webhook.port, staged.certs.caPem), await servedCertificate(staged.webhook.port, staged.certs.caPem));
});
