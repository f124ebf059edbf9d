import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { generateCertificates, writeCertificates } from '../../src/certs/forge.js';
import { runMeshlet } from '../../tools/meshlet-process.js';

const SERVER_AUTH_OID = '1.3.6.1.5.5.7.3.1';

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-certs-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Handshakes with a real TLS server using the bundle, verifying like any Node client would. */
async function handshake(bundle: ReturnType<typeof generateCertificates>, name: string): Promise<{ authorized: boolean; error?: string }> {
  const server = createServer({ cert: bundle.certPem, key: bundle.keyPem }, (socket) => socket.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const isIp = /^[\d.]+$/.test(name);
    const socket = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: bundle.caCertPem, ...(isIp ? {} : { servername: name }) });
        return await new Promise((resolve) => {
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve({ authorized: true });
      });
      socket.once('error', (err) => resolve({ authorized: false, error: err.message }));
    });
  } finally {
    server.close();
  }
}

t.test('the serving certificate is signed by the CA and valid for the names and IPs asked for', async (t) => {
  const bundle = generateCertificates({ names: ['meshlet-webhook.meshlet-system.svc', 'localhost', '127.0.0.1'], validityDays: 30 });
  const ca = new X509Certificate(bundle.caCertPem);
  const cert = new X509Certificate(bundle.certPem);
  t.ok(ca.ca, 'the CA is a CA');
  t.notOk(cert.ca, 'the serving certificate is not');
  t.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'signed by the CA');
  t.equal(cert.checkHost('meshlet-webhook.meshlet-system.svc'), 'meshlet-webhook.meshlet-system.svc');
  t.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  t.equal(cert.checkHost('other.example'), undefined);
  t.ok((cert.keyUsage ?? []).includes(SERVER_AUTH_OID), 'usable for TLS servers');
  const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
  t.ok(days > 29 && days <= 30, `valid for 30 days (${days.toFixed(2)})`);
  t.ok(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(bundle.keyPem)), 'the key belongs to the certificate');
});

t.test('a TLS client trusting only the CA accepts the server for its names and refuses others', async (t) => {
  const bundle = generateCertificates({ names: ['localhost', '127.0.0.1'] });
  t.same(await handshake(bundle, 'localhost'), { authorized: true });
  t.same(await handshake(bundle, '127.0.0.1'), { authorized: true });
  t.equal((await handshake(bundle, 'evil.example')).authorized, false);
  const stranger = generateCertificates({ names: ['localhost'] });
  const mixed = { ...bundle, caCertPem: stranger.caCertPem };
  t.equal((await handshake(mixed, 'localhost')).authorized, false, 'another CA does not vouch for it');
});

t.test('keys are written 0600 and the directory 0700; certificates are readable', async (t) => {
  const dir = join(await tempDir(t), 'nested', 'out');
  const paths = await writeCertificates(dir, generateCertificates({ names: ['localhost'] }));
  t.equal((await stat(paths.key)).mode & 0o777, 0o600);
  t.equal((await stat(dir)).mode & 0o777, 0o700);
  t.equal((await stat(paths.cert)).mode & 0o777, 0o644);
  t.match(await readFile(paths.key, 'utf8'), /^-----BEGIN RSA PRIVATE KEY-----/);
});

t.test('`meshlet certs` as a real process writes a usable CA, certificate and 0600 key', async (t) => {
  const dir = join(await tempDir(t), 'tls');
  const run = await runMeshlet(['certs', '--out', dir, '--dns', 'meshlet-webhook.meshlet-system.svc', '--dns', '127.0.0.1', '--days', '10']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /wrote .*ca\.crt, .*tls\.crt and .*tls\.key \(valid 10 days for meshlet-webhook\.meshlet-system\.svc, 127\.0\.0\.1\)/);
  t.equal((await stat(join(dir, 'tls.key'))).mode & 0o777, 0o600);
  const cert = new X509Certificate(await readFile(join(dir, 'tls.crt')));
  t.ok(cert.checkIssued(new X509Certificate(await readFile(join(dir, 'ca.crt')))));
  t.equal(cert.checkHost('meshlet-webhook.meshlet-system.svc'), 'meshlet-webhook.meshlet-system.svc');
});

t.test('`meshlet certs` refuses missing or bad flags, naming each, and writes nothing', async (t) => {
  const dir = join(await tempDir(t), 'never');
  const run = await runMeshlet(['certs', '--out', dir, '--dns', 'Bad_Name!', '--days', 'soon']);
  t.equal(run.code, 2);
  t.match(run.stderr, /--dns: "Bad_Name!" is not valid; allowed: a lower-case DNS name or an IP address/);
  t.match(run.stderr, /--days: "soon" is not valid/);
  await t.rejects(stat(dir), { code: 'ENOENT' });
  const none = await runMeshlet(['certs', '--out', dir]);
  t.equal(none.code, 2);
  t.match(none.stderr, /--dns NAME is required/);
  const help = await runMeshlet(['certs', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /--out DIR[\s\S]*--dns NAME[\s\S]*--days N/);
});
