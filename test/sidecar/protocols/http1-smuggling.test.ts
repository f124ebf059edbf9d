import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { SMUGGLING_CASES, SMUGGLING_PREFIX } from '../../helpers/h1-smuggling-cases.js';
import { exchangeRaw, startRawEndpoint } from '../../helpers/http1-kit.js';
import { TestSource, startTestProxy } from '../../helpers/proxy-harness.js';

/**
 * Request smuggling: a request the proxy and the endpoint could frame differently must be refused
 * with 400 and nothing sent upstream. The cases are the classic desync vectors (conflicting
 * Content-Length / Transfer-Encoding, duplicate or malformed Content-Length, obs-fold, bare LF/CR,
 * NUL, bad chunk framing); node:http's strict parser is what refuses them today, and these tests
 * keep it that way across relay rewrites (issue 13).
 */
const H = SMUGGLING_PREFIX;
const cases = SMUGGLING_CASES;

t.test(`${cases.length} smuggling vectors: each answered 400, nothing sent upstream, the proxy keeps serving`, async (t) => {
  // A raw endpoint that counts every byte it is sent, and answers any request head with 200.
  const endpoint = await startRawEndpoint((_head, socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'));
  const { proxy } = await startTestProxy(new TestSource([endpoint.address]));
  t.teardown(async () => {
    await proxy.close();
    await new Promise((r) => endpoint.server.close(r));
  });
  for (const c of cases) {
    const reply = await exchangeRaw(proxy.address.port, c.raw);
    t.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/, `${c.name}: 400`);
    t.equal(endpoint.bytesReceived(), 0, `${c.name}: nothing sent upstream`);
  }
  const good = await exchangeRaw(proxy.address.port, `${H}Content-Length: 4\r\nConnection: close\r\n\r\nabcd`);
  t.match(good, /^HTTP\/1\.1 200 OK\r\n/, 'a well-formed request still goes through');
  t.ok(endpoint.bytesReceived() > 0, 'and reaches the endpoint (so the byte count above could have caught a leak)');
});

t.test('a chunk framing error after the head: 400 to the app, and the endpoint never gets a complete request', async (t) => {
  // The head is valid, so the request may already be on its way when the body turns out bad; the
  // relay must then cut the upstream request off rather than finish it.
  const seen = { started: 0, completed: 0 };
  const endpoint = http.createServer((req, res) => {
    seen.started++;
    req.resume();
    req.on('end', () => {
      seen.completed++;
      res.end('ok');
    });
  });
  const cutOff = new Promise<void>((resolve) => endpoint.on('request', (req: http.IncomingMessage) => req.on('close', () => resolve())));
  endpoint.listen(0, '127.0.0.1');
  await once(endpoint, 'listening');
  const { proxy } = await startTestProxy(new TestSource([`127.0.0.1:${(endpoint.address() as AddressInfo).port}`]));
  t.teardown(async () => {
    await proxy.close();
    endpoint.closeAllConnections();
    await new Promise((r) => endpoint.close(r));
  });
  const reply = await exchangeRaw(proxy.address.port, `${H}Transfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n`);
  t.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/);
  if (seen.started > 0) await cutOff;
  t.equal(seen.completed, 0, `the endpoint completed no request (${seen.started} started and were cut off)`);
});
