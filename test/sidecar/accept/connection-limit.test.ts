import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import t from 'tap';
import { captureLogs } from '../../helpers/log-capture.js';
import { startTestProxy, TestSource } from '../../helpers/proxy-harness.js';

const LIMIT = 3;

/** A kept-alive HTTP/1.1 client connection to the proxy that can send requests one at a time. */
class KeptAliveClient {
  private buffered = '';
  private readonly socket: Socket;
  readonly closed: Promise<void>;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => (this.buffered += chunk));
    this.socket.on('error', () => {});
    this.closed = once(this.socket, 'close').then(() => undefined);
  }

  /** One GET; resolves with the response body (the backend answers "ok"), or rejects when the connection closes first. */
  async get(timeoutMs = 5_000): Promise<string> {
    this.buffered = '';
    this.socket.write('GET / HTTP/1.1\r\nHost: web\r\n\r\n');
    const deadline = Date.now() + timeoutMs;
    while (!/\r\n\r\nok$/.test(this.buffered)) {
      if (this.socket.destroyed) throw new Error('the proxy closed the connection');
      if (Date.now() > deadline) throw new Error(`no response within ${timeoutMs} ms; got ${JSON.stringify(this.buffered)}`);
      await Promise.race([once(this.socket, 'data'), this.closed, new Promise((r) => setTimeout(r, 50))]);
    }
    return 'ok';
  }

  end(): void {
    this.socket.end();
  }
}

async function refusedCount(adminPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('meshlet_app_connections_refused_total '));
  return Number(line?.split(' ')[1]);
}

t.test('past --max-app-connections a new app connection is closed at accept, counted and logged; open ones are served on', async (t) => {
  const backend = http.createServer((_req, res) => res.end('ok'));
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  t.teardown(() => backend.close());
  const logs = captureLogs('warn');
  const isRefusal = (line: { msg: string }) => line.msg.startsWith('app connection refused');
  const source = new TestSource([`127.0.0.1:${(backend.address() as AddressInfo).port}`]);
  const { proxy } = await startTestProxy(source, { 'max-app-connections': String(LIMIT) }, logs.log);
  const clients: KeptAliveClient[] = [];
  t.teardown(async () => {
    for (const client of clients) client.end();
    await proxy.close();
  });

  for (let i = 0; i < LIMIT; i++) {
    const client = new KeptAliveClient(proxy.address.port);
    clients.push(client);
    t.equal(await client.get(), 'ok', `connection ${i + 1} of ${LIMIT} is served`);
  }
  const extra = new KeptAliveClient(proxy.address.port);
  await t.rejects(extra.get(), /closed the connection/, `connection ${LIMIT + 1} is closed at accept, its request unanswered`);
  t.equal(await refusedCount(proxy.admin.port), 1, 'meshlet_app_connections_refused_total counts it');
  const warning = await logs.waitFor(isRefusal, 5_000, 'the refusal warning');
  t.match(warning.msg, /3 are open, the limit \(--max-app-connections\)/, 'a warning says so, naming the limit and the flag');

  for (const [i, client] of clients.entries()) t.equal(await client.get(), 'ok', `open connection ${i + 1} is still served`);

  const second = new KeptAliveClient(proxy.address.port);
  await t.rejects(second.get(), /closed the connection/, 'so is the next one');
  t.equal(await refusedCount(proxy.admin.port), 2, 'a second refusal is counted');
  t.equal(logs.lines.filter(isRefusal).length, 1, 'but not logged again within 10 s');

  clients.shift()!.end();
  // The freed slot shows once the proxy has seen the close; until then a new connection is refused.
  let served = false;
  for (let attempt = 0; attempt < 20 && !served; attempt++) {
    const client = new KeptAliveClient(proxy.address.port);
    try {
      await client.get(1_000);
      clients.push(client);
      served = true;
    } catch {
      client.end();
    }
  }
  t.ok(served, 'after one connection closed, a new one is served');
});

t.test('--max-app-connections must be a whole number from 1', async (t) => {
  await t.rejects(startTestProxy(new TestSource(['127.0.0.1:9']), { 'max-app-connections': '0' }), /--max-app-connections.*allowed/);
});
