import { execFile } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { exchangeRaw, request, startHttpBackend } from '../../helpers/http1-kit.js';
import { TestSource, startTestProxy } from '../../helpers/proxy-harness.js';

/**
 * The byte-level HTTP/1.1 relay with real clients (node:http, undici's fetch, curl) and real
 * endpoints on loopback: framing both ways, pipelining, interim responses, retries of requests an
 * endpoint never saw, hop-by-hop fields, and bounded buffering when one side reads slowly.
 */

const execFileAsync = promisify(execFile);

async function listen(server: net.Server | http.Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A proxy in front of `addresses`; app sockets and agents given to `track` are closed before it. */
async function proxyTo(t: Test, addresses: string[], flags: Record<string, string> = {}) {
  const { proxy } = await startTestProxy(new TestSource(addresses), flags);
  const tracked: Array<{ destroy(): void }> = [];
  t.teardown(async () => {
    for (const s of tracked) s.destroy();
    await proxy.close();
  });
  const track = <T extends { destroy(): void }>(s: T): T => {
    tracked.push(s);
    return s;
  };
  return { proxy, port: proxy.address.port, track };
}

function renderMetrics(proxy: Awaited<ReturnType<typeof startTestProxy>>['proxy']): string {
  return proxy.metrics.render({ upstreamConnections: () => [], endpointCounts: () => [] });
}

/** An endpoint answering what it was sent: method, path, headers and body as JSON. */
async function startEchoEndpoint(t: Test, handle?: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => boolean) {
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      if (handle?.(req, res, body)) return;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body, trailers: req.trailers }));
    });
  });
  const address = await listen(server);
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { server, address };
}

t.test('fetch (undici): GET and POST with a body, over one kept-alive connection', async (t) => {
  const endpoint = await startEchoEndpoint(t);
  // fetch keeps its connection open and cannot be told to close it: the proxy closes it when idle.
  const { port } = await proxyTo(t, [endpoint.address], { 'http1-idle-timeout-ms': '300' });
  const get = await fetch(`http://127.0.0.1:${port}/items?x=1`, { headers: { 'x-app': 'a' } });
  t.equal(get.status, 200);
  const seen = (await get.json()) as { method: string; url: string; headers: Record<string, string> };
  t.same([seen.method, seen.url, seen.headers['x-app']], ['GET', '/items?x=1', 'a']);
  const body = 'p'.repeat(100_000);
  const post = await fetch(`http://127.0.0.1:${port}/upload`, { method: 'POST', body });
  const echoed = (await post.json()) as { body: string; headers: Record<string, string> };
  t.equal(echoed.body, body, 'the body arrived whole');
  t.equal(echoed.headers['content-length'], String(body.length));
});

t.test('curl: chunked upload, Expect: 100-continue, and HTTP/1.0', async (t) => {
  const endpoint = await startEchoEndpoint(t);
  const { port } = await proxyTo(t, [endpoint.address]);
  const url = `http://127.0.0.1:${port}/curl`;
  const chunked = await execFileAsync('curl', ['-sS', '--max-time', '10', '-H', 'Transfer-Encoding: chunked', '--data-binary', 'hello chunks', url]);
  const seenChunked = JSON.parse(chunked.stdout) as { body: string; headers: Record<string, string> };
  t.equal(seenChunked.body, 'hello chunks');
  t.equal(seenChunked.headers['transfer-encoding'], 'chunked', 'a chunked body stays chunked upstream');
  const expect = await execFileAsync('curl', ['-sS', '-v', '--max-time', '10', '-H', 'Expect: 100-continue', '--data-binary', 'after continue', url]);
  t.match(expect.stderr, /< HTTP\/1\.1 100 Continue/, "the endpoint's 100 Continue reached curl");
  t.equal((JSON.parse(expect.stdout) as { body: string }).body, 'after continue');
  const old = await execFileAsync('curl', ['-sS', '-i', '-0', '--max-time', '10', url]);
  t.match(old.stdout, /^HTTP\/1\.1 200 OK\r\n/);
  t.match(old.stdout, /\r\nconnection: close\r\n/i, 'an HTTP/1.0 client without keep-alive is told the connection closes');
  t.notMatch(old.stdout, /transfer-encoding/i, 'and never gets a chunked body');
});

t.test('pipelined requests are answered in order, even when the first is the slowest', async (t) => {
  const backend = await startHttpBackend('p');
  t.teardown(() => backend.close());
  const { port } = await proxyTo(t, [backend.address]);
  const reply = await exchangeRaw(
    port,
    'GET /first?delay-ms=300 HTTP/1.1\r\nHost: a\r\n\r\n' + 'POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc' + 'GET /third HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
  );
  const paths = [...reply.matchAll(/x-seen-path: (\S+)/g)].map((m) => m[1]);
  t.same(paths, ['/first?delay-ms=300', '/second', '/third']);
  t.match(reply, /\r\n\r\np:abc/, 'the POST body in between was relayed');
});

t.test('responses: chunked with trailers, HEAD, 204 and 304 framed as the endpoint sent them', async (t) => {
  const endpoint = await startEchoEndpoint(t, (req, res) => {
    if (req.url === '/trailers') {
      res.writeHead(200, { trailer: 'x-checksum' });
      res.write('part1-');
      res.write('part2');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
      return true;
    }
    if (req.url === '/head') {
      res.writeHead(200, { 'content-length': '1234' });
      res.end();
      return true;
    }
    if (req.url === '/204' || req.url === '/304') {
      res.writeHead(Number(req.url.slice(1)));
      res.end();
      return true;
    }
    return false;
  });
  const { port, track } = await proxyTo(t, [endpoint.address]);
  const agent = track(new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const trailers = await new Promise<{ body: string; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/trailers', agent }, (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ body, trailers: res.trailers }));
      })
      .on('error', reject);
  });
  t.equal(trailers.body, 'part1-part2');
  t.same(trailers.trailers, { 'x-checksum': 'abc123' }, 'trailers pass through');
  const head = await request(agent, port, '/head', { method: 'HEAD' });
  t.same([head.status, head.headers['content-length'], head.body], [200, '1234', ''], 'HEAD: the length, no body');
  for (const status of [204, 304]) {
    const res = await request(agent, port, `/${status}`);
    t.same([res.status, res.body], [status, ''], `${status}: no body`);
  }
  const after = await request(agent, port, '/after');
  t.equal(after.status, 200, 'the kept-alive connection is still in step after the bodiless responses');
});

t.test('hop-by-hop fields are not forwarded either way; end-to-end ones are', async (t) => {
  const endpoint = await startEchoEndpoint(t, (_req, res, _body) => {
    if (_req.url !== '/hop') return false;
    const seen = JSON.stringify(_req.headers);
    res.writeHead(200, { connection: 'x-resp-hop', 'x-resp-hop': '1', 'x-resp-kept': '1', 'keep-alive': 'timeout=99', 'proxy-connection': 'keep-alive', 'content-length': String(seen.length) });
    res.end(seen);
    return true;
  });
  const { port } = await proxyTo(t, [endpoint.address]);
  const reply = await exchangeRaw(
    port,
    'GET /hop HTTP/1.1\r\nHost: a\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: x\r\nX-Kept: 1\r\n\r\n',
  );
  const seen = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as Record<string, string>;
  t.same(Object.keys(seen).sort(), ['host', 'x-kept'], 'the endpoint got only end-to-end fields');
  t.match(reply, /\r\nx-resp-kept: 1\r\n/);
  t.notMatch(reply, /x-resp-hop|timeout=99|proxy-connection/i, "the endpoint's hop-by-hop fields stop at the proxy");
});

t.test('a head over the size limit is answered 431 and the connection closed', async (t) => {
  const backend = await startHttpBackend('ok');
  t.teardown(() => backend.close());
  const { port } = await proxyTo(t, [backend.address]);
  const reply = await exchangeRaw(port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
  t.match(reply, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  t.match(reply, /larger than 16384 bytes/);
  t.equal(backend.requests, 0);
});

t.test('an endpoint that refuses connections: the request is retried on another, once', async (t) => {
  const backend = await startHttpBackend('alive');
  t.teardown(() => backend.close());
  const dead = net.createServer();
  const deadAddress = await listen(dead);
  await new Promise((r) => dead.close(r));
  const { proxy, port, track } = await proxyTo(t, [deadAddress, backend.address]);
  const agent = track(new http.Agent({ keepAlive: true, maxSockets: 1 }));
  for (let i = 0; i < 4; i++) {
    const res = await request(agent, port, '/', { method: 'POST', body: `body${i}` });
    t.same([res.status, res.body], [200, `alive:body${i}`], `request ${i} answered by the live endpoint, with its body`);
  }
  t.match(renderMetrics(proxy), /meshlet_retries_total\{target="static",reason="connect-failure"\} [1-9]/);
});

t.test('a kept-alive upstream connection the endpoint dropped: the request is retried, not failed', async (t) => {
  // The first endpoint answers the first request on a connection and silently drops the
  // connection on the next one, as a server whose idle timeout fired just as the request left.
  let dropped = 0;
  const flaky = net.createServer((socket) => {
    socket.on('error', () => undefined);
    let served = 0;
    socket.on('data', () => {
      if (served++ === 0) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nflaky');
      else {
        dropped++;
        socket.destroy();
      }
    });
  });
  const flakyAddress = await listen(flaky);
  t.teardown(() => flaky.close());
  const backend = await startHttpBackend('steady');
  t.teardown(() => backend.close());
  const { proxy, port, track } = await proxyTo(t, [flakyAddress, backend.address]);
  const agent = track(new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const bodies: string[] = [];
  for (let i = 0; i < 6; i++) {
    const res = await request(agent, port, '/');
    t.equal(res.status, 200, `request ${i} succeeded`);
    bodies.push(res.body);
  }
  t.ok(dropped > 0, `the endpoint dropped ${dropped} reused connections`);
  t.ok(bodies.includes('flaky') && bodies.includes('steady'));
  t.match(renderMetrics(proxy), /meshlet_retries_total\{target="static",reason="dead-connection"\} [1-9]/);
});

t.test('a slow-reading app: the proxy stops reading the endpoint instead of buffering its response', async (t) => {
  const TOTAL_BYTES = 64 * 1024 * 1024;
  const piece = Buffer.alloc(256 * 1024, 0x61);
  let accepted = 0;
  let stalled: () => void = () => undefined;
  const stall = new Promise<void>((resolve) => (stalled = resolve));
  const endpoint = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': String(TOTAL_BYTES) });
    const pump = () => {
      while (accepted < TOTAL_BYTES) {
        accepted += piece.length;
        if (!res.write(piece)) {
          stalled();
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  const address = await listen(endpoint);
  t.teardown(() => {
    endpoint.closeAllConnections();
    endpoint.close();
  });
  const { port, track } = await proxyTo(t, [address]);
  const client = track(net.connect(port, '127.0.0.1'));
  client.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n');
  client.pause();
  await stall;
  // Absence over time is the check: poll until the endpoint hands over nothing more for 100 ms (at most 5 s).
  let previous = -1;
  for (let i = 0; i < 50 && accepted !== previous; i++) {
    previous = accepted;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(accepted < TOTAL_BYTES / 2, `with the app not reading, the endpoint could hand over only ${(accepted / 1048576).toFixed(1)} of 64 MiB (kernel buffers plus the proxy's bounded ones)`);
  let received = 0;
  const headBytes = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${received} bytes arrived within 20 s`)), 20_000);
    client.on('data', (c: Buffer) => {
      received += c.length;
      if (received < TOTAL_BYTES) return;
      clearTimeout(timer);
      resolve(received - TOTAL_BYTES);
    });
    client.resume();
  });
  t.ok(headBytes > 0 && headBytes < 1000, 'once the app reads, the whole body arrives');
});

t.test('an endpoint that does not read: the proxy stops reading the app instead of buffering its upload', async (t) => {
  let endpointSocket: net.Socket | undefined;
  const endpoint = net.createServer((socket) => {
    endpointSocket = socket;
    socket.pause();
  });
  const address = await listen(endpoint);
  t.teardown(() => {
    endpointSocket?.destroy();
    endpoint.close();
  });
  const { port, track } = await proxyTo(t, [address]);
  const client = track(net.connect(port, '127.0.0.1'));
  await once(client, 'connect');
  const TOTAL_BYTES = 64 * 1024 * 1024;
  client.write(`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${TOTAL_BYTES}\r\n\r\n`);
  const piece = Buffer.alloc(256 * 1024, 0x62);
  let written = 0;
  while (written < TOTAL_BYTES) {
    written += piece.length;
    if (!client.write(piece)) {
      const drained = await Promise.race([once(client, 'drain').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2_000))]);
      if (!drained) break;
    }
  }
  t.ok(written < TOTAL_BYTES / 2, `with the endpoint not reading, the app could hand over only ${(written / 1048576).toFixed(1)} of 64 MiB`);
  let reply = '';
  client.on('data', (c: Buffer) => (reply += c.toString('latin1')));
  const closed = once(client, 'close');
  endpointSocket?.destroy();
  await closed;
  t.match(reply, /^HTTP\/1\.1 502 Bad Gateway\r\n/, 'when the endpoint then goes away, the app is answered 502 and the connection closed');
});

t.test('a body sent in thousands of tiny chunks is relayed whole, re-chunked per read rather than per chunk, both ways', async (t) => {
  const TINY_CHUNKS = 5_000;
  const tiny = `${'1\r\nx\r\n'.repeat(TINY_CHUNKS)}0\r\n\r\n`;
  let requestText = '';
  const endpoint = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      requestText += c;
      if (requestText.endsWith('0\r\n\r\n')) socket.end(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n${tiny}`);
    });
  });
  const address = await listen(endpoint);
  t.teardown(() => endpoint.close());
  const { port } = await proxyTo(t, [address]);
  const reply = await exchangeRaw(port, `POST /tiny HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${tiny}`);
  const decode = (text: string): { body: string; chunks: number } => {
    let body = '';
    let chunks = 0;
    let at = text.indexOf('\r\n\r\n') + 4;
    for (;;) {
      const lineEnd = text.indexOf('\r\n', at);
      const size = parseInt(text.slice(at, lineEnd), 16);
      if (!(size > 0)) return { body, chunks };
      body += text.slice(lineEnd + 2, lineEnd + 2 + size);
      chunks++;
      at = lineEnd + 2 + size + 2;
    }
  };
  const up = decode(requestText);
  t.equal(up.body, 'x'.repeat(TINY_CHUNKS), 'the endpoint got the whole request body');
  t.ok(up.chunks < TINY_CHUNKS / 100, `in ${up.chunks} chunks, not ${TINY_CHUNKS}`);
  const down = decode(reply);
  t.equal(down.body, 'x'.repeat(TINY_CHUNKS), 'the app got the whole response body');
  t.ok(down.chunks < TINY_CHUNKS / 100, `in ${down.chunks} chunks, not ${TINY_CHUNKS}`);
});
