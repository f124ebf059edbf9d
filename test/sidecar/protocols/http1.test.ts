import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { WebSocket, WebSocketServer } from 'ws';
import { request, startHttpBackend } from '../../helpers/http1-kit.js';
import { TestSource, startTestProxy, tally } from '../../helpers/proxy-harness.js';

t.test('requests on one kept-alive connection are spread over every endpoint', async (t) => {
  const backends = await Promise.all(['h1', 'h2', 'h3'].map(startHttpBackend));
  const { proxy } = await startTestProxy(new TestSource(backends.map((b) => b.address)), { 'lb-policy': 'round-robin' });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(async () => {
    agent.destroy();
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
  });
  const names: string[] = [];
  const statuses = new Set<number>();
  for (let i = 0; i < 300; i++) {
    const res = await request(agent, proxy.address.port, `/item/${i}`);
    statuses.add(res.status);
    names.push(res.body);
  }
  t.same([...statuses], [200], 'every request succeeded');
  for (const [name, count] of tally(names)) t.ok(Math.abs(count - 100) <= 10, `${name} served ${count} of 300`);
  const metrics = proxy.metrics.render({ upstreamConnections: () => [], endpointCounts: () => [] });
  t.match(metrics, /meshlet_downstream_connections\{protocol="http1"\} 1\n/, 'all of it over one app connection');
  t.ok(backends.every((b) => b.sockets <= 3), 'upstream connections are pooled, not one per request');
});

t.test('POST bodies, Host header and response headers pass through', async (t) => {
  const backend = await startHttpBackend('only');
  const { proxy } = await startTestProxy(new TestSource([backend.address]));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(async () => {
    agent.destroy();
    await proxy.close();
    await backend.close();
  });
  const body = 'z'.repeat(200_000);
  const res = await request(agent, proxy.address.port, '/post', { method: 'POST', body, host: 'shop.example:8080' });
  t.equal(res.status, 200);
  t.equal(res.body, `only:${body}`);
  t.equal(res.headers['x-backend'], 'only');
  t.equal(res.headers['x-seen-host'], 'shop.example:8080');
});

t.test('no endpoints: 503 naming the target, and the connection keeps working', async (t) => {
  const source = new TestSource([]);
  const { proxy } = await startTestProxy(source);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(async () => {
    agent.destroy();
    await proxy.close();
  });
  const res = await request(agent, proxy.address.port, '/');
  t.equal(res.status, 503);
  t.match(res.body, /no endpoint available for static/);
});

t.test('a malformed request gets 400 and other connections are unaffected', async (t) => {
  const backend = await startHttpBackend('ok');
  const { proxy } = await startTestProxy(new TestSource([backend.address]));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(async () => {
    agent.destroy();
    await proxy.close();
    await backend.close();
  });
  const net = await import('node:net');
  const socket = net.connect(proxy.address.port, '127.0.0.1');
  socket.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n');
  const chunks: Buffer[] = [];
  socket.on('data', (c) => chunks.push(c));
  await once(socket, 'close');
  t.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 400 Bad Request/);
  const res = await request(agent, proxy.address.port, '/');
  t.equal(res.body, 'ok');
});

t.test('WebSocket: upgrade goes to the endpoint with fewest open pipes and echoes both ways', async (t) => {
  const servers = await Promise.all(
    ['ws1', 'ws2'].map(async (name) => {
      const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
      await once(wss, 'listening');
      wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `${name}:${data.toString()}`, { binary: isBinary })));
      return { wss, name, address: `127.0.0.1:${(wss.address() as AddressInfo).port}` };
    }),
  );
  const { proxy } = await startTestProxy(new TestSource(servers.map((s) => s.address)));
  const sockets: WebSocket[] = [];
  t.teardown(async () => {
    for (const ws of sockets) ws.terminate();
    await proxy.close();
    for (const s of servers) s.wss.close();
  });
  const seen: string[] = [];
  for (let i = 0; i < 4; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.address.port}/chat`);
    sockets.push(ws);
    await once(ws, 'open');
    ws.send(`hello${i}`);
    const [data] = await once(ws, 'message');
    seen.push(String(data).split(':')[0]!);
    t.match(String(data), new RegExp(`^ws[12]:hello${i}$`));
  }
  t.same(tally(seen), new Map([['ws1', 2], ['ws2', 2]]), 'pipes spread by fewest open connections');
  const binary = Buffer.from([0, 1, 2, 3, 250]);
  sockets[0]!.send(binary);
  const [echo] = await once(sockets[0]!, 'message');
  t.same(Buffer.from(echo as Buffer), binary, 'binary frames pass unchanged');
});
