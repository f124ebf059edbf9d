import { once } from 'node:events';
import net from 'node:net';
import t from 'tap';
import { exchangeRaw, startRawEndpoint } from '../../helpers/http1-kit.js';
import { TestSource, startTestProxy } from '../../helpers/proxy-harness.js';

/**
 * A head crosses the proxy as it was sent, less its hop-by-hop lines (and a response with the
 * proxy's own connection lines), whether the relay copies the sender's bytes (every line already
 * "name: value", nothing to rewrite) or writes the head anew (anything else): the other side sees
 * the same head either way, to the byte.
 */

const cases: Array<{ name: string; head: string; expected: string }> = [
  {
    name: "node:http's keep-alive lines are replaced by the proxy's",
    head: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\n',
    expected: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nconnection: close\r\n\r\n',
  },
  {
    name: 'hop-by-hop lines first, in the middle and last, and one named by Connection, are cut out',
    head: 'HTTP/1.1 201 Created\r\nConnection: X-Drop\r\nX-Keep: 1\r\nX-Drop: 2\r\nTrailer: x\r\nContent-Length: 2\r\nProxy-Connection: keep-alive\r\n\r\n',
    expected: 'HTTP/1.1 201 Created\r\nX-Keep: 1\r\nContent-Length: 2\r\nconnection: close\r\n\r\n',
  },
  {
    name: 'fields without the usual space, or with trailing whitespace, are written "name: value"',
    head: 'HTTP/1.1 200 OK\r\nX-A:b\r\nX-B:   c  \r\nContent-Length: 2\r\n\r\n',
    expected: 'HTTP/1.1 200 OK\r\nX-A: b\r\nX-B: c\r\nContent-Length: 2\r\nconnection: close\r\n\r\n',
  },
  {
    name: "an HTTP/1.0 endpoint's status line is written as HTTP/1.1",
    head: 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n',
    expected: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: close\r\n\r\n',
  },
  {
    name: 'a status line without a reason gets the space before the empty reason',
    head: 'HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n',
    expected: 'HTTP/1.1 200 \r\nContent-Length: 2\r\nconnection: close\r\n\r\n',
  },
  {
    name: 'an empty value and a reason with spaces pass as they are',
    head: 'HTTP/1.1 404 Not Found Here\r\nX-Empty: \r\nContent-Length: 2\r\n\r\n',
    expected: 'HTTP/1.1 404 Not Found Here\r\nX-Empty: \r\nContent-Length: 2\r\nconnection: close\r\n\r\n',
  },
];

/** Bytes of the head the endpoint writes first when it splits it over two writes. */
const FIRST_PIECE_BYTES = 20;

/** Answers GET /<index>[?split] with cases[index]'s head and the body "ok" (split: the head in two writes). */
function startEndpoint(): ReturnType<typeof startRawEndpoint> {
  return startRawEndpoint((head, socket) => {
    const target = /^GET \/(\d+)(\?split)? /.exec(head)!;
    const reply = Buffer.from(`${cases[Number(target[1])]!.head}ok`, 'latin1');
    if (target[2] === undefined) {
      socket.write(reply);
    } else {
      // The second piece after the first was written: the proxy may read them apart.
      socket.write(reply.subarray(0, FIRST_PIECE_BYTES), () => setImmediate(() => socket.write(reply.subarray(FIRST_PIECE_BYTES))));
    }
  });
}

t.test('response heads as the app gets them', async (t) => {
  const { server, address } = await startEndpoint();
  const { proxy } = await startTestProxy(new TestSource([address]));
  t.teardown(async () => {
    await proxy.close();
    server.close();
  });
  for (const [index, { name, expected }] of cases.entries()) {
    for (const split of [false, true]) {
      const reply = await exchangeRaw(proxy.address.port, `GET /${index}${split ? '?split' : ''} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
      t.equal(reply.replace(/\r\ndate: [^\r]*/i, ''), `${expected}ok`, `${name}${split ? ' (head in two pieces)' : ''}`);
    }
  }
});

const requestCases: Array<{ name: string; head: string; expected: string }> = [
  {
    name: "a client's usual head passes as it is",
    head: 'GET /items?page=2 HTTP/1.1\r\nHost: shop\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n',
    expected: 'GET /items?page=2 HTTP/1.1\r\nHost: shop\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n',
  },
  {
    name: 'hop-by-hop lines, and one named by Connection, are cut out wherever they are',
    head: 'GET / HTTP/1.1\r\nConnection: keep-alive, X-Drop\r\nHost: shop\r\nX-Drop: 1\r\nTE: trailers\r\nX-Keep: 2\r\nKeep-Alive: 5\r\n\r\n',
    expected: 'GET / HTTP/1.1\r\nHost: shop\r\nX-Keep: 2\r\n\r\n',
  },
  {
    name: 'fields without the usual space, or with trailing whitespace, are written "name: value"',
    head: 'GET / HTTP/1.1\r\nHost:shop\r\nX-B:  c \r\n\r\n',
    expected: 'GET / HTTP/1.1\r\nHost: shop\r\nX-B: c\r\n\r\n',
  },
  {
    name: 'an HTTP/1.0 request goes upstream as HTTP/1.1',
    head: 'GET / HTTP/1.0\r\nHost: shop\r\nConnection: keep-alive\r\n\r\n',
    expected: 'GET / HTTP/1.1\r\nHost: shop\r\n\r\n',
  },
  {
    name: 'an absolute-form request goes upstream in origin-form, with the Host of its URI',
    head: 'GET http://shop/cart HTTP/1.1\r\nHost: other\r\nX-Keep: 1\r\n\r\n',
    expected: 'GET /cart HTTP/1.1\r\nHost: shop\r\nX-Keep: 1\r\n\r\n',
  },
];

t.test('request heads as the endpoint gets them', async (t) => {
  const heads: string[] = [];
  const { server, address } = await startRawEndpoint((head, socket) => {
    heads.push(head);
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  });
  const { proxy } = await startTestProxy(new TestSource([address]));
  t.teardown(async () => {
    await proxy.close();
    server.close();
  });
  const client = net.connect(proxy.address.port, '127.0.0.1');
  t.teardown(() => client.destroy());
  client.on('error', (err) => t.fail(`client connection failed: ${err.message}`));
  await once(client, 'connect');
  let received = '';
  client.setEncoding('latin1');
  for (const { name, head, expected } of requestCases) {
    // One request at a time on one kept-alive connection: every head after the first is read into the shared buffer.
    const answered = new Promise<void>((resolve) => {
      const onData = (c: string) => {
        received += c;
        if (!received.endsWith('\r\n\r\nok')) return;
        received = '';
        client.off('data', onData);
        resolve();
      };
      client.on('data', onData);
    });
    client.write(head);
    await answered;
    t.equal(heads.shift(), expected, name);
  }
});
