import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { request, startHttpBackend } from '../../helpers/http1-kit.js';
import { TestSource, startTestProxy } from '../../helpers/proxy-harness.js';

/**
 * Every HTTP/1.1 socket of the relay reads into one shared buffer (sidecar/wire/h1/read-buffer.ts),
 * which the next read on any connection overwrites. What must outlive a read (body bytes queued for
 * a slow endpoint or kept for a retry, pipelined requests waiting their turn, the first bytes after
 * an Upgrade head) must arrive byte for byte, while other connections keep reading meanwhile.
 */

/** Requests on other connections, so the shared buffer is overwritten again and again... */
const BUSY_MAX_REQUESTS = 5_000;
const BUSY_CONNECTIONS = 2;
/** ...over most of its length: each busy request's body nearly fills one read. */
const BUSY_BODY = 'x'.repeat(60_000);

async function listen(server: net.Server | http.Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function sha256(data: Buffer | Buffer[]): string {
  const hash = createHash('sha256');
  for (const piece of Array.isArray(data) ? data : [data]) hash.update(piece);
  return hash.digest('hex');
}

/**
 * A proxy in front of `addresses` plus a second target of its own (a plain backend) that
 * `busy()` keeps requesting over other kept-alive connections until `stop()`.
 */
async function setup(t: Test, addresses: string[]) {
  const busyBackend = await startHttpBackend('busy');
  const source = new TestSource(addresses);
  const { proxy } = await startTestProxy(source);
  const busySource = new TestSource([busyBackend.address]);
  const { proxy: busyProxy } = await startTestProxy(busySource);
  const agents: http.Agent[] = [];
  const sockets: net.Socket[] = [];
  let stopped = false;
  let busyRequests = 0;
  /** Resolved once this many busy requests were answered. */
  const milestones: Array<{ count: number; resolve: () => void }> = [];
  t.teardown(async () => {
    stopped = true;
    for (const a of agents) a.destroy();
    for (const s of sockets) s.destroy();
    await proxy.close();
    await busyProxy.close();
    await busyBackend.close();
  });
  /** Runs requests through the same process's relay until stop() (or the bound). */
  const busy = () =>
    Promise.all(
      Array.from({ length: BUSY_CONNECTIONS }, async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        agents.push(agent);
        while (!stopped && busyRequests < BUSY_MAX_REQUESTS) {
          busyRequests++;
          const res = await request(agent, busyProxy.address.port, '/', { method: 'POST', body: BUSY_BODY });
          if (res.body !== `busy:${BUSY_BODY}`) throw new Error(`busy request answered ${res.status} ${res.body.slice(0, 100)}`);
          for (const m of milestones) if (busyRequests >= m.count) m.resolve();
        }
        for (const m of milestones) m.resolve();
      }),
    );
  const track = (s: net.Socket) => {
    sockets.push(s);
    return s;
  };
  return {
    port: proxy.address.port,
    busy,
    track,
    stop: () => (stopped = true),
    /** Resolves once `count` busy requests were answered (or the busy loop ended). */
    busyReached: (count: number) => new Promise<void>((resolve) => milestones.push({ count, resolve })),
  };
}

/**
 * An endpoint that does not read a request body until `released` (so the proxy's writes to it
 * queue up and it stops reading the app), then reads it slowly (a pause after every read) and
 * answers its length and SHA-256.
 */
async function startSlowHashEndpoint(t: Test, released: Promise<void>): Promise<string> {
  const server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.pause();
    void released.then(() => req.resume());
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      req.pause();
      setImmediate(() => req.resume());
    });
    req.on('end', () => res.end(`${bytes} ${hash.digest('hex')}`));
  });
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return listen(server);
}

const UPLOAD_BYTES = 16 * 1024 * 1024;

for (const framing of ['content-length', 'chunked'] as const) {
  t.test(`a large ${framing} upload to a slowly reading endpoint arrives intact while other connections read`, async (t) => {
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const { port, busy, busyReached, stop } = await setup(t, [await startSlowHashEndpoint(t, released)]);
    const body = randomBytes(UPLOAD_BYTES);
    const agent = new http.Agent({ keepAlive: false });
    t.teardown(() => agent.destroy());
    const answered = new Promise<string>((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = framing === 'chunked' ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(body.length) };
      const req = http.request({ host: '127.0.0.1', port, path: '/upload', method: 'POST', agent, headers }, (res) => {
        let text = '';
        res.setEncoding('latin1');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      // Pieces of different sizes, so chunk boundaries and reads do not line up.
      for (let at = 0, i = 0; at < body.length; i++) {
        const size = [65_536, 1_000, 20_000, 7][i % 4]!;
        req.write(body.subarray(at, at + size));
        at += size;
      }
      req.end();
    });
    // While the upload waits on the endpoint, other connections overwrite the shared buffer.
    const reached = busyReached(100);
    const traffic = busy();
    await reached;
    release();
    const answer = await answered;
    stop();
    await traffic;
    t.equal(answer, `${body.length} ${sha256(body)}`, 'the endpoint got every byte, in order (SHA-256)');
  });
}

t.test('pipelined requests with bodies wait their turn intact while other connections read', async (t) => {
  let releaseFirst = () => {};
  const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/warmup') return void res.end('ok');
      const reply = `${req.url}:${sha256(chunks)}`;
      if (req.url === '/first') void firstHeld.then(() => res.end(reply));
      else res.end(reply);
    });
  });
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port, busy, busyReached, stop, track } = await setup(t, [await listen(server)]);
  const bodies = [randomBytes(3_000), randomBytes(40_000), randomBytes(5_000)];
  const chunked = (b: Buffer) => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n0\r\n\r\n')]);
  const client = track(net.connect(port, '127.0.0.1'));
  await once(client, 'connect');
  const received: Buffer[] = [];
  // A first request, answered: the connection's first read is protocol detection's, later ones
  // go into the shared buffer.
  await warmUp(client);
  client.on('data', (c: Buffer) => received.push(c));
  const closed = once(client, 'close');
  // Three requests in one write: the second and third arrive with the first and must wait for it.
  client.write(
    Buffer.concat([
      Buffer.from(`POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: ${bodies[0]!.length}\r\n\r\n`),
      bodies[0]!,
      Buffer.from(`POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: ${bodies[1]!.length}\r\n\r\n`),
      bodies[1]!,
      Buffer.from('POST /third HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'),
      chunked(bodies[2]!),
    ]),
  );
  // The first answer is held until other connections have overwritten the shared buffer many times.
  const reached = busyReached(100);
  const traffic = busy();
  await reached;
  releaseFirst();
  await closed;
  stop();
  await traffic;
  const text = Buffer.concat(received).toString('latin1');
  const replies = [...text.matchAll(/\r\n\r\n(\/\w+:[0-9a-f]{64})/g)].map((m) => m[1]);
  t.same(replies, [`/first:${sha256(bodies[0]!)}`, `/second:${sha256(bodies[1]!)}`, `/third:${sha256(bodies[2]!)}`], 'each answered in order, over the body it was sent');

});

/** Sends one GET on `client` and waits for its whole answer (a body of "ok"). */
async function warmUp(client: net.Socket): Promise<void> {
  let text = '';
  const answered = new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      text += c.toString('latin1');
      if (!/\r\n\r\nok$/.test(text)) return;
      client.off('data', onData);
      resolve();
    };
    client.on('data', onData);
    client.once('close', () => reject(new Error(`the connection closed after ${JSON.stringify(text.slice(0, 200))}`)));
  });
  client.write('GET /warmup HTTP/1.1\r\nHost: a\r\n\r\n');
  await answered;
}

t.test('an Upgrade: the bytes sent with its head and everything after reach the endpoint intact', async (t) => {
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const endpoint = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    let head = Buffer.alloc(0);
    const onHead = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!/\r\nUpgrade: /i.test(head.subarray(0, end).toString('latin1'))) {
        head = head.subarray(end + 4);
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        return;
      }
      socket.off('data', onHead);
      socket.pause();
      // Answered once other connections have overwritten the shared buffer; then an echo of what
      // came with the head, and of everything after it.
      void released.then(() => {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
        socket.write(head.subarray(end + 4));
        socket.pipe(socket);
      });
    };
    socket.on('data', onHead);
  });
  t.teardown(() => endpoint.close());
  const { port, busy, busyReached, stop, track } = await setup(t, [await listen(endpoint)]);
  const early = randomBytes(10_000);
  // More than loopback socket buffers hold while the endpoint is not reading: some waits in the proxy.
  const later = randomBytes(24 * 1024 * 1024);
  const client = track(net.connect(port, '127.0.0.1'));
  await once(client, 'connect');
  await warmUp(client);
  // Other connections read before, during and after the switch.
  const started = busyReached(20);
  const traffic = busy();
  await started;
  const STATUS_LINE = 'HTTP/1.1 101 Switching Protocols\r\n';
  const expectedBytes = early.length + later.length;
  let response = Buffer.alloc(0);
  const echoed = new Promise<Buffer>((resolve, reject) => {
    client.on('error', reject);
    client.on('close', () => reject(new Error(`the connection closed after ${response.length} bytes`)));
    client.on('data', (c: Buffer) => {
      response = Buffer.concat([response, c]);
      const end = response.indexOf('\r\n\r\n');
      if (end >= 0 && response.length - end - 4 >= expectedBytes) resolve(response.subarray(end + 4));
    });
  });
  client.write(Buffer.concat([Buffer.from('GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n'), early]));
  for (let at = 0; at < later.length; at += 50_000) client.write(later.subarray(at, at + 50_000));
  await busyReached(120);
  release();
  const echo = await echoed;
  stop();
  await traffic;
  t.ok(response.toString('latin1').startsWith(STATUS_LINE), 'the endpoint switched protocols');
  t.equal(sha256(echo), sha256([early, later]), 'the echo is byte for byte what was sent (SHA-256)');
});
