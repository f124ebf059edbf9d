import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { TestSource, startTestProxy } from '../../helpers/proxy-harness.js';

/**
 * Response bodies through the HTTP/1.1 relay arrive byte for byte while several upstream
 * connections are read at once and the app reads slowly: every upstream read lands in one buffer
 * the connections share, so a body piece still queued for a slow app must not be overwritten by
 * the next read (sidecar/wire/h1/upstream-connection.ts).
 */

const BODY_BYTES = 4 * 1024 * 1024;
const CONCURRENT_REQUESTS = 3;
const REQUEST_TIMEOUT_MS = 20_000;

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** GET `path` on a kept-alive agent; a slow reader pauses for a millisecond after every read. */
function fetchBody(port: number, path: string, agent: http.Agent, isSlowReader: boolean): Promise<{ status: number; bytes: number; digest: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
        if (isSlowReader) {
          res.pause();
          setTimeout(() => res.resume(), 1);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode!, bytes, digest: hash.digest('hex') }));
      res.on('error', reject);
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${path}: no complete response within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
  });
}

t.test('large response bodies (Content-Length and chunked) arrive intact, several at once, to fast and slow readers', async (t) => {
  const body = randomBytes(BODY_BYTES);
  const endpoint = http.createServer((req, res) => {
    if (req.url === '/chunked') {
      // Uneven pieces, so chunk boundaries and reads never line up.
      let sent = 0;
      const pump = () => {
        while (sent < body.length) {
          const size = Math.min(body.length - sent, 1000 + ((sent * 7) % 70_000));
          const ok = res.write(body.subarray(sent, sent + size));
          sent += size;
          if (!ok) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    res.setHeader('content-length', String(body.length));
    res.end(body);
  });
  endpoint.listen(0, '127.0.0.1');
  await once(endpoint, 'listening');
  t.teardown(() => {
    endpoint.closeAllConnections();
    endpoint.close();
  });
  const { proxy } = await startTestProxy(new TestSource([`127.0.0.1:${(endpoint.address() as AddressInfo).port}`]));
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENT_REQUESTS });
  t.teardown(async () => {
    agent.destroy();
    await proxy.close();
  });
  const expected = sha256(body);
  for (const path of ['/length', '/chunked']) {
    for (const isSlowReader of [false, true]) {
      const results = await Promise.all(Array.from({ length: CONCURRENT_REQUESTS }, () => fetchBody(proxy.address.port, path, agent, isSlowReader)));
      for (const [i, r] of results.entries()) {
        t.same(r, { status: 200, bytes: BODY_BYTES, digest: expected }, `${path}, ${isSlowReader ? 'slow' : 'fast'} reader, request ${i + 1} of ${CONCURRENT_REQUESTS}: every byte as sent`);
      }
    }
  }
});
