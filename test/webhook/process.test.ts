import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import t, { type Test } from 'tap';
import { loadPodFixture } from '../helpers/injector-fixtures.js';
import { runMeshlet, startMeshlet } from '../../tools/meshlet-process.js';
import { makeCertDir, WebhookClient } from '../helpers/webhook-kit.js';

const review = (uid: string) =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid, kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'demo', operation: 'CREATE', object: loadPodFixture('plain') },
  });

async function startProcess(t: Test, shutdownDelay: string) {
  const certs = await makeCertDir();
  t.teardown(certs.cleanup);
  const webhook = await startMeshlet(['webhook', '--host', '127.0.0.1', '--port', '0', '--cert', certs.cert, '--key', certs.key, '--shutdown-delay', shutdownDelay, '--log-level', 'debug']);
  t.teardown(webhook.stop);
  const port = webhook.listening['port'] as number;
  const client = new WebhookClient(port, certs.caPem);
  t.teardown(() => client.close());
  return { child: webhook.child, exited: webhook.exited, waitFor: webhook.waitForLine, client, port, certs };
}

t.test('`meshlet webhook` as a process answers reviews and drains an in-flight one on SIGTERM', async (t) => {
  const { child, exited, waitFor, client, port, certs } = await startProcess(t, '0');
  const first = await client.review(JSON.parse(review('process-1')));
  t.equal(first.status, 200);
  t.equal(first.body.response.patchType, 'JSONPatch');
  await waitFor((l) => l['msg'] === 'review' && l['uid'] === 'process-1' && l['decision'] === 'inject');

  const body = Buffer.from(review('in-flight-at-sigterm'));
  const inFlight = request({ host: '127.0.0.1', port, method: 'POST', path: '/mutate?in-flight', ca: certs.caPem, servername: 'localhost', headers: { 'content-type': 'application/json', 'content-length': String(body.length) } });
  inFlight.on('error', (err) => t.fail(`in-flight review failed: ${err.message}`));
  const responded = once(inFlight, 'response') as Promise<[IncomingMessage]>;
  inFlight.write(body.subarray(0, 64));
  inFlight.flushHeaders();
  // Once the server has the request's headers (its debug line), stop the process.
  await waitFor((l) => l['msg'] === 'request received' && l['url'] === '/mutate?in-flight');
  child.kill('SIGTERM');
  await waitFor((l) => l['msg'] === 'shutting down');
  inFlight.end(body.subarray(64));
  const [response] = await responded;
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  t.equal(response.statusCode, 200, 'the review in flight at SIGTERM is answered');
  t.equal(JSON.parse(Buffer.concat(chunks).toString('utf8')).response.uid, 'in-flight-at-sigterm');
  t.equal(await exited, 0, 'exits 0 after draining');
});

t.test('during the shutdown delay the webhook reports not ready but still answers reviews', async (t) => {
  const { child, exited, waitFor, client } = await startProcess(t, '2');
  t.equal((await client.send('GET', '/readyz')).status, 200);
  child.kill('SIGTERM');
  await waitFor((l) => l['msg'] === 'shutting down');
  t.match(await client.send('GET', '/readyz'), { status: 503, body: { status: 'not ready' } });
  t.equal((await client.review(JSON.parse(review('during-delay')))).status, 200);
  t.equal(await exited, 0);
});

t.test('`meshlet webhook` with unusable flags or files exits non-zero naming them', async (t) => {
  const certs = await makeCertDir();
  t.teardown(certs.cleanup);
  const bad = await runMeshlet(['webhook', '--port', '70000', '--lb-policy', 'fastest']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--port: "70000" is not valid/);
  t.match(bad.stderr, /--cert FILE is required/);
  t.match(bad.stderr, /--lb-policy: "fastest" is not valid/);
  const mismatched = await runMeshlet(['webhook', '--port', '0', '--host', '127.0.0.1', '--cert', certs.cert, '--key', certs.ca]);
  t.equal(mismatched.code, 1);
  t.match(mismatched.stderr, /are not a usable pair/);
});
