import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { captureLogs } from '../../helpers/log-capture.js';
import { TestSource, startTestProxy } from '../../helpers/proxy-harness.js';

/** A TCP echo server, optionally speaking first (like MySQL or SMTP). */
async function startEchoServer(greeting?: string): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((socket) => {
    if (greeting) socket.write(greeting);
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

async function readUntil(socket: net.Socket, expected: string): Promise<string> {
  let text = '';
  while (!text.includes(expected)) {
    const [chunk] = await once(socket, 'data');
    text += String(chunk);
  }
  return text;
}

t.test('standalone: opaque TCP passes through to --opaque-to unchanged, both ways', async (t) => {
  const echo = await startEchoServer();
  const { proxy } = await startTestProxy(new TestSource(['127.0.0.1:1']), { 'opaque-to': `127.0.0.1:${echo.port}` });
  const client = net.connect(proxy.address.port, '127.0.0.1');
  t.teardown(async () => {
    client.destroy();
    await proxy.close();
    echo.server.close();
  });
  const payload = Buffer.alloc(300_000, 7);
  payload.write('\x00\x01binary-not-http');
  client.write(payload);
  let received = Buffer.alloc(0);
  while (received.length < payload.length) {
    const [chunk] = await once(client, 'data');
    received = Buffer.concat([received, chunk as Buffer]);
  }
  t.ok(received.equals(payload), 'every byte came back unchanged');
});

t.test('a server-speaks-first protocol works: a silent client is treated as opaque after the detect timeout', async (t) => {
  const echo = await startEchoServer('220 smtp.example ready\r\n');
  const { proxy } = await startTestProxy(new TestSource(['127.0.0.1:1']), { 'opaque-to': `127.0.0.1:${echo.port}`, 'detect-timeout-ms': '100' });
  const client = net.connect(proxy.address.port, '127.0.0.1');
  t.teardown(async () => {
    client.destroy();
    await proxy.close();
    echo.server.close();
  });
  t.match(await readUntil(client, 'ready'), /^220 smtp\.example ready/);
  client.write('EHLO me\r\n');
  t.match(await readUntil(client, 'EHLO'), /EHLO me/);
});

t.test('standalone without --opaque-to: opaque connections are closed, with one warning', async (t) => {
  const { log, lines } = captureLogs('warn');
  const { proxy } = await startTestProxy(new TestSource(['127.0.0.1:1']), {}, log);
  t.teardown(() => proxy.close());
  for (let i = 0; i < 3; i++) {
    const client = net.connect(proxy.address.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write('\x16\x03\x01 not http at all');
    await once(client, 'close');
  }
  const warnings = lines.filter((l) => String(l.msg).includes('standalone mode has no original destination'));
  t.equal(warnings.length, 1, 'said once');
  t.match(proxy.metrics.render({ upstreamConnections: () => [], endpointCounts: () => [] }), /meshlet_passthrough_total\{protocol="opaque",reason="no-destination"\} 3/);
});

t.test('in-Pod mode: opaque traffic goes to its original destination', async (t) => {
  const echo = await startEchoServer();
  const { startProxy } = await import('../../../sidecar/main.js');
  const { parseProxyConfig } = await import('../../../sidecar/config.js');
  const config = parseProxyConfig({ admin: '127.0.0.1:0', 'debug-admin': 'off', 'detect-timeout-ms': '200', 'token-file': '/nonexistent/token' }, () => false);
  config.listen = { host: '127.0.0.1', port: 0 };
  const proxy = await startProxy(config, { source: new TestSource([]), log: captureLogs('warn').log, readOriginalDst: () => ({ host: '127.0.0.1', port: echo.port }) });
  const client = net.connect(proxy.address.port, '127.0.0.1');
  t.teardown(async () => {
    client.destroy();
    await proxy.close();
    echo.server.close();
  });
  client.write('PING opaque\r\n');
  t.equal(await readUntil(client, '\n'), 'PING opaque\r\n');
});
