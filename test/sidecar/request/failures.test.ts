/**
 * One failure table for every protocol: the same proxy-side failure (route lookup failed, unknown
 * target, no endpoints, connect failure) is answered with the same status over HTTP/1.1, HTTP/2,
 * gRPC and an HTTP/1.1 Upgrade, and counted once under the same meshlet_proxy_errors_total reason.
 */
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { FAILURE, FAILURES, type FailureKind } from '../../../sidecar/request/failures.js';
import { parseProxyConfig } from '../../../sidecar/config.js';
import { startProxy, type RunningProxy } from '../../../sidecar/main.js';
import { createEchoClient, unaryCall } from '../../helpers/grpc-echo.js';
import { exchangeRaw, request, startHttpBackend } from '../../helpers/http1-kit.js';
import { captureLogs } from '../../helpers/log-capture.js';
import { BrokenTargetSource, TestSource, startTestProxy } from '../../helpers/proxy-harness.js';

/** A loopback port with nothing listening on it (bound, then closed). */
async function deadAddress(): Promise<string> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}

function proxyErrors(proxy: RunningProxy, target: string, reason: string): number {
  const text = proxy.metrics.render({ upstreamConnections: () => [], endpointCounts: () => [] });
  const match = new RegExp(`meshlet_proxy_errors_total\\{target="${target}",reason="${reason}"\\} (\\d+)`).exec(text);
  return match === null ? 0 : Number(match[1]);
}

interface Answer {
  /** HTTP status, or the gRPC status code for gRPC. */
  code: number;
  message: string;
}

async function askHttp1(port: number, authority: string): Promise<Answer> {
  const agent = new http.Agent({ keepAlive: false });
  try {
    const res = await request(agent, port, '/', { host: authority });
    return { code: res.status, message: res.body };
  } finally {
    agent.destroy();
  }
}

async function askHttp2(port: number, authority: string): Promise<Answer> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  try {
    const req = session.request({ ':path': '/', ':authority': authority });
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    await once(req, 'end');
    return { code: Number(headers[':status']), message: body };
  } finally {
    session.close();
  }
}

async function askGrpc(port: number, authority: string): Promise<Answer> {
  const client = createEchoClient(`127.0.0.1:${port}`, { 'grpc.default_authority': authority });
  try {
    const err = (await unaryCall(client, { text: 'hi' }).then(
      () => {
        throw new Error('the call succeeded; a failure was expected');
      },
      (e: grpc.ServiceError) => e,
    )) as grpc.ServiceError;
    return { code: err.code, message: err.details };
  } finally {
    client.close();
  }
}

async function askUpgrade(port: number, authority: string): Promise<Answer> {
  const reply = await exchangeRaw(port, `GET /chat HTTP/1.1\r\nHost: ${authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(reply);
  return { code: status === null ? 0 : Number(status[1]), message: reply };
}

const CLIENTS = [
  { protocol: 'HTTP/1.1', ask: askHttp1, isGrpc: false },
  { protocol: 'HTTP/2', ask: askHttp2, isGrpc: false },
  { protocol: 'gRPC', ask: askGrpc, isGrpc: true },
  { protocol: 'HTTP/1.1 Upgrade', ask: askUpgrade, isGrpc: false },
];

interface FailureCase {
  name: string;
  kind: FailureKind;
  /** What the user sees: the HTTP status, and the gRPC status code. */
  httpStatus: number;
  grpcCode: number;
  /** The target label the error is counted under. */
  target: string;
  message: RegExp;
  setup(t: Test): Promise<{ source: TestSource; authority: string }>;
}

const CASES: FailureCase[] = [
  {
    name: 'route lookup failed',
    kind: FAILURE.routeFailed,
    httpStatus: 502,
    grpcCode: grpc.status.UNAVAILABLE,
    target: 'unknown',
    message: /route lookup for (host|authority) "broken\.example" failed: subscription refused/,
    setup: async (t) => {
      const backend = await startHttpBackend('never-reached');
      t.teardown(() => backend.close());
      return { source: new BrokenTargetSource([backend.address]), authority: 'broken.example' };
    },
  },
  {
    name: 'unknown target, no original destination',
    kind: FAILURE.unknownTarget,
    httpStatus: 502,
    grpcCode: grpc.status.UNAVAILABLE,
    target: 'unknown',
    message: /no target known for (host|authority) "mystery\.example"/,
    setup: async (t) => {
      const backend = await startHttpBackend('never-reached');
      t.teardown(() => backend.close());
      const source = new TestSource([backend.address]);
      source.knownAuthorities = new Set(['known.example']);
      return { source, authority: 'mystery.example' };
    },
  },
  {
    name: 'no endpoints',
    kind: FAILURE.noEndpoints,
    httpStatus: 503,
    grpcCode: grpc.status.UNAVAILABLE,
    target: 'static',
    message: /no endpoint available for static/,
    setup: async () => ({ source: new TestSource([]), authority: 'empty.example' }),
  },
  {
    name: 'connect failure',
    kind: FAILURE.connectFailure,
    httpStatus: 502,
    grpcCode: grpc.status.UNAVAILABLE,
    target: 'static',
    message: /cannot connect to 127\.0\.0\.1:\d+/,
    setup: async () => ({ source: new TestSource([await deadAddress()]), authority: 'dead.example' }),
  },
];

for (const c of CASES) {
  t.test(`${c.name}: every protocol gets the same answer, counted under one reason`, async (t) => {
    const rule = FAILURES[c.kind]!;
    t.equal(rule.httpStatus, c.httpStatus, 'the table holds the status users see');
    t.equal(Number(rule.grpcStatus), c.grpcCode, 'the table holds the gRPC status users see');
    const { source, authority } = await c.setup(t);
    const { proxy } = await startTestProxy(source);
    t.teardown(() => proxy.close());
    let expectedCount = 0;
    for (const client of CLIENTS) {
      const answer = await client.ask(proxy.address.port, authority);
      t.equal(answer.code, client.isGrpc ? c.grpcCode : c.httpStatus, `${client.protocol}: answered ${client.isGrpc ? 'grpc-status' : 'status'} ${client.isGrpc ? c.grpcCode : c.httpStatus}`);
      t.match(answer.message, c.message, `${client.protocol}: the answer says why`);
      expectedCount++;
      t.equal(proxyErrors(proxy, c.target, rule.reason), expectedCount, `${client.protocol}: counted once as meshlet_proxy_errors_total{reason="${rule.reason}"}`);
    }
    const metrics = proxy.metrics.render({ upstreamConnections: () => [], endpointCounts: () => [] });
    t.notMatch(metrics, /meshlet_requests_in_flight\{[^}]*\} [1-9]/, 'every attempt was settled: nothing left in flight');
  });
}

t.test('an Upgrade to a target meshlet does not know passes through to the original destination, counted', async (t) => {
  const heads: string[] = [];
  const original = net.createServer((socket) => {
    socket.once('data', (head: Buffer) => {
      heads.push(head.toString('latin1'));
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
      socket.pipe(socket);
    });
  });
  original.listen(0, '127.0.0.1');
  await once(original, 'listening');
  const { port: originalPort } = original.address() as AddressInfo;
  const source = new TestSource([]);
  source.knownAuthorities = new Set(['known.example']);
  const config = parseProxyConfig({ listen: '127.0.0.1:0', upstream: '127.0.0.1:1', admin: '127.0.0.1:0', 'debug-admin': 'off' });
  const proxy = await startProxy(config, { source, log: captureLogs('warn').log, readOriginalDst: () => ({ host: '127.0.0.1', port: originalPort }) });
  const client = net.connect(proxy.address.port, '127.0.0.1');
  t.teardown(async () => {
    client.destroy();
    await proxy.close();
    await new Promise((resolve) => original.close(resolve));
  });
  client.write('GET /chat HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
  let received = '';
  client.setEncoding('latin1');
  const echoed = new Promise<void>((resolve) => {
    client.on('data', (d: string) => {
      received += d;
      if (received.includes('ping')) resolve();
      else if (received.includes('\r\n\r\n')) client.write('ping');
    });
  });
  await echoed;
  t.match(received, /^HTTP\/1\.1 101 /, 'the original destination answered the upgrade');
  t.match(heads[0], /^GET \/chat HTTP\/1\.1\r\n/);
  const metrics = proxy.metrics.render({ upstreamConnections: () => [], endpointCounts: () => [] });
  t.match(metrics, /meshlet_passthrough_total\{protocol="http1",reason="unknown-target"\} 1\n/, 'counted as passed through, like a plain request');
  t.notMatch(metrics, /meshlet_proxy_errors_total\{/, 'not a failure');
});

t.test('an HTTP/1.1 endpoint whose response breaks the framing: 502, counted as upstream-malformed', async (t) => {
  const endpoint = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'));
  });
  endpoint.listen(0, '127.0.0.1');
  await once(endpoint, 'listening');
  const { port } = endpoint.address() as AddressInfo;
  const { proxy } = await startTestProxy(new TestSource([`127.0.0.1:${port}`]));
  t.teardown(async () => {
    await proxy.close();
    await new Promise((resolve) => endpoint.close(resolve));
  });
  const answer = await askHttp1(proxy.address.port, 'shop.example');
  const rule = FAILURES[FAILURE.upstreamMalformed]!;
  t.equal(answer.code, 502);
  t.equal(rule.httpStatus, 502);
  t.match(answer.message, /malformed response/, 'the answer says the endpoint sent a malformed response');
  t.equal(proxyErrors(proxy, 'static', 'upstream-malformed'), 1);
  t.equal(proxyErrors(proxy, 'static', 'upstream-reset'), 0, 'not mistaken for a reset');
});
