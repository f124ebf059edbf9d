import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import t, { type Test } from 'tap';
import { exchangeRaw, request, startHttpBackend } from '../../helpers/http1-kit.js';
import { parseProxyConfig } from '../../../sidecar/config.js';
import { startProxy } from '../../../sidecar/main.js';
import { captureLogs } from '../../helpers/log-capture.js';
import { BrokenTargetSource, TestSource, startTestProxy } from '../../helpers/proxy-harness.js';

const HEADER_TIMEOUT_MS = 600;
const IDLE_TIMEOUT_MS = 400;
const LIMIT_FLAGS = { 'http1-header-timeout-ms': String(HEADER_TIMEOUT_MS), 'http1-idle-timeout-ms': String(IDLE_TIMEOUT_MS) };

async function setup(t: Test, source?: TestSource) {
  const backend = await startHttpBackend('ok');
  const { proxy } = await startTestProxy(source ?? new TestSource([backend.address]), LIMIT_FLAGS);
  if (source) source.set([backend.address]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(async () => {
    agent.destroy();
    await proxy.close();
    await backend.close();
  });
  return { backend, proxy, agent, port: proxy.address.port };
}

t.test('a request head sent one byte at a time is answered 408 and closed; others keep being served', async (t) => {
  const { agent, port, backend } = await setup(t);
  const socket = net.connect(port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  const received: Buffer[] = [];
  socket.on('data', (c: Buffer) => received.push(c));
  const closed = once(socket, 'close');
  // Far longer than the timeout if never cut off: 200 bytes, one every 50 ms (10 s).
  const head = 'GET /slow HTTP/1.1\r\nHost: shop\r\n' + 'x-pad: '.padEnd(200, 'a');
  let sent = 0;
  const drip = setInterval(() => {
    if (socket.destroyed || sent >= head.length) return clearInterval(drip);
    socket.write(head[sent++]!);
  }, 50);
  t.teardown(() => clearInterval(drip));
  let served = 0;
  let failed = 0;
  let done = false;
  void closed.then(() => (done = true));
  // A well-behaved client on another connection, throughout (bounded: 200 requests).
  while (!done && served < 200) {
    if ((await request(agent, port, '/fine')).status === 200) served++;
    else failed++;
  }
  await closed;
  clearInterval(drip);
  const reply = Buffer.concat(received).toString();
  t.match(reply, /^HTTP\/1\.1 408 Request Timeout\r\n/, 'answered 408');
  t.match(reply, new RegExp(`not complete within ${HEADER_TIMEOUT_MS} ms \\(--http1-header-timeout-ms\\)`));
  t.ok(sent < head.length, `cut off after ${sent} of ${head.length} bytes`);
  t.ok(served > 0, `the other client got ${served} answers meanwhile`);
  t.equal(failed, 0, 'and no failure');
  t.equal(backend.requests, served, 'the slow head never reached the endpoint');
});

t.test('many connections with partial heads are all answered 408 and closed', async (t) => {
  const { port, agent, backend } = await setup(t);
  const count = 100;
  const replies = await Promise.all(Array.from({ length: count }, () => exchangeRaw(port, 'GET / HTTP/1.1\r\nHost: shop\r\nx-partial: ')));
  t.equal(replies.filter((r) => r.startsWith('HTTP/1.1 408 ')).length, count, `all ${count} got 408 and were closed`);
  t.equal(backend.requests, 0, 'none reached the endpoint');
  t.equal((await request(agent, port, '/')).status, 200, 'the proxy still serves');
});

t.test('a kept-alive app connection idle past the idle timeout is closed; a slow response is not cut', async (t) => {
  const { port } = await setup(t);
  const socket = net.connect(port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (c: string) => (text += c));
  // The endpoint answers after twice the idle timeout: a request in flight is not idle.
  socket.write(`GET /?delay-ms=${IDLE_TIMEOUT_MS * 2} HTTP/1.1\r\nHost: shop\r\n\r\n`);
  const closed = once(socket, 'close');
  await closed;
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/, 'the slow response arrived in full');
  t.match(text, /\r\n\r\nok$/);
  t.match(text, new RegExp(`keep-alive: timeout=${Math.floor(IDLE_TIMEOUT_MS / 1000)}`, 'i'), 'the app is told the idle timeout');
});

t.test('absolute-form: the authority comes from the URI for routing and forwarding, not from Host', async (t) => {
  const source = new TestSource();
  source.knownAuthorities = new Set(['good.example', 'good.example:8080']);
  const { port, agent, backend } = await setup(t, source);

  const viaUri = await request(agent, port, 'http://good.example/x?y=1', { host: 'evil.example' });
  t.equal(viaUri.status, 200, 'routed by the URI authority although Host names an unknown one');
  t.equal(viaUri.headers['x-seen-host'], 'good.example', 'Host rewritten to the URI authority');
  t.equal(viaUri.headers['x-seen-path'], '/x?y=1', 'forwarded in origin-form');

  const withPort = await request(agent, port, 'http://good.example:8080', { host: 'good.example' });
  t.equal(withPort.status, 200);
  t.equal(withPort.headers['x-seen-host'], 'good.example:8080');
  t.equal(withPort.headers['x-seen-path'], '/', 'an empty path is sent as "/"');

  const before = backend.requests;
  const unknown = await request(agent, port, 'http://evil.example/x', { host: 'good.example' });
  t.equal(unknown.status, 502, 'an authority the proxy does not know is not routed by Host instead');
  t.match(unknown.body, /no target known for host "evil\.example"/);
  t.equal(backend.requests, before, 'nothing reached the endpoint');
  t.ok(source.resolved.some((h) => h.authority === 'evil.example'), 'the URI authority was looked up');
});

t.test('absolute-form with an authority meshlet does not know goes to the original destination, like an unknown Host', async (t) => {
  const known = await startHttpBackend('known');
  const original = await startHttpBackend('original');
  const source = new TestSource([known.address]);
  source.knownAuthorities = new Set(['good.example']);
  const [host, port] = original.address.split(':');
  // In a Pod the kernel names where the app was going; here the test does.
  const config = parseProxyConfig({ listen: '127.0.0.1:0', upstream: '127.0.0.1:1', admin: '127.0.0.1:0', 'debug-admin': 'off', ...LIMIT_FLAGS });
  const proxy = await startProxy(config, { source, log: captureLogs('warn').log, readOriginalDst: () => ({ host: host!, port: Number(port) }) });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(async () => {
    agent.destroy();
    await proxy.close();
    await known.close();
    await original.close();
  });
  const unknown = await request(agent, proxy.address.port, 'http://other.example/x', { host: 'good.example' });
  t.equal(unknown.status, 200);
  t.equal(unknown.body, 'original', 'passed through to the original destination, not balanced by Host');
  t.equal(unknown.headers['x-seen-host'], 'other.example');
  t.equal(unknown.headers['x-seen-path'], '/x');
  t.equal(known.requests, 0);
  t.match(proxy.metrics.render({ upstreamConnections: () => [], endpointCounts: () => [] }), /meshlet_passthrough_total\{protocol="http1",reason="unknown-target"\} 1\n/);
  const good = await request(agent, proxy.address.port, 'http://good.example/y', { host: 'other.example' });
  t.equal(good.body, 'known', 'a known URI authority is balanced over its target');
});

t.test('absolute-form Upgrade: routed by the URI authority; the endpoint gets origin-form and that Host', async (t) => {
  const heads: string[] = [];
  const endpoint = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    let buffered = '';
    const onHead = (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onHead);
      heads.push(buffered.slice(0, end + 4));
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
      socket.pipe(socket);
    };
    socket.on('data', onHead);
  });
  endpoint.listen(0, '127.0.0.1');
  await once(endpoint, 'listening');
  const source = new TestSource([`127.0.0.1:${(endpoint.address() as net.AddressInfo).port}`]);
  source.knownAuthorities = new Set(['good.example']);
  const { proxy } = await startTestProxy(source, LIMIT_FLAGS);
  const client = net.connect(proxy.address.port, '127.0.0.1');
  t.teardown(async () => {
    client.destroy();
    await proxy.close();
    await new Promise((r) => endpoint.close(r));
  });
  client.on('error', (err) => t.fail(`client connection failed: ${err.message}`));
  client.setEncoding('latin1');
  let text = '';
  const echoed = new Promise<void>((resolve) =>
    client.on('data', (c: string) => {
      text += c;
      if (text.includes('\r\n\r\n') && !text.includes('ping')) client.write('ping');
      if (text.endsWith('ping')) resolve();
    }),
  );
  client.write('GET http://good.example/chat?room=1 HTTP/1.1\r\nHost: evil.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
  await echoed;
  t.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  t.equal(heads.length, 1);
  t.match(heads[0], /^GET \/chat\?room=1 HTTP\/1\.1\r\nHost: good\.example\r\n/, 'origin-form, Host from the URI');
  t.notMatch(heads[0], /evil\.example/, "the app's Host is not forwarded");
});

const TARGET_ALLOWED = /is not valid; allowed: origin-form "\/path\?query" or absolute-form "http:\/\/host\[:port\]\/path\?query"/;
const badTargets: Array<{ target: string; message: RegExp }> = [
  { target: 'http://user@good.example/x', message: TARGET_ALLOWED },
  { target: 'https://good.example/x', message: TARGET_ALLOWED },
  { target: 'ftp://good.example/x', message: TARGET_ALLOWED },
  { target: 'http:///x', message: TARGET_ALLOWED },
  { target: 'http://good.example:80:80/x', message: TARGET_ALLOWED },
  // Not a URI at all: node:http's parser refuses it before the relay sees it.
  { target: 'x', message: /malformed HTTP\/1\.1 request/ },
];

for (const { target, message } of badTargets) {
  t.test(`request target "${target}" is answered 400 naming what is allowed`, async (t) => {
    const source = new TestSource();
    source.knownAuthorities = new Set(['good.example']);
    const { port, backend } = await setup(t, source);
    const reply = await exchangeRaw(port, `GET ${target} HTTP/1.1\r\nHost: good.example\r\nConnection: close\r\n\r\n`);
    t.match(reply, /^HTTP\/1\.1 400 /);
    t.equal(backend.requests, 0, 'nothing reached the endpoint');
    t.match(reply, message);
  });
}

t.test('when route lookup fails, a request and an Upgrade are answered 502, not left hanging', async (t) => {
  const backend = await startHttpBackend('ok');
  const { proxy } = await startTestProxy(new BrokenTargetSource([backend.address]), LIMIT_FLAGS);
  const agent = new http.Agent({ keepAlive: false });
  t.teardown(async () => {
    agent.destroy();
    await proxy.close();
    await backend.close();
  });
  const res = await request(agent, proxy.address.port, '/', { host: 'broken.example' });
  t.equal(res.status, 502);
  t.match(res.body, /route lookup for host "broken\.example" failed: subscription refused/);
  const upgrade = await exchangeRaw(proxy.address.port, 'GET /chat HTTP/1.1\r\nHost: broken2.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  t.match(upgrade, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  t.match(upgrade, /route lookup for host "broken2\.example" failed/);
  t.equal(backend.requests, 0);
});
