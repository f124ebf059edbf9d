import { once } from 'node:events';
import http2 from 'node:http2';
import t from 'tap';
import { parseCommand } from '../../../src/common/config.js';
import { PROXY_COMMAND, parseProxyConfig } from '../../../sidecar/config.js';
import { HpackDecoder } from '../../../sidecar/wire/h2/hpack.js';
import { F, T, frame, literalBlock, rawServer, u32, type FrameReader, type RawFrame } from '../../helpers/h2-raw.js';
import { startH2Endpoint, startH2Proxy, type TestEndpoint } from '../../helpers/h2-proxy-kit.js';
import { waitUntil } from '../../helpers/wait.js';

/**
 * What RFC 9113 says about malformed messages and misused frames, checked with hand-written frames
 * against an in-process proxy: malformed requests are answered 400 and never forwarded, malformed
 * responses never reach the app, frame misuse gets the error code the RFC names, a stream reset
 * in the same read as its HEADERS never reaches an endpoint, and idle app connections are closed.
 */

const CODE = { NO_ERROR: 0, PROTOCOL_ERROR: 1, FLOW_CONTROL_ERROR: 3, FRAME_SIZE_ERROR: 6 } as const;

interface CountingBackend extends TestEndpoint {
  /** Request paths that reached it, in order. */
  paths: string[];
}

/** A node:http2 backend: "/hold" is never answered; anything else gets 200 "ok". Records every path. */
async function countingBackend(): Promise<CountingBackend> {
  const paths: string[] = [];
  const endpoint = await startH2Endpoint((stream, headers) => {
    paths.push(String(headers[':path']));
    if (headers[':path'] === '/hold') return;
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  return { address: endpoint.address, close: endpoint.close, paths };
}

const GET: Array<[string, string]> = [
  [':method', 'GET'],
  [':scheme', 'http'],
  [':path', '/fine'],
  [':authority', 'frames.test'],
];

/** The fields of the first header block the proxy sent on `streamId` (decoded in connection order). */
async function responseFields(reader: FrameReader, streamId: number): Promise<string[]> {
  await reader.waitFor((f) => f.streamId === streamId && (f.type === T.HEADERS || f.type === T.RST_STREAM), 5_000, `a response on stream ${streamId}`);
  const decoder = new HpackDecoder();
  for (const f of reader.frames) {
    if (f.type !== T.HEADERS) continue;
    const fields: string[] = [];
    decoder.decode(f.payload, fields, 1 << 20);
    if (f.streamId === streamId) return fields;
  }
  return [];
}

function rstOn(reader: FrameReader, streamId: number): Promise<RawFrame> {
  return reader.waitFor((f) => f.type === T.RST_STREAM && f.streamId === streamId, 5_000, `RST_STREAM on stream ${streamId}`);
}

async function goaway(reader: FrameReader): Promise<{ code: number; message: string }> {
  const f = await reader.waitFor((x) => x.type === T.GOAWAY, 5_000, 'GOAWAY');
  return { code: f.payload.readUInt32BE(4), message: f.payload.subarray(8).toString() };
}

t.test('malformed requests are answered 400 naming the problem and never reach an endpoint', async (t) => {
  const backend = await countingBackend();
  const kit = await startH2Proxy(t, [backend]);
  const withField = (name: string, value: string): Array<[string, string]> => [...GET, [name, value]];
  const cases: Array<{ name: string; fields: Array<[string, string]>; problem: RegExp }> = [
    { name: 'an uppercase field name', fields: withField('X-Evil', '1'), problem: /field name "X-Evil"/ },
    { name: 'CR LF in a value', fields: withField('x-a', 'a\r\nx-evil: 1'), problem: /NUL, CR or LF/ },
    { name: 'NUL in a value', fields: withField('x-a', 'a\0b'), problem: /NUL, CR or LF/ },
    { name: 'a space in a name', fields: withField('x a', '1'), problem: /field name "x a"/ },
    { name: 'connection: keep-alive', fields: withField('connection', 'keep-alive'), problem: /connection-specific field "connection"/ },
    { name: 'transfer-encoding', fields: withField('transfer-encoding', 'chunked'), problem: /connection-specific field "transfer-encoding"/ },
    { name: 'te other than trailers', fields: withField('te', 'gzip'), problem: /field te: "gzip"/ },
    { name: 'missing :path', fields: GET.filter(([n]) => n !== ':path'), problem: /:path is missing/ },
    { name: 'missing :method', fields: GET.filter(([n]) => n !== ':method'), problem: /:method is missing/ },
    { name: 'a duplicated :method', fields: [[':method', 'GET'], ...GET], problem: /:method given twice/ },
    { name: 'a pseudo-header after a regular field', fields: [...GET.slice(1), ['x-a', '1'], [':method', 'GET']], problem: /:method after a regular field/ },
    { name: 'an unknown pseudo-header', fields: withField(':status', '200'), problem: /pseudo-header ":status" is not allowed in a request/ },
    { name: 'an empty :path', fields: GET.map(([n, v]): [string, string] => [n, n === ':path' ? '' : v]), problem: /:path is empty/ },
  ];
  for (const c of cases) {
    const { reader } = await kit.connect();
    reader.socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, literalBlock(c.fields)));
    const fields = await responseFields(reader, 1);
    t.equal(fields[1], '400', `${c.name}: 400`);
    const body = await reader.waitFor((f) => f.type === T.DATA && f.streamId === 1, 5_000, 'the 400 body');
    t.match(body.payload.toString(), c.problem, `${c.name}: the body names the problem`);
  }
  t.same(backend.paths, [], 'no malformed request reached the endpoint');

  const { reader } = await kit.connect();
  reader.socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, literalBlock([...GET, ['te', 'trailers']])));
  t.equal((await responseFields(reader, 1))[1], '200', 'te: trailers is allowed and forwarded');
  t.same(backend.paths, ['/fine']);
});

t.test('malformed responses from an endpoint never reach the app: 502 naming the problem', async (t) => {
  const responses: Array<{ name: string; fields: Array<[string, string]>; problem: RegExp }> = [
    { name: 'an uppercase field name', fields: [[':status', '200'], ['X-Evil', '1']], problem: /field name "X-Evil"/ },
    { name: 'CR LF in a value', fields: [[':status', '200'], ['set-cookie', 'a\r\nx-evil: 1']], problem: /NUL, CR or LF/ },
    { name: 'a connection-specific field', fields: [[':status', '200'], ['connection', 'close']], problem: /connection-specific field "connection"/ },
    { name: 'no :status', fields: [['x-a', '1']], problem: /:status is missing/ },
    { name: 'a request pseudo-header', fields: [[':status', '200'], [':path', '/x']], problem: /":path" is not allowed in a response/ },
    { name: 'a :status that is no status', fields: [[':status', '2000']], problem: /:status "2000" is not valid/ },
  ];
  let next = 0;
  const endpoint = await rawServer((socket, reader) => {
    reader.onFrame = (f) => {
      if (f.type !== T.HEADERS) return;
      const c = responses[next++ % responses.length]!;
      socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, f.streamId, literalBlock(c.fields)));
    };
  });
  const kit = await startH2Proxy(t, [endpoint]);
  const session = kit.session();
  for (const c of responses) {
    const req = session.request({ ':path': '/x' });
    req.end();
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('error', () => undefined);
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    await once(req, 'close');
    t.equal(headers[':status'], 502, `${c.name}: 502`);
    t.match(body, c.problem, `${c.name}: the body names the problem`);
    t.notOk(headers['x-evil'], `${c.name}: nothing of it was forwarded`);
  }
});

t.test('frame misuse on a stream resets that stream with the code RFC 9113 names; the connection goes on', async (t) => {
  const backend = await countingBackend();
  const kit = await startH2Proxy(t, [backend]);
  const { reader } = await kit.connect();
  const hold = (id: number) => frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, literalBlock(GET.map(([n, v]): [string, string] => [n, n === ':path' ? '/hold' : v])));
  const cases: Array<{ name: string; bytes: (id: number) => Buffer; code: number }> = [
    { name: 'WINDOW_UPDATE of 0 (6.9)', bytes: (id) => frame(T.WINDOW_UPDATE, 0, id, u32(0)), code: CODE.PROTOCOL_ERROR },
    { name: 'WINDOW_UPDATE past 2^31-1 (6.9.1)', bytes: (id) => frame(T.WINDOW_UPDATE, 0, id, u32(0x7fffffff)), code: CODE.FLOW_CONTROL_ERROR },
    { name: 'PRIORITY of 3 bytes (6.3)', bytes: (id) => frame(T.PRIORITY, 0, id, Buffer.alloc(3)), code: CODE.FRAME_SIZE_ERROR },
    { name: 'PRIORITY on itself (5.3.1)', bytes: (id) => frame(T.PRIORITY, 0, id, Buffer.concat([u32(id), Buffer.from([16])])), code: CODE.PROTOCOL_ERROR },
  ];
  let id = 1;
  for (const c of cases) {
    reader.socket.write(hold(id));
    // The stream is open on the endpoint before the misuse arrives.
    await t.resolves(waitUntil(() => backend.paths.length === (id + 1) / 2, 5000, `request ${id} at the endpoint`), `${c.name}: the request reached the endpoint`);
    reader.socket.write(c.bytes(id));
    const rst = await rstOn(reader, id);
    t.equal(rst.payload.readUInt32BE(0), c.code, `${c.name}: RST_STREAM with code ${c.code}`);
    id += 2;
  }
  reader.socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, literalBlock(GET)));
  t.equal((await responseFields(reader, id))[1], '200', 'the connection still serves requests');
  t.notOk(reader.frames.some((f) => f.type === T.GOAWAY), 'no GOAWAY');
});

t.test('DATA, RST_STREAM or WINDOW_UPDATE on a stream never opened (idle) ends the connection with PROTOCOL_ERROR', async (t) => {
  const backend = await countingBackend();
  const kit = await startH2Proxy(t, [backend]);
  for (const [name, bytes] of [
    ['DATA', frame(T.DATA, 0, 9, Buffer.from('x'))],
    ['RST_STREAM', frame(T.RST_STREAM, 0, 9, u32(8))],
    ['WINDOW_UPDATE', frame(T.WINDOW_UPDATE, 0, 9, u32(100))],
  ] as const) {
    const { socket, reader } = await kit.connect();
    socket.write(bytes);
    const g = await goaway(reader);
    t.equal(g.code, CODE.PROTOCOL_ERROR, `${name}: GOAWAY PROTOCOL_ERROR`);
    t.match(g.message, /stream 9, which was never opened/, `${name}: the message names the stream`);
    await reader.waitClosed();
  }
});

t.test('a stream reset in the same read as its HEADERS never reaches an endpoint', async (t) => {
  // A raw endpoint sees every HEADERS frame that arrives (node:http2 hides streams reset at once).
  let headersSeen = 0;
  const endpoint = await rawServer((socket, reader) => {
    reader.onFrame = (f) => {
      if (f.type !== T.HEADERS) return;
      headersSeen++;
      socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, f.streamId, literalBlock([[':status', '200']])));
    };
  });
  const kit = await startH2Proxy(t, [endpoint]);
  const { socket, reader } = await kit.connect();
  // A first request, so the route and the upstream connection exist: later ones start at once.
  socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, literalBlock(GET)));
  t.equal((await responseFields(reader, 1))[1], '200', 'a first request is answered');
  const pairs: Buffer[] = [];
  for (let id = 3; id <= 101; id += 2) pairs.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, literalBlock(GET)), frame(T.RST_STREAM, 0, id, u32(8)));
  pairs.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 103, literalBlock(GET)));
  socket.write(Buffer.concat(pairs));
  t.equal((await responseFields(reader, 103))[1], '200', 'the request after them is answered');
  t.equal(headersSeen, 2, 'none of the 50 reset requests reached the endpoint');
});

t.test('streams the app cancels after they reached the endpoint are no endpoint failure', async (t) => {
  const backend = await countingBackend();
  const kit = await startH2Proxy(t, [backend]);
  const { socket } = await kit.connect();
  const held = literalBlock(GET.map(([n, v]): [string, string] => [n, n === ':path' ? '/hold' : v]));
  for (let id = 1; id < 1 + 2 * 20; id += 2) {
    socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, held));
    await t.resolves(waitUntil(() => backend.paths.length === (id + 1) / 2, 5000, `request ${id} at the endpoint`));
    socket.write(frame(T.RST_STREAM, 0, id, u32(8)));
  }
  await t.resolves(waitUntil(() => kit.inFlight() === 0, 5000, 'no request in flight'), 'every cancelled stream was settled');
  for (const balancer of kit.proxy.registry.all()) {
    for (const e of balancer.endpoints()) {
      t.equal(e.ejections, 0, `${e.key} was not ejected`);
      t.equal(e.consecutiveFailures, 0, `${e.key} counted no failure`);
    }
  }
});

t.test('a body of thousands of small frames waiting for window arrives byte for byte (small frames are gathered in blocks)', async (t) => {
  let received = Buffer.alloc(0);
  let ended = false;
  let endpointSocket: import('node:net').Socket | undefined;
  // Stream windows start closed: everything the app sends waits in the proxy until granted.
  const endpoint = await rawServer(
    (socket, reader) => {
      endpointSocket = socket;
      reader.onFrame = (f) => {
        if (f.type === T.HEADERS) socket.write(frame(T.WINDOW_UPDATE, 0, f.streamId, u32(7001)));
        if (f.type !== T.DATA) return;
        received = Buffer.concat([received, f.payload]);
        if ((f.flags & F.END_STREAM) === 0) return;
        ended = true;
        socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, f.streamId, literalBlock([[':status', '200']])));
      };
    },
    [[4, 0]],
  );
  const kit = await startH2Proxy(t, [endpoint]);
  const { socket, reader } = await kit.connect();
  const pieces = Array.from({ length: 3000 }, (_, i) => Buffer.from(`<${i}:${'x'.repeat(16 + (i % 23))}>`));
  const sent = Buffer.concat(pieces);
  const post = literalBlock(GET.map(([n, v]): [string, string] => [n, n === ':method' ? 'POST' : v]));
  socket.write(Buffer.concat([frame(T.HEADERS, F.END_HEADERS, 1, post), ...pieces.slice(0, 1500).map((p) => frame(T.DATA, 0, 1, p))]));
  await t.resolves(waitUntil(() => received.length === 7001, 5000, '7001 bytes at the endpoint'), 'the first 7001 bytes went out as the window allowed');
  socket.write(Buffer.concat(pieces.slice(1500).map((p, i) => frame(T.DATA, i === 1499 ? F.END_STREAM : 0, 1, p))));
  // The PING's answer comes after the proxy read (and queued) the rest of the body: then the window opens.
  await reader.roundTrip();
  endpointSocket!.write(Buffer.concat([frame(T.WINDOW_UPDATE, 0, 1, u32(1 << 20)), frame(T.WINDOW_UPDATE, 0, 0, u32(1 << 20))]));
  t.equal((await responseFields(reader, 1))[1], '200', 'the endpoint answered once the body ended');
  t.ok(ended, 'the body ended');
  t.equal(received.length, sent.length, `all ${sent.length} bytes arrived`);
  t.ok(received.equals(sent), 'byte for byte, in order');
});

/** One gRPC message as a DATA frame payload: the 5-byte prefix (uncompressed, length) and `body`. */
function grpcMessage(body: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

t.test('a gRPC stream of 60,000 small messages, one tiny DATA frame each, sent at once, is relayed whole', async (t) => {
  // Far past the empty-frame budget (10,000 + 5,000/s), which small messages must not be charged by.
  const MESSAGES = 60_000;
  let bytes = 0;
  const endpoint = await startH2Endpoint((stream) => {
    stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end();
    });
  });
  const kit = await startH2Proxy(t, [endpoint]);
  const { socket, reader } = await kit.handshake();
  const fields: Array<[string, string]> = [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', '/telemetry.Ingest/Stream'],
    [':authority', 'frames.test'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
  ];
  const frames = [frame(T.HEADERS, F.END_HEADERS, 1, literalBlock(fields))];
  for (let i = 0; i < MESSAGES; i++) frames.push(frame(T.DATA, i === MESSAGES - 1 ? F.END_STREAM : 0, 1, grpcMessage(Buffer.from([i & 0x7f, 0x08]))));
  socket.write(Buffer.concat(frames));
  const trailers = await reader.waitFor((f) => f.streamId === 1 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0, 20_000, 'the response trailers');
  t.ok(trailers, 'the call completed');
  t.notOk(reader.frames.some((f) => f.type === T.GOAWAY), 'no GOAWAY: the app was not taken for a flooder');
  t.equal(bytes, MESSAGES * 7, `the endpoint got all ${MESSAGES} messages (${MESSAGES * 7} bytes)`);
});

t.test('a flood of 1-byte DATA frames past the tiny-frame budget, and of empty ones past theirs, ends the connection', async (t) => {
  const endpoint = await startH2Endpoint(() => undefined);
  const kit = await startH2Proxy(t, [endpoint]);
  const post = literalBlock(GET.map(([n, v]): [string, string] => [n, n === ':method' ? 'POST' : v]));
  for (const [what, payload, count] of [
    ['1-byte', Buffer.from('a'), 150_000],
    ['empty', Buffer.alloc(0), 15_000],
  ] as const) {
    const { socket, reader } = await kit.handshake();
    const frames = [frame(T.HEADERS, F.END_HEADERS, 1, post)];
    for (let i = 0; i < count; i++) frames.push(frame(T.DATA, 0, 1, payload));
    socket.write(Buffer.concat(frames));
    const { code, message } = await goaway(reader);
    t.equal(code, 11, `${what}: GOAWAY ENHANCE_YOUR_CALM`);
    t.match(message, what === 'empty' ? /more than 10000 empty DATA frames/ : /more than 100000 DATA frames of under 16 bytes/, `${what}: the GOAWAY says which budget`);
  }
});

t.test('an app connection with no stream for --h2-idle-timeout-ms gets GOAWAY NO_ERROR and is closed; one with a stream stays', async (t) => {
  const backend = await countingBackend();
  const kit = await startH2Proxy(t, [backend], { 'h2-idle-timeout-ms': '300' });
  const busy = await kit.connect();
  busy.socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, literalBlock(GET.map(([n, v]): [string, string] => [n, n === ':path' ? '/hold' : v]))));
  const idle = await kit.connect();
  const started = Date.now();
  const g = await goaway(idle.reader);
  t.equal(g.code, CODE.NO_ERROR, 'GOAWAY NO_ERROR');
  await idle.reader.waitClosed();
  t.ok(Date.now() - started >= 250, `closed after the timeout, not before (${Date.now() - started} ms)`);
  t.notOk(busy.reader.closed, 'the connection with an open stream is still open');
  t.notOk(busy.reader.frames.some((f) => f.type === T.GOAWAY), 'and got no GOAWAY');
});

t.test('--h2-idle-timeout-ms: one hour unless told, from MESHLET_H2_IDLE_TIMEOUT_MS too, checked like every flag', async (t) => {
  const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseProxyConfig(parseCommand(PROXY_COMMAND, ['--listen', '127.0.0.1:0', '--upstream', 'a:1', ...argv], env).values);
  t.equal(parse([]).h2IdleTimeoutMs, 3_600_000);
  t.equal(parse([], { MESHLET_H2_IDLE_TIMEOUT_MS: '90000' }).h2IdleTimeoutMs, 90_000);
  t.equal(parse(['--h2-idle-timeout-ms', '250']).h2IdleTimeoutMs, 250);
  t.throws(() => parse(['--h2-idle-timeout-ms', '5']), /--h2-idle-timeout-ms: "5" is not valid; allowed: a whole number from 100 to 86400000/);
});
