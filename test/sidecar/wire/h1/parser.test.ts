import t from 'tap';
import { FRAMING, H1Parser, MAX_HEAD_BYTES, MAX_HEADER_FIELDS, type H1Head } from '../../../../sidecar/wire/h1/parser.js';

interface Parsed {
  heads: H1Head[];
  bodies: string[];
  trailers: Array<string[] | undefined>;
  ended: number;
  error: { status: number; reason: string } | undefined;
}

/** Feeds `input` to a parser in pieces of at most `step` bytes; collects what it reported. */
function parse(kind: 'request' | 'response', input: string | Buffer, step = Infinity, method = 'GET'): Parsed {
  const out: Parsed = { heads: [], bodies: [], trailers: [], ended: 0, error: undefined };
  let body = '';
  const parser = new H1Parser(kind, {
    onHead: (head) => out.heads.push(head),
    onBody: (data) => (body += data.toString('latin1')),
    onEnd: (trailers) => {
      out.bodies.push(body);
      out.trailers.push(trailers);
      body = '';
      out.ended++;
    },
    onError: (status, reason) => (out.error = { status, reason }),
  });
  parser.requestMethod = method;
  const bytes = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  for (let i = 0; i < bytes.length && out.error === undefined; i += step) parser.execute(bytes.subarray(i, Math.min(bytes.length, i + step)));
  return out;
}

const PIPELINE =
  'POST /a HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhello' +
  'POST /b?x=1 HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Sum: 13\r\n\r\n' +
  'GET /c HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n';

t.test('pipelined requests parse the same whatever the read boundaries', async (t) => {
  const whole = parse('request', PIPELINE);
  t.equal(whole.error, undefined);
  t.same(
    whole.heads.map((h) => [h.method, h.target, h.framing, h.keepAlive]),
    [
      ['POST', '/a', FRAMING.length, true],
      ['POST', '/b?x=1', FRAMING.chunked, true],
      ['GET', '/c', FRAMING.none, false],
    ],
  );
  t.same(whole.bodies, ['hello', 'abc0123456789', '']);
  t.same(whole.trailers, [undefined, ['X-Sum', '13'], undefined]);
  for (const step of [1, 2, 3, 7, 16, 50]) {
    const pieces = parse('request', PIPELINE, step);
    t.same([pieces.heads.map((h) => h.target), pieces.bodies, pieces.trailers, pieces.error], [['/a', '/b?x=1', '/c'], whole.bodies, whole.trailers, undefined], `in pieces of ${step} bytes`);
  }
});

t.test('field names keep their case and order; values lose surrounding whitespace only', async (t) => {
  const { heads } = parse('request', 'GET / HTTP/1.1\r\nHost: shop\r\nX-Mixed-Case:\t a  b \t\r\nx-empty:\r\nX-Obs: caf\xe9\r\n\r\n');
  t.same(heads[0]!.fields, ['Host', 'shop', 'X-Mixed-Case', 'a  b', 'x-empty', '', 'X-Obs', 'caf\xe9']);
});

t.test('HTTP/1.0: close unless keep-alive is asked for; Host not required', async (t) => {
  t.equal(parse('request', 'GET / HTTP/1.0\r\n\r\n').heads[0]!.keepAlive, false);
  t.equal(parse('request', 'GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n').heads[0]!.keepAlive, true);
  t.equal(parse('request', 'GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n').heads[0]!.keepAlive, false);
});

t.test('Upgrade and CONNECT stop the parser after the head', async (t) => {
  const upgrade = parse('request', 'GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello');
  t.equal(upgrade.heads[0]!.isUpgrade, true);
  t.equal(upgrade.ended, 0, 'the bytes after the head are not parsed as HTTP');
  t.equal(parse('request', 'GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n').heads[0]!.isUpgrade, false, 'Upgrade without Connection: upgrade is a plain request');
});

t.test('responses: no body for HEAD, 1xx, 204 and 304; close-delimited without length', async (t) => {
  t.same(parse('response', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', Infinity, 'HEAD').bodies, [''], 'HEAD: Content-Length describes a body that is not sent');
  const interim = parse('response', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok');
  t.same(interim.heads.map((h) => h.status), [100, 103, 201]);
  t.same(interim.bodies, ['ok'], 'interim responses have no body and no end of their own');
  t.same(parse('response', 'HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n').bodies, ['']);
  t.same(parse('response', 'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n').bodies, ['']);
  const untilClose = parse('response', 'HTTP/1.1 200 OK\r\n\r\nall of it');
  t.equal(untilClose.heads[0]!.framing, FRAMING.close);
  t.equal(untilClose.heads[0]!.keepAlive, false);
  t.equal(untilClose.ended, 0, 'ends only when the connection does');
  t.same(parse('response', 'HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n').heads[0]!.reason, '', 'a missing reason phrase is fine');
});

t.test('limits: a head above MAX_HEAD_BYTES or with too many fields is 431', async (t) => {
  const big = parse('request', `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(MAX_HEAD_BYTES)}\r\n\r\n`, 1024);
  t.equal(big.error?.status, 431);
  t.match(big.error?.reason, /larger than 16384 bytes/);
  const many = parse('request', `GET / HTTP/1.1\r\nHost: a\r\n${'X-A: 1\r\n'.repeat(MAX_HEADER_FIELDS)}\r\n`);
  t.equal(many.error?.status, 431);
  t.match(many.error?.reason, /more than 100 header fields/);
  const never = parse('request', `GET / HTTP/1.1\r\nHost: a\r\nX-Never-Ends: ${'a'.repeat(MAX_HEAD_BYTES * 2)}`, 4096);
  t.equal(never.error?.status, 431, 'a head that never ends is refused once it passes the bound, not buffered');
});

t.test('a bare CR or LF is refused as soon as it is seen, not at the end of the head', async (t) => {
  t.equal(parse('request', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\rb').error?.status, 400);
  t.equal(parse('request', 'GET / HTTP/1.1\nHost: a').error?.status, 400);
});

t.test('chunk sizes: hex of any case with leading zeros; overflow refused', async (t) => {
  const ok = parse('request', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n000A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n');
  t.same([ok.error, ok.bodies], [undefined, ['01234567890123456789']]);
  t.match(parse('request', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n20000000000000\r\n').error?.reason, /chunk size larger than/);
  t.match(parse('request', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n').error?.reason, /chunk data longer than its size/);
});
