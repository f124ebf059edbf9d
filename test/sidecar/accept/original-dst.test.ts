import t, { type Test } from 'tap';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { originalDstSupport, readOriginalDst } from '../../../sidecar/accept/original-dst.js';
import { REPO_ROOT } from '../../../tools/meshlet-process.js';
import { NetnsKit, netnsUnsupportedReason, waitForJsonLine, type Netns } from '../../helpers/netns.js';

/**
 * SO_ORIGINAL_DST through our addon, on the real kernel path: inside a network namespace, nat
 * REDIRECT rules send a dialled address to a local listener, and the listener must recover the
 * address the client dialled.
 */

/**
 * `npm ci` builds the addon where python3, make and g++ exist (CI installs them). On a machine
 * without them (or not Linux) the addon tests skip and say why; in CI a missing addon fails.
 */
const support = originalDstSupport();
const addonMissing = !support.available && process.env.CI !== 'true' ? `skipped: ${support.reason ?? 'the addon is not built'}` : false;

t.test('the addon is built and loads', { skip: addonMissing }, async (t) => {
  t.equal(support.available, true, support.reason ?? 'available');
});

/** The server side of a plain loopback connection (never redirected); closed at teardown. */
async function acceptDirectConnection(t: Test): Promise<Socket> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  client.on('error', () => undefined);
  t.teardown(() => client.destroy());
  const [socket] = await accepted;
  return socket;
}

t.test('a connection that was not redirected has no original destination (standalone mode)', async (t) => {
  const socket = await acceptDirectConnection(t);
  t.equal(readOriginalDst(socket), undefined);
  socket.destroy();
  t.equal(readOriginalDst(socket), undefined, 'and a closed socket has none either');
});

t.test('without the addon, support says why and every socket reports no original destination', async (t) => {
  // The same module, copied where no build/Release directory exists next to it.
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-no-addon-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'sidecar', 'accept'), { recursive: true });
  await cp(join(REPO_ROOT, 'sidecar', 'accept', 'original-dst.ts'), join(dir, 'sidecar', 'accept', 'original-dst.ts'));
  const copy = (await import(pathToFileURL(join(dir, 'sidecar', 'accept', 'original-dst.ts')).href)) as typeof import('../../../sidecar/accept/original-dst.js');
  const support = copy.originalDstSupport();
  t.equal(support.available, false);
  t.match(support.reason, /native addon meshlet_original_dst\.node is not built .*run 'npx node-gyp rebuild' with python3, make and g\+\+/);
  const socket = await acceptDirectConnection(t);
  t.equal(copy.readOriginalDst(socket), undefined);
  socket.destroy();
});

const unsupported = netnsUnsupportedReason({ iptables: true });
t.test('redirected connections report the address the client dialled', { skip: unsupported ? `skipped: ${unsupported}` : addonMissing }, async (t) => {
  const kit = new NetnsKit();
  t.teardown(() => kit.teardown());
  const client = kit.createNamespace('odst');
  const far = kit.createNamespace('odstfar');
  kit.link(client, far, '198.18.1.1/24', '198.18.1.2/24');
  client.addRoute('198.19.0.0/16', '198.18.1.2');

  const startProbe = async (ns: Netns, host: string) => {
    const child = ns.spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test', 'sidecar', 'accept', 'original-dst-probe.ts'), host], { cwd: REPO_ROOT });
    const ready = await waitForJsonLine<{ port: number; support: { available: boolean; reason?: string } }>(child);
    t.equal(ready.support.available, true, ready.support.reason ?? 'addon loaded inside the namespace');
    return ready.port;
  };
  const dial = (host: string, port: number) => {
    const result = client.run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test', 'helpers', 'tcp-client.ts'), host, String(port)], { cwd: REPO_ROOT });
    if (result.code !== 0) throw new Error(`dial ${host}:${port} failed: ${result.stderr}\n${client.describeNat()}`);
    return JSON.parse(result.stdout) as { originalDst: { host: string; port: number } | null; local: string };
  };

  const v4Port = await startProbe(client, '0.0.0.0');
  const dualPort = await startProbe(client, '::');
  const nat = (tool: string, args: string[]) => client.runChecked(tool, ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', ...args]);
  nat('iptables', ['-d', '198.19.0.10', '--dport', '50051', '-j', 'REDIRECT', '--to-ports', String(v4Port)]);
  nat('iptables', ['-d', '198.19.0.11', '--dport', '8080', '-j', 'REDIRECT', '--to-ports', String(dualPort)]);
  nat('ip6tables', ['-d', '::1', '--dport', '8443', '-j', 'REDIRECT', '--to-ports', String(dualPort)]);

  t.same(dial('198.19.0.10', 50051).originalDst, { host: '198.19.0.10', port: 50051 }, 'IPv4 listener');
  const mapped = dial('198.19.0.11', 8080);
  t.same(mapped.originalDst, { host: '198.19.0.11', port: 8080 }, 'IPv4 client on a dual-stack listener');
  t.match(mapped.local, /^::ffff:127\.0\.0\.1:/, 'that connection really arrived IPv4-mapped');
  const v6 = dial('::1', 8443);
  t.same(v6.originalDst, { host: '::1', port: 8443 }, 'IPv6 (IP6T_SO_ORIGINAL_DST)');
  t.match(v6.local, /^::1:/);

  t.equal(dial('127.0.0.1', v4Port).originalDst, null, 'dialled directly: none, although conntrack tracks it');
  t.equal(dial('::1', dualPort).originalDst, null, 'IPv6 dialled directly: none');
});
