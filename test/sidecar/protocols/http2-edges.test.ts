import * as grpc from '@grpc/grpc-js';
import { once } from 'node:events';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { createEchoClient, startEchoBackend, unaryCall } from '../../helpers/grpc-echo.js';
import { parseProxyConfig } from '../../../sidecar/config.js';
import { startProxy } from '../../../sidecar/main.js';
import { captureLogs } from '../../helpers/log-capture.js';
import { TestSource, startTestProxy } from '../../helpers/proxy-harness.js';
import { startH2Endpoint, startH2Proxy } from '../../helpers/h2-proxy-kit.js';

/** Errors, resets, retries and flow control on the HTTP/2 path. */

/** A free loopback port with nothing listening (connection refused). */
async function refusedAddress(): Promise<string> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `127.0.0.1:${port}`;
}

t.test('gRPC with no endpoints: UNAVAILABLE naming the target', async (t) => {
  const { proxy, target } = await startTestProxy(new TestSource([]));
  const client = createEchoClient(target);
  t.teardown(async () => {
    client.close();
    await proxy.close();
  });
  const err = await unaryCall(client, {}).catch((e) => e);
  t.equal(err.code, grpc.status.UNAVAILABLE);
  t.match(err.details, /no endpoint available for static/);
});

t.test('an unknown target without an original destination: UNAVAILABLE / 502 naming the authority', async (t) => {
  const backend = await startEchoBackend('x');
  const source = new TestSource([backend.address]);
  source.knownAuthorities = new Set(['known:80']);
  const { proxy, target } = await startTestProxy(source);
  const client = createEchoClient(target, { 'grpc.default_authority': 'mystery.svc:9090' });
  const session = http2.connect(`http://${target}`);
  t.teardown(async () => {
    client.close();
    session.close();
    await proxy.close();
    await backend.close();
  });
  const err = await unaryCall(client, {}).catch((e) => e);
  t.equal(err.code, grpc.status.UNAVAILABLE);
  t.match(err.details, /no target known for authority "mystery\.svc:9090"/);
  const req = session.request({ ':path': '/', ':authority': 'other.example' });
  const [headers] = await once(req, 'response');
  let body = '';
  req.on('data', (d) => (body += d));
  await once(req, 'end');
  t.equal(headers[':status'], 502);
  t.match(body, /other\.example/);
});

t.test('in a Pod, an unknown target passes through to its original destination, counted', async (t) => {
  const backend = await startEchoBackend('original');
  const source = new TestSource([]);
  source.knownAuthorities = new Set();
  const config = parseProxyConfig({ admin: '127.0.0.1:0', 'debug-admin': 'off', 'token-file': '/nonexistent' }, () => false);
  config.listen = { host: '127.0.0.1', port: 0 };
  const proxy = await startProxy(config, { source, log: captureLogs('warn').log, readOriginalDst: () => ({ host: '127.0.0.1', port: backend.port }) });
  const client = createEchoClient(`127.0.0.1:${proxy.address.port}`);
  t.teardown(async () => {
    client.close();
    await proxy.close();
    await backend.close();
  });
  const reply = await unaryCall(client, { text: 'through' });
  t.equal(reply.backend, 'original');
  t.match(source.resolved[0], { originalDst: { host: '127.0.0.1', port: backend.port } }, 'discovery was asked with the original destination');
  t.match(proxy.metrics.render({ upstreamConnections: () => [], endpointCounts: () => [] }), /meshlet_passthrough_total\{protocol="grpc",reason="unknown-target"\} 1/);
});

t.test('a refused connection is retried once on another endpoint and the endpoint is ejected', async (t) => {
  const backend = await startEchoBackend('alive');
  const dead = await refusedAddress();
  const { proxy, target } = await startTestProxy(new TestSource([dead, backend.address]), { 'lb-policy': 'round-robin' });
  const client = createEchoClient(target);
  t.teardown(async () => {
    client.close();
    await proxy.close();
    await backend.close();
  });
  const replies = await Promise.all(Array.from({ length: 6 }, () => unaryCall(client, {})));
  t.same(new Set(replies.map((r) => r.backend)), new Set(['alive']), 'every call succeeded on the live endpoint');
  const metrics = proxy.metrics.render({ upstreamConnections: () => [], endpointCounts: () => [] });
  t.match(metrics, /meshlet_retries_total\{target="static",reason="connect-failure"\} \d+/);
  t.match(metrics, new RegExp(`meshlet_ejections_total\\{target="static",endpoint="${dead}"\\} 1`));
  const debug = (await (await fetch(`http://127.0.0.1:${proxy.debugAdmin!.port}/debug/endpoints`)).json()) as any;
  t.match(debug.targets[0].endpoints.find((e: { endpoint: string }) => e.endpoint === dead), { ejected: true, state: 'ejected' });
});

t.test('an upstream RST_STREAM reaches the client with its code', async (t) => {
  const resetting = await startH2Endpoint((stream) => stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM));
  const session = (await startH2Proxy(t, [resetting])).session();
  const req = session.request({ ':path': '/reset', ':method': 'POST' });
  req.on('error', () => undefined);
  req.end('x');
  await new Promise((resolve) => req.on('close', resolve));
  t.equal(req.rstCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
});

t.test('flow control: a client that stops reading holds the upstream back; nothing is lost', async (t) => {
  const CHUNK = Buffer.alloc(256 * 1024, 1);
  const TOTAL_CHUNKS = 256; // 64 MiB offered
  let written = 0;
  const backend = await startH2Endpoint((stream) => {
    stream.respond({ ':status': 200 });
    let i = 0;
    const pump = () => {
      while (i < TOTAL_CHUNKS) {
        i++;
        written += CHUNK.length;
        if (!stream.write(CHUNK)) return void stream.once('drain', pump);
      }
      stream.end();
    };
    pump();
  });
  const session = (await startH2Proxy(t, [backend])).session();
  const req = session.request({ ':path': '/big' });
  await once(req, 'response');
  req.pause();
  // Absence over time is the check: whatever the upstream manages to write in 400 ms while nobody reads.
  await new Promise((r) => setTimeout(r, 400));
  t.ok(written < 24 * 1024 * 1024, `the upstream wrote only ${(written / 1048576).toFixed(1)} MiB of 64 while the client read nothing`);
  let received = 0;
  req.on('data', (d: Buffer) => (received += d.length));
  req.resume();
  await once(req, 'end');
  t.equal(received, CHUNK.length * TOTAL_CHUNKS, 'every byte arrived once the client read');
});

t.test('broken frames on one connection close only that connection', async (t) => {
  const backend = await startEchoBackend('steady');
  const { proxy, target } = await startTestProxy(new TestSource([backend.address]));
  const client = createEchoClient(target);
  t.teardown(async () => {
    client.close();
    await proxy.close();
    await backend.close();
  });
  const bad = net.connect(proxy.address.port, '127.0.0.1');
  bad.on('error', () => undefined);
  bad.resume();
  bad.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  // A frame header claiming a 16 MiB HEADERS frame on stream 0, then junk.
  bad.write(Buffer.from([0xff, 0xff, 0xff, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 1, 2, 3]));
  await once(bad, 'close');
  t.pass('the broken connection was closed');
  const reply = await unaryCall(client, { text: 'still here' });
  t.equal(reply.text, 'still here', 'other connections keep working');
});

t.test('REFUSED_STREAM (never processed) is retried once on another endpoint; the app sees success', async (t) => {
  const refusing = await startH2Endpoint((stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM));
  const serving = await startH2Endpoint((stream) => {
    let body = '';
    stream.on('data', (d) => (body += d));
    stream.on('end', () => {
      stream.respond({ ':status': 200 });
      stream.end(`served:${body}`);
    });
  });
  const kit = await startH2Proxy(t, [refusing, serving], { 'lb-policy': 'round-robin' });
  const session = kit.session();
  for (let i = 0; i < 4; i++) {
    const req = session.request({ ':path': '/r', ':method': 'POST' });
    req.end(`body${i}`);
    let text = '';
    req.on('data', (d) => (text += d));
    const [headers] = await once(req, 'response');
    await once(req, 'end');
    t.equal(headers[':status'], 200);
    t.equal(text, `served:body${i}`, 'the request body was replayed to the other endpoint');
  }
  t.match(kit.proxy.metrics.render({ upstreamConnections: () => [], endpointCounts: () => [] }), /meshlet_retries_total\{target="static",reason="refused-stream"\} [1-9]/);
});

t.test('another upstream session is opened when an endpoint reaches its max-concurrent-streams', async (t) => {
  const pending: http2.ServerHttp2Stream[] = [];
  const limited = await startH2Endpoint(
    (stream) => {
      pending.push(stream);
      if (pending.length === 6) for (const s of pending) s.respond({ ':status': 200 }, { endStream: true });
    },
    { settings: { maxConcurrentStreams: 2 } },
  );
  const open = new Set<http2.ServerHttp2Session>();
  limited.server.on('session', (s) => open.add(s));
  const session = (await startH2Proxy(t, [limited])).session();
  const statuses = await Promise.all(
    Array.from({ length: 6 }, async () => {
      const req = session.request({ ':path': '/slow' });
      const [headers] = await once(req, 'response');
      return headers[':status'];
    }),
  );
  t.same(statuses, [200, 200, 200, 200, 200, 200], 'all six streams were served at once');
  t.ok(open.size >= 3, `the proxy spread them over ${open.size} sessions of at most 2 streams`);
});
