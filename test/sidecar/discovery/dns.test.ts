import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsSource, type DnsSourceOptions } from '../../../sidecar/discovery/dns.js';
import { captureLogs } from '../../helpers/log-capture.js';
import { describeSet, waitForEndpoints, waitUntil } from '../../helpers/wait.js';

/** How many ports dnsmasq is started on before giving up. */
const MAX_PORT_ATTEMPTS = 5;

/** A real dnsmasq on a loopback port answering from a hosts file we edit; SIGHUP re-reads it. */
class Dnsmasq {
  private process: ChildProcess | undefined;
  private constructor(
    private readonly binary: string,
    readonly hostsFile: string,
    readonly port: number,
  ) {}

  static async start(t: Test, binary: string, hosts: string): Promise<Dnsmasq> {
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-dns-'));
    await chmod(dir, 0o755);
    const hostsFile = join(dir, 'hosts');
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    // dnsmasq binds the port over UDP and TCP: a port free for UDP may be taken for TCP by another
    // process on this shared machine, so a few ports are tried.
    for (let attempt = 1; ; attempt++) {
      const server = new Dnsmasq(binary, hostsFile, await freeUdpPort());
      await server.write(hosts);
      t.teardown(() => server.stop());
      try {
        await server.spawn();
        return server;
      } catch (err) {
        await server.stop();
        if (attempt >= MAX_PORT_ATTEMPTS || !/Address already in use/.test((err as Error).message)) throw err;
      }
    }
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async write(hosts: string): Promise<void> {
    await writeFile(this.hostsFile, hosts, { mode: 0o644 });
  }

  /** Re-reads the hosts file, as after an edit. */
  reload(): void {
    this.process?.kill('SIGHUP');
  }

  async spawn(): Promise<void> {
    const args = ['--no-daemon', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--local=/cluster.local/', `--addn-hosts=${this.hostsFile}`, `--port=${this.port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--pid-file=', '--local-ttl=0', '--no-negcache'];
    const child = spawn(this.binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', () => {});
    this.process = child;
    const probe = new Resolver({ timeout: 200, tries: 1 });
    probe.setServers([this.address]);
    for (let attempt = 0; attempt < 50 && child.exitCode === null; attempt++) {
      const answered = await probe.resolve4('ready.invalid').then(
        () => true,
        (err: NodeJS.ErrnoException) => err.code !== 'ETIMEOUT' && err.code !== 'ECONNREFUSED',
      );
      if (answered) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`dnsmasq did not start answering on ${this.address}: ${stderr}`);
  }

  async stop(): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address();
  socket.close();
  return port;
}

function runTests(binary: string): void {
  const NAME = 'db.demo.svc.cluster.local';
  const HOSTS = ['127.0.0.11 db.demo.svc.cluster.local', '127.0.0.12 db.demo.svc.cluster.local', '127.0.0.13 db.demo.svc.cluster.local', ''].join('\n');

  function source(t: Test, dns: Dnsmasq, options: Partial<DnsSourceOptions> = {}) {
    const logs = captureLogs();
    const created = new DnsSource({ namespace: 'demo', clusterDomain: 'cluster.local', servers: [dns.address], intervalMs: 100, timeoutMs: 300, ...options }, logs.log);
    t.teardown(() => created.close());
    return { source: created, ...logs };
  }

  t.test('--upstream-dns balances over every A and AAAA record of the name', async (t) => {
    const dns = await Dnsmasq.start(t, binary, `${HOSTS}fd00::14 db.demo.svc.cluster.local\n`);
    const { source: dnsSource } = source(t, dns, { upstream: { host: NAME, port: 5432 } });
    const target = (await dnsSource.resolve({ authority: 'anything' }))!;
    t.equal(target.id, `${NAME}:5432`);
    t.same(describeSet(target.endpoints), ['127.0.0.11:5432 ready', '127.0.0.12:5432 ready', '127.0.0.13:5432 ready', '[fd00::14]:5432 ready']);
    t.equal(await dnsSource.resolve({}), target, 'every hint, the same target');
  });

  t.test('a record added and removed is followed on the next re-resolution', async (t) => {
    const dns = await Dnsmasq.start(t, binary, HOSTS);
    const { source: dnsSource } = source(t, dns, { upstream: { host: NAME, port: 5432 } });
    const target = (await dnsSource.resolve({}))!;
    t.teardown(target.subscribe(() => {}));
    t.equal(target.endpoints.size, 3);
    await dns.write(`${HOSTS}127.0.0.14 ${NAME}\n`);
    dns.reload();
    await waitForEndpoints(target, (s) => s.has('127.0.0.14:5432'), 3000, 'the added record');
    t.equal(target.endpoints.size, 4, 'added');
    await dns.write(HOSTS.replace(`127.0.0.12 ${NAME}\n`, ''));
    dns.reload();
    const set = await waitForEndpoints(target, (s) => s.size === 2, 3000, 'the removed records');
    t.same(describeSet(set), ['127.0.0.11:5432 ready', '127.0.0.13:5432 ready'], 'removed');
  });

  t.test('a DNS server that stops answering keeps the last good set, marked stale', async (t) => {
    const dns = await Dnsmasq.start(t, binary, HOSTS);
    const { source: dnsSource, lines } = source(t, dns, { upstream: { host: NAME, port: 5432 } });
    const target = (await dnsSource.resolve({}))!;
    t.teardown(target.subscribe(() => {}));
    await dns.stop();
    await waitUntil(() => target.stale, 5000, 'stale');
    t.equal(target.endpoints.size, 3, 'the last good set');
    t.match(lines.find((l) => l.level === 'warn'), { msg: 'DNS lookup failed, keeping last good set', host: NAME });
    await dns.spawn();
    await waitUntil(() => !target.stale, 5000, 'fresh again');
    t.equal(target.endpoints.size, 3);
  });

  t.test('in a Pod, DNS answers for Service names only while the API is unreachable', async (t) => {
    const dns = await Dnsmasq.start(t, binary, HOSTS);
    let apiDown = false;
    const { source: dnsSource } = source(t, dns, { isActive: () => apiDown });
    t.equal(await dnsSource.resolve({ authority: 'db:5432' }), undefined, 'API reachable: Kubernetes answers, not DNS');
    apiDown = true;
    for (const authority of ['db:5432', 'db.demo:5432', 'db.demo.svc.cluster.local:5432']) {
      const target = await dnsSource.resolve({ authority });
      t.equal(target?.id, 'demo/db:5432', authority);
      t.equal(target?.endpoints.size, 3);
    }
    t.equal(await dnsSource.resolve({ authority: 'other:5432' }), undefined, 'a name DNS does not know passes through');
    t.equal(await dnsSource.resolve({ authority: 'example.com:443' }), undefined, 'not a Service name');
  });
}

const DNSMASQ = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((path) => spawnSync(path, ['--version']).status === 0);
if (!DNSMASQ) {
  t.test('DNS discovery against a real dnsmasq', { skip: 'dnsmasq is not installed (apt-get install dnsmasq-base)' }, () => {});
} else {
  runTests(DNSMASQ);
}
