import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { classify, detectProtocol, type DetectedProtocol } from '../../../sidecar/accept/detect.js';
import { waitUntil } from '../../helpers/wait.js';

const H2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const REQUEST_LINES = ['GET / HTTP/1.1\r\n', 'POST /x HTTP/1.1\r\n', 'PUT /a HTTP/1.0\r\n', 'DELETE /d HTTP/1.1\r\n', 'HEAD / HTTP/1.1\r\n', 'OPTIONS * HTTP/1.1\r\n', 'PATCH /p HTTP/1.1\r\n', 'CONNECT h:443 HTTP/1.1\r\n', 'TRACE / HTTP/1.1\r\n'];

t.test('every prefix of the HTTP/2 preface needs more bytes; the whole preface is HTTP/2', async (t) => {
  for (let n = 1; n < H2_PREFACE.length; n++) t.equal(classify(Buffer.from(H2_PREFACE.slice(0, n), 'latin1')), 'need-more', `${n} bytes`);
  t.equal(classify(Buffer.from(H2_PREFACE, 'latin1')), 'http2');
  t.equal(classify(Buffer.from(`${H2_PREFACE}\x00\x00\x12\x04`, 'latin1')), 'http2', 'with a SETTINGS frame after it');
});

t.test('every prefix of an HTTP/1 request line up to the method needs more; method + space is HTTP/1', async (t) => {
  for (const line of REQUEST_LINES) {
    const method = line.slice(0, line.indexOf(' '));
    for (let n = 1; n <= line.length; n++) {
      const expected = n <= method.length ? 'need-more' : 'http1';
      t.equal(classify(Buffer.from(line.slice(0, n), 'latin1')), expected, `${JSON.stringify(line.slice(0, n))}`);
    }
  }
});

t.test('anything else is opaque at the first byte that rules HTTP out', async (t) => {
  const cases: Array<[string, string]> = [
    ['TLS ClientHello', '\x16\x03\x01\x02\x00'],
    ['lowercase method', 'get / HTTP/1.1'],
    ['unknown method', 'BREW /pot HTTP/1.1'],
    ['method without space', 'GETX'],
    ['preface gone wrong', 'PRI * HTTP/1.1'],
    ['binary zero', '\x00'],
    ['Redis inline', 'PING\r\n'],
  ];
  for (const [name, text] of cases) t.equal(classify(Buffer.from(text, 'latin1')), 'opaque', name);
});

/** Real sockets: bytes arrive in pieces; detection waits, then replays every byte it read. */
async function detectOver(chunks: string[], timeoutMs = 500, endAfter = false): Promise<{ protocol: DetectedProtocol; replayed: string }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [socket] = (await once(server, 'connection')) as [net.Socket];
  const detected = detectProtocol(socket, timeoutMs);
  for (const chunk of chunks) {
    client.write(Buffer.from(chunk, 'latin1'));
    // 15 ms apart so that each piece arrives in a read of its own: the pieces' timing is what is tested.
    await new Promise((r) => setTimeout(r, 15));
  }
  if (endAfter) client.end();
  const protocol = await detected;
  let replayed = '';
  if (protocol !== 'closed') {
    socket.resume();
    socket.on('data', (d) => (replayed += d.toString('latin1')));
    const sent = chunks.join('');
    await waitUntil(() => replayed.length >= sent.length, 2000, `the ${sent.length} bytes sent, replayed`);
  }
  client.destroy();
  socket.destroy();
  server.close();
  return { protocol, replayed };
}

t.test('over a socket: a preface split byte by byte is HTTP/2 and nothing is lost', async (t) => {
  const { protocol, replayed } = await detectOver([...H2_PREFACE.slice(0, 24)], 10_000);
  t.equal(protocol, 'http2');
  t.equal(replayed, H2_PREFACE);
});

t.test('over a socket: a request line in two pieces is HTTP/1 and replayed whole', async (t) => {
  const { protocol, replayed } = await detectOver(['PO', 'ST /upload HTTP/1.1\r\nHost: a\r\n\r\n'], 10_000);
  t.equal(protocol, 'http1');
  t.equal(replayed, 'POST /upload HTTP/1.1\r\nHost: a\r\n\r\n');
});

t.test('over a socket: a silent client is opaque after the timeout', async (t) => {
  const { protocol } = await detectOver([], 50);
  t.equal(protocol, 'opaque');
});

t.test('over a socket: a client stuck in the middle of a prefix is opaque after the timeout, bytes kept', async (t) => {
  const { protocol, replayed } = await detectOver(['GE'], 50);
  t.equal(protocol, 'opaque');
  t.equal(replayed, 'GE');
});

t.test('over a socket: a client that half-closes mid-prefix is closed', async (t) => {
  const { protocol } = await detectOver(['PR'], 500, true);
  t.equal(protocol, 'closed');
});
