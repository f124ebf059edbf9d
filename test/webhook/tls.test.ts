import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { connect, type ConnectionOptions, type SecureVersion } from 'node:tls';
import t, { type Test } from 'tap';
import { generateCertificates } from '../../src/certs/forge.js';
import { startTestWebhook } from '../helpers/webhook-kit.js';

type Handshake = { ok: true; protocol: string | null; cipher: string } | { ok: false; error: string };

/** One real TLS handshake with the webhook, offering only what `offer` says. */
async function handshake(port: number, caPem: string, offer: ConnectionOptions): Promise<Handshake> {
  const socket = connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost', ...offer });
  socket.setTimeout(10_000, () => socket.destroy(new Error('no handshake within 10 s')));
  try {
    await once(socket, 'secureConnect');
    return { ok: true, protocol: socket.getProtocol(), cipher: socket.getCipher().standardName };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  } finally {
    socket.destroy();
  }
}

const tls12 = (ciphers: string): ConnectionOptions => ({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers });
const only = (version: SecureVersion): ConnectionOptions => ({ minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' });

const cases: Array<{ name: string; offer: ConnectionOptions; accepted: boolean; cipher?: RegExp }> = [
  { name: 'TLS 1.3', offer: only('TLSv1.3'), accepted: true, cipher: /^TLS_(AES_\d+_GCM|CHACHA20_POLY1305)_SHA\d+$/ },
  { name: 'TLS 1.2 with ECDHE and AES-GCM', offer: tls12('ECDHE-RSA-AES128-GCM-SHA256'), accepted: true, cipher: /^TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256$/ },
  { name: 'TLS 1.2 with ECDHE and ChaCha20-Poly1305', offer: tls12('ECDHE-RSA-CHACHA20-POLY1305'), accepted: true, cipher: /CHACHA20_POLY1305/ },
  { name: 'TLS 1.2 with AES128-SHA (CBC, no forward secrecy)', offer: tls12('AES128-SHA'), accepted: false },
  { name: 'TLS 1.2 with AES256-GCM-SHA384 (static RSA key exchange)', offer: tls12('AES256-GCM-SHA384'), accepted: false },
  { name: 'TLS 1.2 with ECDHE but CBC (ECDHE-RSA-AES128-SHA)', offer: tls12('ECDHE-RSA-AES128-SHA'), accepted: false },
  { name: 'TLS 1.1', offer: only('TLSv1.1'), accepted: false },
];

async function checkAll(t: Test, port: number, caPem: string): Promise<void> {
  for (const c of cases) {
    const result = await handshake(port, caPem, c.offer);
    if (c.accepted) {
      t.ok(result.ok, `${c.name} is accepted${result.ok ? '' : `: ${result.error}`}`);
      if (result.ok && c.cipher) t.match(result.cipher, c.cipher, `${c.name}: negotiated ${result.cipher}`);
    } else {
      t.notOk(result.ok, `${c.name} is refused${result.ok ? `, but ${result.protocol} ${result.cipher} was negotiated` : ` (${result.error})`}`);
    }
  }
}

t.test('the webhook speaks TLS 1.3 and TLS 1.2 with forward-secret AEAD suites only', async (t) => {
  const kit = await startTestWebhook();
  t.teardown(kit.stop);
  await checkAll(t, kit.webhook.port, kit.certs.caPem);
  const answer = await kit.client.send('GET', '/healthz');
  t.equal(answer.status, 200, 'a default Node client still gets in');
});

t.test('a reloaded certificate keeps the same TLS policy', async (t) => {
  const kit = await startTestWebhook();
  t.teardown(kit.stop);
  const next = generateCertificates({ names: ['localhost', '127.0.0.1'] });
  const reloaded = kit.logs.waitFor((l) => l.msg === 'certificate reloaded', 10_000, '"certificate reloaded"');
  await writeFile(kit.certs.key, next.keyPem);
  await writeFile(kit.certs.cert, next.certPem);
  await reloaded;
  await checkAll(t, kit.webhook.port, next.caCertPem);
});
