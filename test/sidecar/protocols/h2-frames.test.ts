import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import t from 'tap';
import { HpackDecoder } from '../../../sidecar/wire/h2/hpack.js';
import { H2_CONNECTION_WINDOW_BYTES, H2_STREAM_WINDOW_BYTES } from '../../../sidecar/upstream/h2-pool.js';
import { F, T, frame, literalBlock, rawServer, settingsFrame, u32, type FrameReader, type RawFrame } from '../../helpers/h2-raw.js';
import { startH2Endpoint, startH2Proxy } from '../../helpers/h2-proxy-kit.js';
import { waitUntil, withTimeout } from '../../helpers/wait.js';
import type { RunningProxy } from '../../../sidecar/main.js';

/**
 * The HTTP/2 relay at the frame level: hand-written frames that node:http2 would never send,
 * from the app side (raw client) and from the endpoint side (raw server), plus real node:http2
 * peers pushed to the protocol's edges (huge header blocks, tiny windows, many streams).
 */

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const metricsOf = (proxy: RunningProxy): string =>
  proxy.metrics.render({ upstreamConnections: () => [], endpointCounts: () => [] });

/** Echoes the request body back, naming itself in `x-backend`. */
function echoHandler(name: string) {
  return (stream: http2.ServerHttp2Stream): void => {
    stream.respond({ ':status': 200, 'x-backend': name });
    stream.pipe(stream);
  };
}

interface Reply {
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  error: Error | undefined;
  aborted: boolean;
  rstCode: number | undefined;
}

/** One request on `session`; resolves when the stream closes, whatever happened. */
function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer | string): Promise<Reply> {
  return new Promise((resolve) => {
    const req = session.request(headers, { endStream: body === undefined });
    const reply: Reply = { headers: {}, body: Buffer.alloc(0), error: undefined, aborted: false, rstCode: undefined };
    const chunks: Buffer[] = [];
    req.on('response', (h) => (reply.headers = h));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('error', (err) => (reply.error = err));
    req.on('aborted', () => (reply.aborted = true));
    req.on('close', () => {
      reply.body = Buffer.concat(chunks);
      reply.rstCode = req.rstCode;
      resolve(reply);
    });
    if (body !== undefined) req.end(body);
  });
}

/** A raw endpoint that answers every request with GOAWAY(last-stream-id 0, `message`); counts them. */
async function goawayEndpoint(message: string): Promise<Awaited<ReturnType<typeof rawServer>> & { goaways(): number }> {
  let goaways = 0;
  const server = await rawServer((socket, reader) => {
    reader.onFrame = (f) => {
      if (f.type !== T.HEADERS) return;
      goaways++;
      socket.write(frame(T.GOAWAY, 0, 0, Buffer.concat([u32(0, 0), Buffer.from(message)])));
    };
  });
  return { ...server, goaways: () => goaways };
}

const GET = (path: string): http2.OutgoingHttpHeaders => ({ ':method': 'GET', ':path': path });
const POST = (path: string): http2.OutgoingHttpHeaders => ({ ':method': 'POST', ':path': path });
const REQUEST_FIELDS: Array<[string, string]> = [
  [':method', 'GET'],
  [':scheme', 'http'],
  [':path', '/raw'],
  [':authority', 'raw.test'],
];

/** DATA payloads of `streamId` up to END_STREAM, and the response header block decoded. */
async function readResponse(reader: FrameReader, streamId: number): Promise<{ fields: string[]; body: Buffer }> {
  const onStream = (f: RawFrame) => f.streamId === streamId;
  await reader.waitFor((f) => onStream(f) && (f.flags & F.END_STREAM) !== 0 && (f.type === T.DATA || f.type === T.HEADERS), 10_000, `end of stream ${streamId}`);
  const frames = reader.frames.filter(onStream);
  const blockParts: Buffer[] = [];
  for (const f of frames) {
    if (f.type === T.HEADERS || f.type === T.CONTINUATION) {
      blockParts.push(f.payload);
      if (f.flags & F.END_HEADERS) break;
    }
  }
  const fields: string[] = [];
  new HpackDecoder().decode(Buffer.concat(blockParts), fields, 1 << 20);
  return { fields, body: Buffer.concat(frames.filter((f) => f.type === T.DATA).map((f) => f.payload)) };
}

function field(fields: string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

t.test('malformed frames: GOAWAY naming the problem, that connection closes, others keep working, a warn is logged', async (t) => {
  const backend = await startH2Endpoint(echoHandler('steady'));
  const kit = await startH2Proxy(t, [backend]);
  const steady = kit.session();
  const before = await request(steady, POST('/before'), 'before');
  t.equal(before.body.toString(), 'before', 'an app connection opened before works');

  const cases: Array<{ name: string; bytes: Buffer; code: number; codeName: string; message: RegExp }> = [
    {
      name: 'HPACK garbage (indexed field 0)',
      bytes: frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, Buffer.from([0x80, 0xff, 0xff])),
      code: 9,
      codeName: 'COMPRESSION_ERROR',
      message: /stream 1: indexed header field with index 0/,
    },
    {
      name: 'DATA on stream 0',
      bytes: frame(T.DATA, 0, 0, Buffer.from('stray')),
      code: 1,
      codeName: 'PROTOCOL_ERROR',
      message: /DATA on stream 0/,
    },
    {
      name: 'CONTINUATION interrupted by a PING',
      bytes: Buffer.concat([frame(T.HEADERS, F.END_STREAM, 1, literalBlock(REQUEST_FIELDS)), frame(T.PING, 0, 0, Buffer.alloc(8))]),
      code: 1,
      codeName: 'PROTOCOL_ERROR',
      message: /header block on stream 1 was interrupted by another frame/,
    },
    {
      name: 'an even (server-initiated) stream id from the app',
      bytes: frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 2, literalBlock(REQUEST_FIELDS)),
      code: 1,
      codeName: 'PROTOCOL_ERROR',
      message: /stream 2; client streams have odd ids/,
    },
    {
      name: 'WINDOW_UPDATE overflowing the connection window',
      bytes: frame(T.WINDOW_UPDATE, 0, 0, u32(0x7fffffff)),
      code: 3,
      codeName: 'FLOW_CONTROL_ERROR',
      message: /connection window above 2\^31-1/,
    },
    {
      name: 'SETTINGS of 5 bytes',
      bytes: frame(T.SETTINGS, 0, 0, Buffer.alloc(5)),
      code: 6,
      codeName: 'FRAME_SIZE_ERROR',
      message: /SETTINGS payload not a multiple of 6 bytes/,
    },
    {
      name: 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1',
      bytes: settingsFrame([[4, 0x80000000]]),
      code: 3,
      codeName: 'FLOW_CONTROL_ERROR',
      message: /SETTINGS_INITIAL_WINDOW_SIZE 2147483648 above 2\^31-1/,
    },
    {
      name: 'SETTINGS_MAX_FRAME_SIZE below 16384',
      bytes: settingsFrame([[5, 1000]]),
      code: 1,
      codeName: 'PROTOCOL_ERROR',
      message: /SETTINGS_MAX_FRAME_SIZE 1000 outside 16384\.\.16777215/,
    },
    {
      name: 'a frame above 16 KiB',
      bytes: frame(T.DATA, 0, 1, Buffer.alloc(20_000)),
      code: 6,
      codeName: 'FRAME_SIZE_ERROR',
      message: /a 20000-byte frame; frames may carry at most 16384 bytes/,
    },
    {
      name: 'HEADERS whose padding is longer than the frame',
      bytes: frame(T.HEADERS, F.PADDED | F.END_HEADERS, 1, Buffer.from([200, 0x82, 0x86])),
      code: 1,
      codeName: 'PROTOCOL_ERROR',
      message: /HEADERS on stream 1: padding and priority longer than the frame/,
    },
    {
      name: 'DATA whose padding is longer than the frame',
      bytes: frame(T.DATA, F.PADDED, 1, Buffer.from([9, 1, 2])),
      code: 1,
      codeName: 'PROTOCOL_ERROR',
      message: /DATA padding longer than the frame/,
    },
    {
      name: 'RST_STREAM on stream 0',
      bytes: frame(T.RST_STREAM, 0, 0, u32(8)),
      code: 1,
      codeName: 'PROTOCOL_ERROR',
      message: /RST_STREAM must carry 4 bytes on a stream other than 0/,
    },
    {
      name: 'WINDOW_UPDATE of 0 on the connection',
      bytes: frame(T.WINDOW_UPDATE, 0, 0, u32(0)),
      code: 1,
      codeName: 'PROTOCOL_ERROR',
      message: /WINDOW_UPDATE of 0 on the connection/,
    },
    {
      name: 'PUSH_PROMISE from the app',
      bytes: frame(5, F.END_HEADERS, 1, Buffer.concat([u32(2), literalBlock(REQUEST_FIELDS)])),
      code: 1,
      codeName: 'PROTOCOL_ERROR',
      message: /PUSH_PROMISE received, but push is disabled/,
    },
  ];

  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const { socket, reader } = await kit.handshake();
      socket.write(c.bytes);
      const goaway = await reader.waitFor((f) => f.type === T.GOAWAY, 5000, 'GOAWAY');
      t.equal(goaway.payload.readUInt32BE(4), c.code, `GOAWAY carries ${c.codeName}`);
      t.equal(goaway.payload.readUInt32BE(0) & 0x7fffffff, 0, 'last-stream-id 0: nothing was processed');
      const debug = goaway.payload.subarray(8).toString('utf8');
      t.match(debug, c.message, `the debug data names the problem: "${debug}"`);
      await reader.waitClosed(5000);
      t.pass('the connection closed');
      const warn = kit.logs.lines.find((l) => /broke the HTTP\/2 protocol/.test(String(l.msg)) && c.message.test(String(l.error)));
      t.ok(warn, 'a warn line names the problem');

      const still = await request(steady, POST('/steady'), c.name);
      t.equal(still.body.toString(), c.name, 'the connection opened before still works');
      const reply = await request(kit.session(), POST('/fresh'), 'fresh');
      t.equal(reply.headers[':status'], 200);
      t.equal(reply.body.toString(), 'fresh', 'a new connection works');
    });
  }
});

t.test('PING from the app is answered with PING ACK carrying the same 8 bytes', async (t) => {
  const { socket, reader } = await (await startH2Proxy(t, [])).connect();
  const opaque = Buffer.from('8bytes!?');
  socket.write(frame(T.PING, 0, 0, opaque));
  const ack = await reader.waitFor((f) => f.type === T.PING, 5000, 'PING');
  t.equal(ack.flags & F.ACK, F.ACK, 'ACK flag set');
  t.equal(ack.streamId, 0);
  t.same(ack.payload, opaque, 'same opaque bytes');
  t.notOk(reader.frames.some((f) => f.type === T.GOAWAY), 'no GOAWAY');
});

t.test('padded HEADERS (with priority) and padded DATA are relayed with the padding stripped', async (t) => {
  let seen: { headers: http2.IncomingHttpHeaders; body: string } | undefined;
  let sentReply = '';
  const backend = await startH2Endpoint((stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => {
      seen = { headers, body: Buffer.concat(chunks).toString('latin1') };
      stream.respond({ ':status': 200 });
      stream.end(JSON.stringify(seen));
      sentReply = JSON.stringify(seen);
    });
  });
  const kit = await startH2Proxy(t, [backend]);
  const { socket, reader } = await kit.connect();
  const block = literalBlock([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', '/padded'],
    [':authority', 'padded.test'],
    ['x-custom', 'value-between-paddings'],
  ]);
  const headerPadding = 40;
  const priority = Buffer.from([0, 0, 0, 0, 15]);
  socket.write(frame(T.HEADERS, F.PADDED | F.PRIORITY | F.END_HEADERS, 1, Buffer.concat([Buffer.from([headerPadding]), priority, block, Buffer.alloc(headerPadding, 0xee)])));
  const parts = ['alpha-', 'b'.repeat(3000), '-gamma'];
  const paddings = [255, 7, 0];
  parts.forEach((part, i) => {
    const payload = Buffer.concat([Buffer.from([paddings[i]!]), Buffer.from(part), Buffer.alloc(paddings[i]!, 0xee)]);
    socket.write(frame(T.DATA, F.PADDED | (i === parts.length - 1 ? F.END_STREAM : 0), 1, payload));
  });
  const { fields, body } = await readResponse(reader, 1);
  t.equal(field(fields, ':status'), '200');
  t.ok(seen, 'the endpoint got the request');
  t.equal(seen!.body, parts.join(''), 'the endpoint saw the exact body, no padding');
  t.equal(seen!.headers['x-custom'], 'value-between-paddings', 'the endpoint saw the header');
  t.equal(seen!.headers[':path'], '/padded');
  t.equal(body.toString(), sentReply, 'the app got the reply');
  t.notOk(reader.frames.some((f) => f.type === T.GOAWAY || f.type === T.RST_STREAM), 'no GOAWAY or reset');
});

t.test('a 40 KiB header both ways: split into HEADERS + CONTINUATION, intact at both ends', async (t) => {
  const bigRequest = randomBytes(30 * 1024).toString('base64'); // 40 KiB of text
  const bigReply = randomBytes(30 * 1024).toString('base64');
  const settings = { maxHeaderListSize: 256 * 1024 };
  const backend = await startH2Endpoint(
    (stream, headers) => {
      stream.respond({ ':status': 200, 'x-big-reply': bigReply, 'x-got-hash': sha(String(headers['x-big'] ?? '')) });
      stream.end('ok');
    },
    { settings, maxSendHeaderBlockLength: 256 * 1024 },
  );
  const kit = await startH2Proxy(t, [backend]);
  const session = kit.session({ settings, maxSendHeaderBlockLength: 256 * 1024 });
  const raw = await kit.connect();

  const reply = await request(session, { ...GET('/big'), 'x-big': bigRequest });
  t.equal(reply.error, undefined, 'no error');
  t.equal(reply.headers[':status'], 200);
  t.equal(reply.headers['x-got-hash'], sha(bigRequest), 'the 40 KiB request header reached the endpoint intact');
  t.equal(reply.headers['x-big-reply'], bigReply, 'the 40 KiB response header reached the app intact');

  // The same from a raw client, to see the frames the proxy writes.
  const block = literalBlock([...REQUEST_FIELDS, ['x-big', bigRequest]]);
  const pieces = [block.subarray(0, 16_384), block.subarray(16_384, 32_768), block.subarray(32_768)];
  raw.socket.write(frame(T.HEADERS, F.END_STREAM, 1, pieces[0]));
  raw.socket.write(frame(T.CONTINUATION, 0, 1, pieces[1]));
  raw.socket.write(frame(T.CONTINUATION, F.END_HEADERS, 1, pieces[2]));
  const { fields } = await readResponse(raw.reader, 1);
  t.equal(field(fields, 'x-got-hash'), sha(bigRequest), 'a request header block in three frames reached the endpoint intact');
  t.equal(field(fields, 'x-big-reply'), bigReply);
  const headerFrames = raw.reader.frames.filter((f) => f.streamId === 1 && (f.type === T.HEADERS || f.type === T.CONTINUATION));
  t.equal(headerFrames[0]?.type, T.HEADERS);
  t.ok(headerFrames.length >= 2, `the response header block came in ${headerFrames.length} frames`);
  t.ok(
    headerFrames.slice(1).every((f) => f.type === T.CONTINUATION),
    'HEADERS then only CONTINUATION frames',
  );
  t.ok(headerFrames.every((f) => f.payload.length <= 16_384), 'no frame above 16 KiB');
  t.same(
    headerFrames.map((f) => (f.flags & F.END_HEADERS) !== 0),
    headerFrames.map((_, i) => i === headerFrames.length - 1),
    'END_HEADERS on the last frame only',
  );
});

t.test('tiny flow-control windows (1 KiB) on app and endpoint: 1 MiB down and 1 MiB up arrive intact', async (t) => {
  const download = randomBytes(1 << 20);
  const backend = await startH2Endpoint(
    (stream, headers) => {
      if (headers[':path'] === '/download') {
        stream.respond({ ':status': 200 });
        stream.end(download);
      } else {
        echoHandler('tiny')(stream);
      }
    },
    { settings: { initialWindowSize: 1024 } },
  );
  const session = (await startH2Proxy(t, [backend])).session({ settings: { initialWindowSize: 1024 } });
  const down = await request(session, GET('/download'));
  t.equal(down.error, undefined, 'download: no error');
  t.equal(down.body.length, download.length, 'download: 1 MiB');
  t.equal(sha(down.body), sha(download), 'download: same bytes');
  const upload = randomBytes(1 << 20);
  const up = await request(session, POST('/echo'), upload);
  t.equal(up.error, undefined, 'upload: no error');
  t.equal(up.body.length, upload.length, 'upload echoed: 1 MiB');
  t.equal(sha(up.body), sha(upload), 'upload echoed: same bytes');
});

t.test('an endpoint GOAWAY below a stream already sent: retried on another endpoint, the app sees success', async (t) => {
  const leaving = await goawayEndpoint('test endpoint leaving');
  const staying = await startH2Endpoint(echoHandler('staying'));
  const kit = await startH2Proxy(t, [leaving, staying], { 'lb-policy': 'round-robin' });
  const session = kit.session();
  for (let i = 0; i < 4; i++) {
    const reply = await request(session, POST('/goaway'), `payload-${i}`);
    t.equal(reply.error, undefined, `request ${i}: no error`);
    t.equal(reply.headers[':status'], 200, `request ${i}: 200`);
    t.equal(reply.headers['x-backend'], 'staying', `request ${i}: served by the endpoint that stayed`);
    t.equal(reply.body.toString(), `payload-${i}`, `request ${i}: body replayed intact`);
  }
  t.ok(leaving.goaways() >= 1, `the leaving endpoint got ${leaving.goaways()} request(s) and answered GOAWAY(last=0)`);
  t.match(metricsOf(kit.proxy), new RegExp(`meshlet_retries_total\\{target="static",reason="goaway"\\} ${leaving.goaways()}\\b`), 'each GOAWAY counted as a retry');
});

t.test('an endpoint ending a full response with RST_STREAM(NO_ERROR): the app gets the whole body, no error', async (t) => {
  const body = randomBytes(200 * 1024);
  const endpoint = await rawServer((socket, reader) => {
    reader.onFrame = (f) => {
      if (f.type !== T.HEADERS) return;
      const out = [frame(T.HEADERS, F.END_HEADERS, f.streamId, literalBlock([[':status', '200'], ['content-type', 'application/octet-stream']]))];
      for (let offset = 0; offset < body.length; offset += 16_384) out.push(frame(T.DATA, 0, f.streamId, body.subarray(offset, offset + 16_384)));
      out.push(frame(T.RST_STREAM, 0, f.streamId, u32(0)));
      socket.write(Buffer.concat(out));
    };
  });
  const kit = await startH2Proxy(t, [endpoint]);
  const session = kit.session();
  for (let i = 0; i < 2; i++) {
    const reply = await request(session, GET('/reset-ended'));
    t.equal(reply.error, undefined, `request ${i}: no error`);
    t.notOk(reply.aborted, `request ${i}: not aborted`);
    t.equal(reply.headers[':status'], 200);
    t.equal(reply.body.length, body.length, `request ${i}: all ${body.length} bytes`);
    t.equal(sha(reply.body), sha(body), `request ${i}: same bytes`);
    t.equal(reply.rstCode ?? 0, 0, `request ${i}: closed with NO_ERROR`);
  }
});

t.test('500 concurrent streams on one app connection, bodies 0 B..200 KiB, echoed by 3 endpoints', async (t) => {
  const names = ['e1', 'e2', 'e3'];
  const memory = { maxSessionMemory: 256 };
  const backends = await Promise.all(names.map((n) => startH2Endpoint(echoHandler(n), memory)));
  const session = (await startH2Proxy(t, backends, { 'lb-policy': 'round-robin' })).session(memory);
  const source = randomBytes(256 * 1024);
  const STREAMS = 500;
  const MAX = 200 * 1024;
  const bodies = Array.from({ length: STREAMS }, (_, i) => {
    const size = i % 10 === 0 ? 0 : i % 10 === 1 ? MAX : (i * 7919) % (MAX + 1);
    const offset = (i * 97) % (source.length - MAX);
    return source.subarray(offset, offset + size);
  });
  const replies = await Promise.all(bodies.map((b, i) => request(session, POST(`/many/${i}`), b)));
  const failed = replies.map((r, i) => ({ r, i })).filter(({ r, i }) => r.error !== undefined || Number(r.headers[':status']) !== 200 || sha(r.body) !== sha(bodies[i]!));
  t.equal(failed.length, 0, `every stream echoed intact (failed: ${failed.slice(0, 5).map(({ r, i }) => `#${i} ${bodies[i]!.length}B -> ${r.body.length}B ${r.error?.message ?? r.headers[':status']}`).join('; ')})`);
  const served = new Set(replies.map((r) => r.headers['x-backend']));
  t.same([...served].sort(), names, 'all three endpoints served');
});

t.test('GOAWAY(last=first stream) with three streams in flight: the first is answered there, the two after it are retried', async (t) => {
  let goaways = 0;
  const leaving = await rawServer((socket, reader) => {
    const ids: number[] = [];
    reader.onFrame = (f) => {
      if (f.type !== T.HEADERS) return;
      ids.push(f.streamId);
      if (ids.length !== 3) return;
      goaways++;
      const first = ids[0]!;
      socket.write(
        Buffer.concat([
          frame(T.GOAWAY, 0, 0, Buffer.concat([u32(first, 0), Buffer.from('draining')])),
          frame(T.HEADERS, F.END_HEADERS, first, literalBlock([[':status', '200'], ['x-backend', 'leaving']])),
          frame(T.DATA, F.END_STREAM, first, Buffer.from('from-leaving')),
        ]),
      );
    };
  });
  const staying = await startH2Endpoint(echoHandler('staying'));
  const kit = await startH2Proxy(t, [leaving, staying], { 'lb-policy': 'round-robin' });
  const session = kit.session();
  const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => request(session, POST('/drain'), `body-${i}`)));
  t.equal(goaways, 1, 'the leaving endpoint got three concurrent streams and sent GOAWAY once');
  t.same(replies.map((r) => r.error), Array(6).fill(undefined), 'no request failed');
  const byLeaving = replies.filter((r) => r.headers['x-backend'] === 'leaving');
  t.equal(byLeaving.length, 1, 'the stream at or below last-stream-id was answered by the leaving endpoint');
  t.equal(byLeaving[0]?.body.toString(), 'from-leaving');
  replies.forEach((r, i) => {
    if (r.headers['x-backend'] === 'staying') t.equal(r.body.toString(), `body-${i}`, `request ${i} echoed by the other endpoint`);
  });
  t.match(metricsOf(kit.proxy), /meshlet_retries_total\{target="static",reason="goaway"\} 2\b/, 'the two streams above last-stream-id were retried');
});

t.test('an app with SETTINGS_INITIAL_WINDOW_SIZE 0 gets no DATA until it opens its window, then the whole body', async (t) => {
  const download = randomBytes(100 * 1024);
  const backend = await startH2Endpoint((stream) => {
    stream.respond({ ':status': 200 });
    stream.end(download);
  });
  const kit = await startH2Proxy(t, [backend]);
  const { socket, reader } = await kit.connect();
  socket.write(settingsFrame([[4, 0]]));
  socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, literalBlock(REQUEST_FIELDS)));
  await reader.waitFor((f) => f.type === T.HEADERS && f.streamId === 1, 5000, 'response HEADERS');
  // Absence over time is the check: the proxy exposes no event for "body held", so 300 ms for DATA that must not come.
  await new Promise((r) => setTimeout(r, 300));
  const early = reader.frames.filter((f) => f.type === T.DATA && f.streamId === 1).reduce((n, f) => n + f.payload.length, 0);
  t.equal(early, 0, 'no body byte while the window is 0');
  socket.write(Buffer.concat([settingsFrame([[4, 1 << 20]]), frame(T.WINDOW_UPDATE, 0, 0, u32(1 << 20))]));
  const { fields, body } = await readResponse(reader, 1);
  t.equal(field(fields, ':status'), '200');
  t.equal(sha(body), sha(download), 'the whole body once the window opened');
  t.ok(
    reader.frames.every((f) => f.payload.length <= 16_384),
    'no frame above the 16 KiB the app allows',
  );
  t.notOk(reader.frames.some((f) => f.type === T.GOAWAY || f.type === T.RST_STREAM), 'no GOAWAY or reset');
});

t.test('credit only for bytes passed on: an endpoint granting no window holds the app back, then everything flows', async (t) => {
  let received = 0;
  let upstream: { socket: Socket; reader: FrameReader } | undefined;
  const endpoint = await rawServer(
    (socket, reader) => {
      upstream = { socket, reader };
      const chunks: Buffer[] = [];
      reader.onFrame = (f) => {
        if (f.type !== T.DATA) return;
        received += f.payload.length;
        chunks.push(f.payload);
        if (f.flags & F.END_STREAM) {
          socket.write(
            Buffer.concat([
              frame(T.HEADERS, F.END_HEADERS, f.streamId, literalBlock([[':status', '200']])),
              frame(T.DATA, F.END_STREAM, f.streamId, Buffer.from(sha(Buffer.concat(chunks)))),
            ]),
          );
        }
      };
    },
    [[4, 0]],
  );
  const kit = await startH2Proxy(t, [endpoint]);
  const { socket, reader, settings } = await kit.handshake();
  let streamWindow = 65_535;
  for (let p = 0; p < settings.payload.length; p += 6) if (settings.payload.readUInt16BE(p) === 4) streamWindow = settings.payload.readUInt32BE(p + 2);
  const windowUpdates = (streamId: number) => reader.frames.filter((f) => f.type === T.WINDOW_UPDATE && f.streamId === streamId).reduce((n, f) => n + (f.payload.readUInt32BE(0) & 0x7fffffff), 0);
  await reader.waitFor((f) => f.type === T.WINDOW_UPDATE && f.streamId === 0, 2000, 'initial connection WINDOW_UPDATE').catch(() => undefined);
  const connectionCreditBefore = windowUpdates(0);
  const body = randomBytes(streamWindow);
  socket.write(frame(T.HEADERS, F.END_HEADERS, 1, literalBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/hold'], [':authority', 'raw.test']])));
  for (let offset = 0; offset < body.length; offset += 16_384) socket.write(frame(T.DATA, 0, 1, body.subarray(offset, offset + 16_384)));
  await waitUntil(() => upstream !== undefined, 5000, 'the proxy to connect to the endpoint');
  await upstream!.reader.waitFor((f) => f.type === T.HEADERS, 5000, 'the request HEADERS at the endpoint');
  // PING round trips as barriers: the proxy has read every DATA frame, then written (to either
  // side) whatever it would for them.
  await reader.roundTrip();
  await upstream!.reader.roundTrip();
  await reader.roundTrip();
  t.equal(received, 0, 'the endpoint got no body byte: its window is 0');
  t.equal(windowUpdates(1), 0, 'the app got no stream credit for bytes still held');
  t.equal(windowUpdates(0), connectionCreditBefore, 'nor connection credit');
  t.ok(upstream, 'the proxy connected to the endpoint');
  upstream!.socket.write(Buffer.concat([settingsFrame([[4, 1 << 22]]), frame(T.WINDOW_UPDATE, 0, 0, u32(1 << 22))]));
  await waitUntil(() => received >= body.length, 5000, `all ${body.length} bytes at the endpoint`);
  t.equal(received, body.length, `the endpoint got all ${body.length} bytes once it opened its window`);
  await reader.waitFor(() => windowUpdates(0) > connectionCreditBefore && windowUpdates(1) > 0, 5000, 'stream and connection credit once the bytes moved');
  socket.write(frame(T.DATA, F.END_STREAM, 1));
  const reply = await readResponse(reader, 1);
  t.equal(reply.body.toString(), sha(body), 'the endpoint saw the exact body');
});

t.test('an app that ignores the connection window gets FLOW_CONTROL_ERROR; the endpoint is told CANCEL', async (t) => {
  const resets: Array<{ id: number; code: number }> = [];
  const opened: number[] = [];
  const endpoint = await rawServer(
    (_socket, reader) => {
      reader.onFrame = (f) => {
        if (f.type === T.HEADERS) opened.push(f.streamId);
        if (f.type === T.RST_STREAM) resets.push({ id: f.streamId, code: f.payload.readUInt32BE(0) });
      };
    },
    [[4, 0]],
  );
  const kit = await startH2Proxy(t, [endpoint]);
  const { socket, reader } = await kit.handshake();
  const chunk = Buffer.alloc(16_384, 7);
  // Streams of 1 MiB each (the stream window), two more than the connection window the proxy
  // grants holds, while the endpoint reads nothing.
  const streams = Math.ceil(H2_CONNECTION_WINDOW_BYTES / (1 << 20)) + 2;
  for (let s = 0; s < streams && !reader.closed; s++) {
    const id = 1 + 2 * s;
    socket.write(frame(T.HEADERS, F.END_HEADERS, id, literalBlock([[':method', 'POST'], [':scheme', 'http'], [':path', `/flood/${id}`], [':authority', 'raw.test']])));
    for (let i = 0; i < 64; i++) socket.write(frame(T.DATA, 0, id, chunk));
  }
  const goaway = await reader.waitFor((f) => f.type === T.GOAWAY, 5000, 'GOAWAY');
  t.equal(goaway.payload.readUInt32BE(4), 3, 'FLOW_CONTROL_ERROR');
  t.match(goaway.payload.subarray(8).toString(), /beyond the connection flow-control window/);
  await reader.waitClosed(5000);
  await waitUntil(() => resets.length >= opened.length, 3000, 'a reset for every stream the endpoint saw');
  t.ok(opened.length > 0, `the endpoint saw ${opened.length} stream(s)`);
  t.same(
    resets.map((r) => r.code),
    opened.map(() => 8),
    'every stream the endpoint saw was reset with CANCEL',
  );
  t.ok(kit.logs.lines.some((l) => /flow-control window/.test(String(l.error))), 'a warn line names it');
});

t.test('an endpoint allowing 2 concurrent streams: 40 concurrent requests spread over more connections, all succeed', async (t) => {
  let maxConcurrent = 0;
  let sessions = 0;
  const backend = await startH2Endpoint(
    (stream) => {
      const session = stream.session as http2.ServerHttp2Session & { active?: number };
      session.active = (session.active ?? 0) + 1;
      maxConcurrent = Math.max(maxConcurrent, session.active);
      stream.on('close', () => session.active!--);
      const chunks: Buffer[] = [];
      stream.on('data', (d: Buffer) => chunks.push(d));
      // Each answer waits 10 ms so that streams overlap: how long they stay open is the load tested.
      stream.on('end', () =>
        setTimeout(() => {
          stream.respond({ ':status': 200 });
          stream.end(Buffer.concat(chunks));
        }, 10),
      );
    },
    { settings: { maxConcurrentStreams: 2 } },
  );
  backend.server.on('session', () => sessions++);
  const kit = await startH2Proxy(t, [backend]);
  const session = kit.session();
  const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => request(session, POST('/limited'), `n${i}`)));
  t.same(
    replies.map((r) => r.body.toString()),
    replies.map((_, i) => `n${i}`),
    'every request answered with its own body',
  );
  t.ok(maxConcurrent <= 2, `never more than 2 streams on one endpoint connection (saw ${maxConcurrent})`);
  t.ok(sessions > 1, `the proxy opened ${sessions} connections to the endpoint`);
});

t.test('the app resetting a stream mid-request: the endpoint gets RST_STREAM(CANCEL) on its stream', async (t) => {
  const frames: RawFrame[] = [];
  const endpoint = await rawServer((_socket, reader) => {
    reader.onFrame = (f) => frames.push(f);
  });
  const kit = await startH2Proxy(t, [endpoint]);
  const session = kit.session();
  const req = session.request(POST('/cancel'));
  req.on('error', () => undefined);
  req.write('partial');
  await waitUntil(() => frames.some((f) => f.type === T.DATA), 5000, 'the request DATA at the endpoint');
  const headers = frames.find((f) => f.type === T.HEADERS);
  t.ok(headers, 'the endpoint got the request');
  req.close(http2.constants.NGHTTP2_CANCEL);
  await waitUntil(() => frames.some((f) => f.type === T.RST_STREAM), 3000, 'RST_STREAM at the endpoint');
  const rst = frames.find((f) => f.type === T.RST_STREAM);
  t.equal(rst?.streamId, headers?.streamId, 'the reset is on the endpoint stream');
  t.equal(rst?.payload.readUInt32BE(0), 8, 'with CANCEL');
});

t.test('header bytes outside ASCII (obs-text 0x80..0xff) pass byte-exact both ways', async (t) => {
  const bytes = Buffer.from(Array.from({ length: 256 }, (_, b) => b).filter((b) => b === 0x09 || (b >= 0x20 && b !== 0x7f)));
  const value = bytes.toString('latin1');
  let seenBlock: Buffer | undefined;
  const endpoint = await rawServer((socket, reader) => {
    reader.onFrame = (f) => {
      if (f.type !== T.HEADERS) return;
      seenBlock = f.payload;
      socket.write(
        Buffer.concat([
          frame(T.HEADERS, F.END_HEADERS, f.streamId, literalBlock([[':status', '200'], ['x-bytes-reply', value]])),
          frame(T.DATA, F.END_STREAM, f.streamId, Buffer.from('ok')),
        ]),
      );
    };
  });
  const kit = await startH2Proxy(t, [endpoint]);
  const { socket, reader } = await kit.connect();
  socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, literalBlock([...REQUEST_FIELDS, ['x-bytes', value]])));
  const { fields } = await readResponse(reader, 1);
  t.ok(seenBlock, 'the endpoint got the request');
  const seen: string[] = [];
  new HpackDecoder().decode(seenBlock!, seen, 1 << 20);
  t.same(Buffer.from(field(seen, 'x-bytes') ?? '', 'latin1'), bytes, 'the endpoint got the exact request header bytes');
  t.same(Buffer.from(field(fields, 'x-bytes-reply') ?? '', 'latin1'), bytes, 'the app got the exact response header bytes');
});

t.test('an informational 103 response is passed on before the final 200', async (t) => {
  const endpoint = await rawServer((socket, reader) => {
    reader.onFrame = (f) => {
      if (f.type !== T.HEADERS) return;
      socket.write(
        Buffer.concat([
          frame(T.HEADERS, F.END_HEADERS, f.streamId, literalBlock([[':status', '103'], ['link', '</style.css>; rel=preload']])),
          frame(T.HEADERS, F.END_HEADERS, f.streamId, literalBlock([[':status', '200'], ['x-final', 'yes']])),
          frame(T.DATA, F.END_STREAM, f.streamId, Buffer.from('final body')),
        ]),
      );
    };
  });
  const kit = await startH2Proxy(t, [endpoint]);
  const session = kit.session();
  const req = session.request(GET('/hints'));
  const informational: http2.IncomingHttpHeaders[] = [];
  req.on('headers', (h) => informational.push(h));
  const [final] = await once(req, 'response');
  let body = '';
  req.on('data', (d) => (body += d));
  await once(req, 'end');
  t.equal(informational[0]?.[':status'], 103, 'the 103 reached the app');
  t.equal(informational[0]?.link, '</style.css>; rel=preload');
  t.equal(final[':status'], 200);
  t.equal(final['x-final'], 'yes');
  t.equal(body, 'final body');
});

t.test('GOAWAY before processing a request whose body is too big to replay: a 502 naming it, not a hang', async (t) => {
  const leaving = await rawServer((socket, reader) => {
    reader.onFrame = (f) => {
      if (f.type === T.HEADERS) socket.write(frame(T.GOAWAY, 0, 0, Buffer.concat([u32(0, 0), Buffer.from('bye')])));
    };
  });
  const staying = await startH2Endpoint(echoHandler('staying'));
  const kit = await startH2Proxy(t, [leaving, staying], { 'lb-policy': 'round-robin' });
  const session = kit.session();
  const big = randomBytes(512 * 1024);
  const outcomes: string[] = [];
  for (let i = 0; i < 2; i++) {
    const reply = await request(session, POST('/big-body'), big);
    if (reply.headers['x-backend'] === 'staying') {
      t.equal(sha(reply.body), sha(big), `request ${i}: echoed intact by the endpoint that stayed`);
      outcomes.push('served');
    } else {
      t.equal(reply.headers[':status'], 502, `request ${i}: 502`);
      t.match(reply.body.toString(), /went away before processing the request \(GOAWAY NO_ERROR: bye\)/, `request ${i}: the body names the GOAWAY`);
      outcomes.push('502');
    }
  }
  t.same(outcomes.sort(), ['502', 'served'], 'one request met the leaving endpoint, one the other');
});

t.test('an app opening more streams than the 1000 it was allowed: REFUSED_STREAM for the excess, the rest served', async (t) => {
  const endpoint = await rawServer((socket, reader) => {
    reader.onFrame = (f) => {
      if (f.type !== T.DATA || (f.flags & F.END_STREAM) === 0) return;
      socket.write(Buffer.concat([frame(T.HEADERS, F.END_HEADERS, f.streamId, literalBlock([[':status', '200']])), frame(T.DATA, F.END_STREAM, f.streamId, Buffer.from('done'))]));
    };
  });
  const kit = await startH2Proxy(t, [endpoint]);
  const { socket, reader, settings } = await kit.handshake();
  let advertised = 0;
  for (let p = 0; p < settings.payload.length; p += 6) if (settings.payload.readUInt16BE(p) === 3) advertised = settings.payload.readUInt32BE(p + 2);
  t.equal(advertised, 1000, 'the proxy advertises SETTINGS_MAX_CONCURRENT_STREAMS 1000');
  const block = literalBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/open'], [':authority', 'raw.test']]);
  const OPEN = advertised + 3;
  const ids = Array.from({ length: OPEN }, (_, i) => 1 + 2 * i);
  socket.write(Buffer.concat(ids.map((id) => frame(T.HEADERS, F.END_HEADERS, id, block))));
  const excess = ids.slice(advertised);
  await reader.waitFor(() => excess.every((id) => reader.frames.some((f) => f.type === T.RST_STREAM && f.streamId === id)), 10_000, 'resets of the excess streams');
  const resets = reader.frames.filter((f) => f.type === T.RST_STREAM);
  t.same(
    resets.map((f) => [f.streamId, f.payload.readUInt32BE(0)]),
    excess.map((id) => [id, 7]),
    'exactly the streams above the limit were refused (REFUSED_STREAM)',
  );
  // End the first and the last accepted streams: both are served.
  for (const id of [ids[0]!, ids[advertised - 1]!]) {
    socket.write(frame(T.DATA, F.END_STREAM, id, Buffer.from('x')));
    const { body } = await readResponse(reader, id);
    t.equal(body.toString(), 'done', `stream ${id} served`);
  }
  t.notOk(reader.frames.some((f) => f.type === T.GOAWAY), 'no GOAWAY');
});

t.test('an endpoint answering early and resetting with NO_ERROR while the app still uploads: full response, then NO_ERROR reset', async (t) => {
  const endpoint = await rawServer((socket, reader) => {
    reader.onFrame = (f) => {
      if (f.type !== T.HEADERS) return;
      socket.write(
        Buffer.concat([
          frame(T.HEADERS, F.END_HEADERS, f.streamId, literalBlock([[':status', '413']])),
          frame(T.DATA, F.END_STREAM, f.streamId, Buffer.from('too big, stop sending')),
          frame(T.RST_STREAM, 0, f.streamId, u32(0)),
        ]),
      );
    };
  });
  const kit = await startH2Proxy(t, [endpoint]);
  const { socket, reader } = await kit.connect();
  socket.write(frame(T.HEADERS, F.END_HEADERS, 1, literalBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/upload'], [':authority', 'raw.test']])));
  socket.write(frame(T.DATA, 0, 1, Buffer.alloc(16_000, 1)));
  const { fields, body } = await readResponse(reader, 1);
  t.equal(field(fields, ':status'), '413');
  t.equal(body.toString(), 'too big, stop sending', 'the whole response');
  const rst = await reader.waitFor((f) => f.type === T.RST_STREAM && f.streamId === 1, 5000, 'RST_STREAM');
  t.equal(rst.payload.readUInt32BE(0), 0, 'NO_ERROR: the response stands, the upload may stop');
  t.ok(reader.frames.indexOf(rst) > reader.frames.findIndex((f) => f.type === T.DATA && f.streamId === 1 && (f.flags & F.END_STREAM) !== 0), 'the reset comes after the end of the response');
  socket.write(frame(T.DATA, 0, 1, Buffer.alloc(1000, 1)));
  socket.write(frame(T.PING, 0, 0, Buffer.from('stillup?')));
  await reader.waitFor((f) => f.type === T.PING && (f.flags & F.ACK) !== 0, 5000, 'PING ACK');
  t.notOk(reader.frames.some((f) => f.type === T.GOAWAY), 'late DATA on the reset stream does not end the connection');
});

t.test('a request body still streaming when its endpoint sends GOAWAY: the retry carries what came before and after', async (t) => {
  const leaving = await goawayEndpoint('restarting');
  const staying = await startH2Endpoint(echoHandler('staying'));
  const kit = await startH2Proxy(t, [leaving, staying], { 'lb-policy': 'round-robin' });
  const session = kit.session();
  const parts = [randomBytes(40 * 1024), randomBytes(20 * 1024), randomBytes(3 << 20)];
  const whole = Buffer.concat(parts);
  for (let i = 0; i < 2; i++) {
    const req = session.request(POST('/stream-body'));
    const chunks: Buffer[] = [];
    let error: Error | undefined;
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('error', (err) => (error = err));
    const headers = once(req, 'response');
    req.write(parts[0]);
    // The response starts (from the endpoint that stayed, after a retry or not) before the rest of the body is sent.
    const [h] = await withTimeout(headers, 5000, `the response to request ${i}`);
    req.write(parts[1]);
    req.end(parts[2]);
    await new Promise((r) => req.on('close', r));
    t.equal(error, undefined, `request ${i}: no error`);
    t.equal(h['x-backend'], 'staying', `request ${i}: served by the endpoint that stayed`);
    t.equal(sha(Buffer.concat(chunks)), sha(whole), `request ${i}: the whole ${whole.length}-byte body, in order`);
  }
  t.equal(leaving.goaways(), 1, 'one request met the leaving endpoint');
  t.match(metricsOf(kit.proxy), /meshlet_retries_total\{target="static",reason="goaway"\} 1\b/);
});

t.test('40 KiB trailers from the endpoint reach the app (HEADERS with END_STREAM + CONTINUATION)', async (t) => {
  const bigTrailer = randomBytes(30 * 1024).toString('base64');
  const settings = { maxHeaderListSize: 256 * 1024 };
  const backend = await startH2Endpoint(
    (stream) => {
      stream.respond({ ':status': 200 }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-big-trailer': bigTrailer }));
      stream.end('body before trailers');
    },
    { settings, maxSendHeaderBlockLength: 256 * 1024 },
  );
  const session = (await startH2Proxy(t, [backend])).session({ settings });
  const req = session.request(GET('/trailers'));
  let body = '';
  req.on('data', (d) => (body += d));
  const [trailers] = await once(req, 'trailers');
  t.equal(body, 'body before trailers');
  t.equal(trailers['x-big-trailer'], bigTrailer, 'the 40 KiB trailer arrived intact');
});

t.test('an endpoint shrinking its window below zero mid-body: nothing is sent until WINDOW_UPDATEs bring it above zero', async (t) => {
  const body = randomBytes(200 * 1024);
  let received = 0;
  let endpointSocket: Socket | undefined;
  let endpointReader: FrameReader | undefined;
  let streamId = 0;
  const chunks: Buffer[] = [];
  const endpoint = await rawServer(
    (socket, reader) => {
      endpointSocket = socket;
      endpointReader = reader;
      socket.write(frame(T.WINDOW_UPDATE, 0, 0, u32(8 << 20)));
      reader.onFrame = (f) => {
        if (f.type === T.HEADERS) streamId = f.streamId;
        if (f.type !== T.DATA) return;
        received += f.payload.length;
        chunks.push(f.payload);
        if (f.flags & F.END_STREAM) {
          socket.write(Buffer.concat([frame(T.HEADERS, F.END_HEADERS, f.streamId, literalBlock([[':status', '200']])), frame(T.DATA, F.END_STREAM, f.streamId, Buffer.from(sha(Buffer.concat(chunks))))]));
        }
      };
    },
    [[4, 65_536]],
  );
  const kit = await startH2Proxy(t, [endpoint]);
  const session = kit.session();
  const pending = request(session, POST('/shrink'), body);
  const waitReceived = async (n: number, what: string) => {
    await waitUntil(() => received >= n, 5000, `${n} bytes at the endpoint`);
    t.equal(received, n, what);
  };
  await waitReceived(65_536, 'the first 64 KiB: the whole initial window');
  // Window 0 now; SETTINGS 16 KiB moves it to -48 KiB; +48 KiB brings it back to 0.
  endpointSocket!.write(Buffer.concat([settingsFrame([[4, 16_384]]), frame(T.WINDOW_UPDATE, 0, streamId, u32(49_152))]));
  // The proxy answers a PING after the frames before it: any DATA they released is in by then.
  await endpointReader!.roundTrip();
  t.equal(received, 65_536, 'nothing sent while the window is at or below zero');
  endpointSocket!.write(frame(T.WINDOW_UPDATE, 0, streamId, u32(10_000)));
  await waitReceived(75_536, 'exactly the 10000 bytes the window allowed');
  await endpointReader!.roundTrip();
  t.equal(received, 75_536, 'and no more');
  endpointSocket!.write(frame(T.WINDOW_UPDATE, 0, streamId, u32(1 << 20)));
  const reply = await pending;
  t.equal(reply.error, undefined);
  t.equal(reply.body.toString(), sha(body), 'the endpoint got the exact body');
});

t.test('downloads an app stopped reading do not stall other requests to the same endpoint', async (t) => {
  const CHUNK = Buffer.alloc(64 * 1024, 2);
  const CHUNKS = 64; // 4 MiB offered per /big download
  const downloads: Array<{ written: number; isWaiting: boolean; hasEnded: boolean }> = [];
  const backend = await startH2Endpoint((stream, headers) => {
    stream.respond({ ':status': 200 });
    if (headers[':path'] !== '/big') return void stream.end('small');
    const download = { written: 0, isWaiting: false, hasEnded: false };
    downloads.push(download);
    let i = 0;
    const pump = () => {
      download.isWaiting = false;
      while (i < CHUNKS) {
        i++;
        download.written += CHUNK.length;
        if (!stream.write(CHUNK)) {
          download.isWaiting = true;
          return void stream.once('drain', pump);
        }
      }
      download.hasEnded = true;
      stream.end();
    };
    pump();
  });
  const kit = await startH2Proxy(t, [backend]);
  const stuck = kit.session();
  const other = kit.session();
  // Each unread download can hold a whole stream window of the shared endpoint connection; the
  // endpoint connection's window must not let a few of them stop everyone else's responses.
  const STUCK_STREAMS = 6;
  for (let i = 0; i < STUCK_STREAMS; i++) {
    const req = stuck.request(GET('/big'));
    req.on('error', () => undefined);
    await once(req, 'response');
    req.pause();
  }
  const isHeld = (d: (typeof downloads)[number]) => d.hasEnded || (d.isWaiting && d.written > H2_STREAM_WINDOW_BYTES);
  await waitUntil(() => downloads.length === STUCK_STREAMS && downloads.every(isHeld), 10_000, `all ${STUCK_STREAMS} unread downloads to fill their stream windows`);
  const small = request(other, GET('/small'));
  const outcome = await Promise.race([small.then((r) => r.body.toString()), new Promise<string>((r) => setTimeout(() => r('stalled for 3 s'), 3000))]);
  t.equal(outcome, 'small', `another app's small request completes while ${STUCK_STREAMS} downloads sit unread`);
});

t.test('HEADERS on a stream id lower than one already opened: the app gets RST_STREAM STREAM_CLOSED, never silence', async (t) => {
  const backend = await startH2Endpoint(echoHandler('b'));
  const kit = await startH2Proxy(t, [backend]);
  const { socket, reader } = await kit.connect();
  socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 5, literalBlock(REQUEST_FIELDS)));
  await readResponse(reader, 5);
  socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, literalBlock(REQUEST_FIELDS)));
  // RFC 9113 5.1.1: using id 5 implicitly closed stream 3, and HEADERS on a closed stream is STREAM_CLOSED.
  const answer = await reader
    .waitFor((f) => f.type === T.GOAWAY || (f.type === T.RST_STREAM && f.streamId === 3) || (f.type === T.HEADERS && f.streamId === 3), 2000, 'an answer about stream 3')
    .catch(() => undefined);
  t.equal(answer?.type, T.RST_STREAM, 'the app got RST_STREAM for stream 3 instead of silence');
  t.equal(answer?.payload.readUInt32BE(0), 5, 'STREAM_CLOSED');
  socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 7, literalBlock(REQUEST_FIELDS)));
  const after = await readResponse(reader, 7);
  t.equal(after.fields[1], '200', 'the connection goes on serving new streams');
});

t.test('a header block that never ends is cut off with GOAWAY ENHANCE_YOUR_CALM (CONTINUATION flood)', async (t) => {
  const kit = await startH2Proxy(t, []);
  await t.test('300 KiB of CONTINUATION frames', async (t) => {
    const { socket, reader } = await kit.handshake();
    socket.write(frame(T.HEADERS, 0, 1, literalBlock(REQUEST_FIELDS)));
    const filler = Buffer.alloc(16_384, 0x61);
    for (let i = 0; i < 20 && !reader.closed; i++) socket.write(frame(T.CONTINUATION, 0, 1, filler));
    const goaway = await reader.waitFor((f) => f.type === T.GOAWAY, 5000, 'GOAWAY');
    t.equal(goaway.payload.readUInt32BE(4), 11, 'ENHANCE_YOUR_CALM');
    t.match(goaway.payload.subarray(8).toString(), /header block on stream 1 larger than 262144 bytes/);
    await reader.waitClosed(5000);
  });
  await t.test('100000 empty CONTINUATION frames', async (t) => {
    const { socket, reader } = await kit.handshake();
    socket.write(frame(T.HEADERS, 0, 1, literalBlock(REQUEST_FIELDS)));
    const empty = frame(T.CONTINUATION, 0, 1);
    socket.write(Buffer.concat(Array.from({ length: 100_000 }, () => empty)));
    const goaway = await reader.waitFor((f) => f.type === T.GOAWAY, 3000, 'GOAWAY').catch(() => undefined);
    t.ok(goaway, 'the proxy ended a header block of 100000 empty CONTINUATION frames (each one costs it memory)');
    if (goaway) t.equal(goaway.payload.readUInt32BE(4), 11, `ENHANCE_YOUR_CALM (got code ${goaway.payload.readUInt32BE(4)}: ${goaway.payload.subarray(8).toString()})`);
  });
});

t.test('a request header list above the limit gets 431 naming it; the connection and its HPACK state carry on', async (t) => {
  const backend = await startH2Endpoint((stream, headers) => {
    stream.respond({ ':status': 200 });
    stream.end(`x-later=${String(headers['x-later'])}`);
  });
  const kit = await startH2Proxy(t, [backend]);
  const { socket, reader } = await kit.handshake();
  // 9000 one-byte fields: ~45 KB encoded, ~306 KB by the RFC's accounting (32 bytes per field).
  const many = literalBlock(Array.from({ length: 9000 }, (): [string, string] => ['a', 'b']));
  // Last, a literal WITH incremental indexing: it must still enter the dynamic table.
  const indexed = Buffer.concat([Buffer.from([0x40, 7]), Buffer.from('x-later'), Buffer.from([13]), Buffer.from('indexed-value')]);
  const block = Buffer.concat([literalBlock(REQUEST_FIELDS), many, indexed]);
  for (let offset = 0, first = true; offset < block.length; offset += 16_384, first = false) {
    const last = offset + 16_384 >= block.length;
    socket.write(frame(first ? T.HEADERS : T.CONTINUATION, (first ? F.END_STREAM : 0) | (last ? F.END_HEADERS : 0), 1, block.subarray(offset, offset + 16_384)));
  }
  const refused = await readResponse(reader, 1);
  t.equal(field(refused.fields, ':status'), '431');
  t.match(refused.body.toString(), /the limit is 262144 bytes of header fields/, 'the body names the limit');
  // Stream 3 refers to the entry the refused block added (index 62).
  socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, Buffer.concat([literalBlock(REQUEST_FIELDS), Buffer.from([0x80 | 62])])));
  const next = await readResponse(reader, 3);
  t.equal(field(next.fields, ':status'), '200', 'the next request on the connection is served');
  t.equal(next.body.toString(), 'x-later=indexed-value', 'the HPACK dynamic table stayed in sync');
  t.notOk(reader.frames.some((f) => f.type === T.GOAWAY), 'no GOAWAY');
});

t.test('an endpoint response header list above the limit: that request fails with 502 naming it, the endpoint connection carries on', async (t) => {
  let connections = 0;
  const endpoint = await rawServer((socket, reader) => {
    connections++;
    let n = 0;
    reader.onFrame = (f) => {
      if (f.type !== T.HEADERS) return;
      n++;
      if (n === 1) {
        const block = literalBlock([[':status', '200'], ...Array.from({ length: 9000 }, (): [string, string] => ['a', 'b'])]);
        const out: Buffer[] = [];
        for (let offset = 0; offset < block.length; offset += 16_384) {
          const last = offset + 16_384 >= block.length;
          out.push(frame(offset === 0 ? T.HEADERS : T.CONTINUATION, last ? F.END_HEADERS : 0, f.streamId, block.subarray(offset, offset + 16_384)));
        }
        out.push(frame(T.DATA, F.END_STREAM, f.streamId, Buffer.from('never seen')));
        socket.write(Buffer.concat(out));
      } else {
        socket.write(Buffer.concat([frame(T.HEADERS, F.END_HEADERS, f.streamId, literalBlock([[':status', '200']])), frame(T.DATA, F.END_STREAM, f.streamId, Buffer.from('fine'))]));
      }
    };
  });
  const kit = await startH2Proxy(t, [endpoint]);
  const session = kit.session();
  const bad = await request(session, GET('/huge-response-headers'));
  t.equal(bad.headers[':status'], 502);
  t.match(bad.body.toString(), /header list larger than 262144 bytes/, 'the body names the problem');
  const good = await request(session, GET('/fine'));
  t.equal(good.body.toString(), 'fine', 'the next request to that endpoint is served');
  t.equal(connections, 1, 'on the same endpoint connection');
});

t.test('request trailers from the app reach the endpoint after the body, even when all arrive before the endpoint connection is up', async (t) => {
  let seen: { body: string; trailers: http2.IncomingHttpHeaders | undefined } | undefined;
  const backend = await startH2Endpoint((stream) => {
    let body = '';
    let trailers: http2.IncomingHttpHeaders | undefined;
    stream.on('trailers', (tr) => (trailers = tr));
    stream.on('data', (d) => (body += d));
    stream.on('end', () => {
      seen = { body, trailers };
      stream.respond({ ':status': 200 });
      stream.end('got it');
    });
  });
  const kit = await startH2Proxy(t, [backend]);
  const { socket, reader } = await kit.handshake();
  socket.write(
    Buffer.concat([
      frame(T.HEADERS, F.END_HEADERS, 1, literalBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/trailers'], [':authority', 'raw.test']])),
      frame(T.DATA, 0, 1, Buffer.from('body-')),
      frame(T.DATA, 0, 1, Buffer.from('then-trailers')),
      frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, literalBlock([['x-checksum', 'abc123']])),
    ]),
  );
  const { fields, body } = await readResponse(reader, 1);
  t.equal(field(fields, ':status'), '200');
  t.equal(body.toString(), 'got it');
  t.equal(seen?.body, 'body-then-trailers', 'the endpoint got the body');
  t.equal(seen?.trailers?.['x-checksum'], 'abc123', 'and the trailers after it');
});

t.test('an endpoint allowing no streams (MAX_CONCURRENT_STREAMS 0) fails like a refused connection: no connection churn', async (t) => {
  let connections = 0;
  const endpoint = await rawServer(() => {
    connections++;
  }, [[3, 0]]);
  const kit = await startH2Proxy(t, [endpoint]);
  const session = kit.session();
  const reply = await request(session, GET('/nowhere'));
  t.equal(reply.headers[':status'], 502);
  t.match(reply.body.toString(), /allows no streams \(SETTINGS_MAX_CONCURRENT_STREAMS 0\)/, 'the body names the problem');
  t.ok(connections <= 2, `the proxy opened ${connections} connection(s), not one after another`);
});

t.test('header fields marked never-indexed (sensitive) stay so across the proxy, both ways', async (t) => {
  let seenSensitive: unknown;
  const backend = await startH2Endpoint((stream, headers) => {
    seenSensitive = (headers as unknown as Record<symbol, unknown>)[http2.sensitiveHeaders];
    stream.respond({ ':status': 200, 'set-cookie': 'session=s3cret', 'x-plain': 'p', [http2.sensitiveHeaders]: ['set-cookie'] });
    stream.end('ok');
  });
  const kit = await startH2Proxy(t, [backend]);
  const session = kit.session();
  const reply = await request(session, { ...GET('/sensitive'), authorization: 'Bearer t0ken', 'x-plain': 'p', [http2.sensitiveHeaders]: ['authorization'] });
  t.equal(reply.body.toString(), 'ok');
  t.same(seenSensitive, ['authorization'], 'the endpoint received authorization as never-indexed, and only it');
  t.same((reply.headers as unknown as Record<symbol, unknown>)[http2.sensitiveHeaders], ['set-cookie'], 'the app received set-cookie as never-indexed, and only it');
});

t.test('an endpoint connection that goes silent (no FIN, no PING answer) is closed: its requests fail, the next ones use a new connection', async (t) => {
  let connections = 0;
  let silent = true;
  let pingsAnswered = 0;
  const endpoint = await rawServer((socket, reader) => {
    const index = ++connections;
    reader.onFrame = (f) => {
      if (index === 1 && silent) return; // a dead peer: reads nothing, answers nothing, never closes
      if (f.type === T.PING && (f.flags & F.ACK) === 0) {
        socket.write(frame(T.PING, F.ACK, 0, f.payload));
        pingsAnswered++;
      }
      if (f.type === T.HEADERS) socket.write(Buffer.concat([frame(T.HEADERS, F.END_HEADERS, f.streamId, literalBlock([[':status', '200']])), frame(T.DATA, F.END_STREAM, f.streamId, Buffer.from('alive'))]));
    };
  });
  const kit = await startH2Proxy(t, [endpoint], { 'upstream-ping-ms': '100' });
  const session = kit.session();
  const started = Date.now();
  const stuck = await request(session, GET('/into-the-void'));
  t.equal(stuck.headers[':status'], 502, 'the request on the dead connection fails instead of hanging');
  t.match(stuck.body.toString(), /no answer to a PING within 100 ms/, 'naming why');
  t.ok(Date.now() - started < 2000, `within ${Date.now() - started} ms (ping interval 100 ms)`);
  t.ok(kit.logs.lines.some((l) => l.msg === 'upstream connection did not answer PING: closing it'), 'a warn line says so');
  silent = false;
  const next = await request(session, GET('/again'));
  t.equal(next.body.toString(), 'alive', 'the next request is served');
  t.equal(connections, 2, 'on a new endpoint connection');
  const pinged = await request(session, GET('/after-a-pause'));
  t.equal(pinged.body.toString(), 'alive');
  const answeredBefore = pingsAnswered;
  await waitUntil(() => pingsAnswered >= answeredBefore + 3, 5000, 'three PINGs of the proxy answered during a silence');
  const afterPause = await request(session, GET('/still'));
  t.equal(afterPause.body.toString(), 'alive', 'a connection that answers its PINGs stays in use through silences');
  t.equal(connections, 2, 'no new connection was needed');
});
