import { once } from 'node:events';
import http2 from 'node:http2';
import t, { type Test } from 'tap';
import { ERROR_CODE } from '../../../sidecar/wire/h2/frame.js';
import { F, T, frame, literalBlock, rawServer } from '../../helpers/h2-raw.js';
import type { LogLine } from '../../helpers/log-capture.js';
import { startH2Endpoint, startH2Proxy, type H2ProxyKit } from '../../helpers/h2-proxy-kit.js';
import { waitUntil } from '../../helpers/wait.js';

/**
 * Random HTTP/2 frames from many app connections, half of them built from valid pieces (real
 * header blocks, plausible stream ids) so they get past the first checks. Whatever arrives, the
 * proxy must answer or close that connection, never hit an internal error, and keep serving.
 */

const CONNECTIONS = 240;
const BATCH = 12;
const MAX_FRAMES = 16;
const SETTLE_MS = 40;
const ENDPOINT_ROUNDS = 30;
const REQUESTS_PER_ROUND = 8;
/** A misbehaving endpoint's connection is closed this long after its first reply, so nothing may hang. */
const ENDPOINT_LIFETIME_MS = 30;

/** Deterministic (mulberry32), so a failure replays with the same seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** One GET on a fresh session to the proxy: the response body. */
async function fetchText(target: string, path: string): Promise<string> {
  const session = http2.connect(`http://${target}`);
  try {
    const req = session.request({ ':path': path });
    req.end();
    let body = '';
    req.on('data', (d) => (body += d));
    await once(req, 'end');
    return body;
  } finally {
    session.close();
  }
}

/** Log lines that report a bug of ours. */
function internalErrors(lines: LogLine[]): LogLine[] {
  return lines.filter((l) => /internal error/.test(String(l.msg)) || /internal error/.test(String(l.error)));
}

/** Requests counted in flight over all endpoints, once none is (or after 3 s: the assertion on the count then says how many). */
async function settledInFlight(kit: H2ProxyKit): Promise<number> {
  await waitUntil(() => kit.inFlight() === 0, 3000, 'no request left in flight').catch(() => undefined);
  return kit.inFlight();
}

function randomFrames(rand: () => number): Buffer {
  return rand() < 0.5 ? plausibleFrames(rand) : anyFrames(rand);
}

/** Well-formed frames of a plausible client (odd, rising stream ids), with a corruption now and then. */
function plausibleFrames(rand: () => number): Buffer {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  };
  const frames: Buffer[] = [];
  let nextId = 1;
  const open: number[] = [];
  const count = 1 + Math.floor(rand() * MAX_FRAMES * 2);
  for (let i = 0; i < count; i++) {
    const id = open.length > 0 && rand() < 0.6 ? pick(open) : 0;
    const choice = Math.floor(rand() * 7);
    if (choice <= 1 || id === 0) {
      const streamId = nextId;
      nextId += 2;
      open.push(streamId);
      const fields: Array<[string, string]> = [[':method', 'POST'], [':scheme', 'http'], [':path', '/fuzz'], [':authority', 'fuzz.test']];
      if (rand() < 0.4) fields.push(['content-type', 'application/grpc'], ['grpc-timeout', pick(['1m', '20m', '5S'])]);
      frames.push(frame(T.HEADERS, F.END_HEADERS | (rand() < 0.3 ? F.END_STREAM : 0), streamId, literalBlock(fields)));
    } else if (choice === 2) {
      frames.push(frame(T.DATA, rand() < 0.4 ? F.END_STREAM : 0, id, Buffer.alloc(Math.floor(rand() * 3000), 0x61)));
    } else if (choice === 3) {
      frames.push(frame(T.RST_STREAM, 0, id, u32(pick([0, 2, 7, 8]))));
    } else if (choice === 4) {
      frames.push(frame(T.WINDOW_UPDATE, 0, pick([0, id]), u32(1 + Math.floor(rand() * 100_000))));
    } else if (choice === 5) {
      frames.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, literalBlock([['x-trailer', 'v']])));
    } else {
      frames.push(frame(T.PING, 0, 0, Buffer.alloc(8, 1)));
    }
  }
  const wire = Buffer.concat(frames);
  if (rand() < 0.3 && wire.length > 0) wire[Math.floor(rand() * wire.length)] = Math.floor(rand() * 256);
  return wire;
}

/** Frames of any type, flags, stream and payload. */
function anyFrames(rand: () => number): Buffer {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
  const frames: Buffer[] = [];
  const count = 1 + Math.floor(rand() * MAX_FRAMES);
  for (let i = 0; i < count; i++) {
    const type = rand() < 0.8 ? pick([T.DATA, T.HEADERS, T.HEADERS, T.PRIORITY, T.RST_STREAM, T.SETTINGS, T.PING, T.GOAWAY, T.WINDOW_UPDATE, T.CONTINUATION]) : Math.floor(rand() * 256);
    const flags = rand() < 0.5 ? pick([0, F.END_STREAM, F.END_HEADERS, F.END_HEADERS | F.END_STREAM]) : Math.floor(rand() * 256);
    const streamId = pick([0, 1, 1, 3, 3, 5, 2, 0x7fffffff]);
    let payload: Buffer;
    if (type === T.HEADERS && rand() < 0.6) {
      payload = literalBlock([
        [':method', pick(['GET', 'POST'])],
        [':scheme', 'http'],
        [':path', pick(['/', '/fuzz', ''])],
        [':authority', 'fuzz.test'],
        ...(rand() < 0.3 ? ([['content-type', 'application/grpc']] as Array<[string, string]>) : []),
        ...(rand() < 0.2 ? ([['grpc-timeout', pick(['1m', '10S', 'x'])]] as Array<[string, string]>) : []),
      ]);
      if (rand() < 0.2) payload = payload.subarray(0, Math.floor(rand() * payload.length));
    } else {
      payload = bytes(pick([0, 1, 4, 5, 6, 8, 12, Math.floor(rand() * 200)]));
    }
    frames.push(frame(type, flags, streamId, payload));
  }
  return Buffer.concat(frames);
}

/**
 * A proxy (logging warnings and up) in front of one h2 endpoint that answers "fine" at once or only
 * after the whole request body; `served()` counts the requests that reached the endpoint.
 */
async function startFuzzedProxy(t: Test, answer: 'at-once' | 'after-body') {
  let count = 0;
  const backend = await startH2Endpoint((stream) => {
    count++;
    const respond = () => {
      if (stream.closed) return;
      stream.respond({ ':status': 200 });
      stream.end('fine');
    };
    if (answer === 'at-once') return respond();
    stream.resume();
    stream.on('end', respond);
  });
  return { ...(await startH2Proxy(t, [backend])), served: () => count };
}

t.test('random frames on many connections: no internal error, every bad connection answered or closed, the proxy serves on', async (t) => {
  const kit = await startFuzzedProxy(t, 'at-once');
  const { target, logs, served, connect } = kit;
  const seed = Number(process.env.FUZZ_SEED ?? 20261122);
  const rand = random(seed);
  const goawayMessages: string[] = [];
  for (let done = 0; done < CONNECTIONS; done += BATCH) {
    const inputs = Array.from({ length: BATCH }, () => randomFrames(rand));
    await Promise.all(
      inputs.map(async (input) => {
        const { socket, reader } = await connect();
        try {
          socket.write(input);
          // A PING answered (or the connection closed) means the proxy handled all of the input; an
          // input cut mid-frame leaves it waiting for the rest, and that wait is what SETTLE_MS bounds.
          await Promise.race([reader.roundTrip(SETTLE_MS), reader.waitClosed(SETTLE_MS)]).catch(() => undefined);
          for (const f of reader.frames) if (f.type === T.GOAWAY) goawayMessages.push(f.payload.subarray(8).toString());
        } finally {
          socket.destroy();
        }
      }),
    );
  }
  t.ok(goawayMessages.length > 0, `${goawayMessages.length} of ${CONNECTIONS} connections were ended with a GOAWAY (seed ${seed})`);
  t.ok(served() > 0, `${served()} fuzzed requests got through to the endpoint, so the relay past the parser was exercised too`);
  t.same(
    goawayMessages.filter((m) => /internal error/.test(m)),
    [],
    'no GOAWAY reports an internal error',
  );
  t.same(internalErrors(logs.lines), [], 'no internal error was logged');
  t.equal(await settledInFlight(kit), 0, 'with every fuzzing connection gone, no request is left counted in flight (nothing leaked)');
  t.equal(await fetchText(target, '/after-fuzz'), 'fine', 'a well-behaved app is served after all of it');
});

/** What a misbehaving endpoint answers to the request on `streamId`. */
function randomReply(rand: () => number, streamId: number): Buffer {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  };
  const frames: Buffer[] = [];
  const count = 1 + Math.floor(rand() * 6);
  for (let i = 0; i < count; i++) {
    const choice = Math.floor(rand() * 9);
    const id = rand() < 0.85 ? streamId : pick([0, streamId + 2, 2]);
    if (choice <= 2) frames.push(frame(T.HEADERS, F.END_HEADERS | (rand() < 0.4 ? F.END_STREAM : 0), id, literalBlock([[':status', pick(['200', '503', '100', 'abc'])]])));
    else if (choice <= 4) frames.push(frame(T.DATA, rand() < 0.5 ? F.END_STREAM : 0, id, Buffer.alloc(Math.floor(rand() * 2000), 0x62)));
    else if (choice === 5) frames.push(frame(T.RST_STREAM, 0, id, u32(pick([0, 2, 7, 8, 11]))));
    else if (choice === 6) frames.push(frame(T.GOAWAY, 0, 0, Buffer.concat([u32(pick([0, streamId, streamId - 2])), u32(pick([0, 2]))])));
    else if (choice === 7) frames.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, literalBlock([['grpc-status', pick(['0', '14'])]])));
    else frames.push(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 20) }, () => Math.floor(rand() * 256))));
  }
  return Buffer.concat(frames);
}

t.test('an endpoint answering random frames: every app request ends (response or error), nothing leaks, the proxy serves on', async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? 20261122);
  const rand = random(seed + 1);
  const endpoint = await rawServer((socket, reader) => {
    let timer: NodeJS.Timeout | undefined;
    reader.onFrame = (f) => {
      if (f.type !== T.HEADERS || socket.destroyed) return;
      socket.write(randomReply(rand, f.streamId));
      timer ??= setTimeout(() => socket.destroy(), ENDPOINT_LIFETIME_MS);
    };
    socket.on('close', () => clearTimeout(timer));
  });
  const steady = await startH2Endpoint((stream) => {
    stream.respond({ ':status': 200 });
    stream.end('steady');
  });
  t.teardown(() => steady.close());
  const kit = await startH2Proxy(t, [endpoint]);
  const { source, target, logs } = kit;
  let outcomes = 0;
  for (let round = 0; round < ENDPOINT_ROUNDS; round++) {
    const session = http2.connect(`http://${target}`);
    session.on('error', () => undefined);
    try {
      await Promise.all(
        Array.from(
          { length: REQUESTS_PER_ROUND },
          () =>
            new Promise<void>((resolve, reject) => {
              const req = session.request({ ':method': 'POST', ':path': '/random' });
              req.on('error', () => undefined);
              req.on('data', () => undefined);
              const timer = setTimeout(() => reject(new Error(`a request through the proxy never ended (seed ${seed}, round ${round})`)), 5000);
              req.on('close', () => {
                clearTimeout(timer);
                outcomes++;
                resolve();
              });
              req.end('x');
            }),
        ),
      );
    } finally {
      session.destroy();
    }
  }
  t.equal(outcomes, ENDPOINT_ROUNDS * REQUESTS_PER_ROUND, 'every request ended, one way or another, within 5 s');
  t.same(internalErrors(logs.lines), [], 'no internal error was logged');
  t.equal(await settledInFlight(kit), 0, 'no request is left counted in flight');
  source.set([steady.address]);
  t.equal(await fetchText(target, '/after'), 'steady', 'with a sane endpoint in its place, the app is served');
});

/** Frames per flooding connection, at most: several times every per-connection budget. */
const FLOOD_FRAMES = 30_000;
const FLOOD_CONNECTIONS = 24;

/** A random flood of control frames, empty or tiny DATA, resets and frame misuse, with valid requests mixed in. */
function floodFrames(rand: () => number): Buffer {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  };
  const request = literalBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/flood'], [':authority', 'fuzz.test']]);
  const ping = frame(T.PING, 0, 0, Buffer.alloc(8));
  const settings = frame(T.SETTINGS, 0, 0);
  const frames: Buffer[] = [];
  let nextId = 1;
  // Mostly one kind per connection (a flood), with the others sprinkled in.
  const main = Math.floor(rand() * 6);
  for (let i = 0; i < FLOOD_FRAMES; i++) {
    const kind = rand() < 0.8 ? main : Math.floor(rand() * 7);
    const open = nextId > 1 ? nextId - 2 : 1;
    if (kind === 0) frames.push(ping);
    else if (kind === 1) frames.push(settings);
    else if (kind === 2) {
      frames.push(frame(T.HEADERS, F.END_HEADERS, nextId, request), frame(T.RST_STREAM, 0, nextId, u32(8)));
      nextId += 2;
    } else if (kind === 3) {
      if (nextId === 1) {
        frames.push(frame(T.HEADERS, F.END_HEADERS, nextId, request));
        nextId += 2;
      }
      frames.push(frame(T.DATA, 0, open, Buffer.alloc(pick([0, 0, 1, 5]), 0x61)));
    } else if (kind === 4) frames.push(frame(T.WINDOW_UPDATE, 0, open, u32(pick([0, 1, 0x7fffffff]))));
    else if (kind === 5) frames.push(frame(T.PRIORITY, 0, pick([open, open + 2]), Buffer.alloc(pick([3, 5, 6]))));
    else {
      frames.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, nextId, request));
      nextId += 2;
    }
    if (nextId > 2 ** 31 - 3) break;
  }
  return Buffer.concat(frames);
}

t.test('control-frame, tiny-frame and stream-error floods: a flooder that never reads is ended, one that reads is ended or served, no internal error, nothing leaks', async (t) => {
  const kit = await startFuzzedProxy(t, 'after-body');
  const { target, logs, served, connect } = kit;
  const seed = Number(process.env.FUZZ_SEED ?? 20261122);
  const rand = random(seed + 2);
  let deafEnded = 0;
  let deafConnections = 0;
  const goawayCodes = new Map<number, number>();
  for (let i = 0; i < FLOOD_CONNECTIONS; i++) {
    const deaf = rand() < 0.5;
    const { socket, reader } = await connect();
    if (deaf) socket.pause();
    try {
      socket.write(floodFrames(rand));
      socket.resume();
      const isEnded = await reader.waitClosed(10_000).then(
        () => true,
        () => false,
      );
      if (deaf) {
        deafConnections++;
        if (isEnded) deafEnded++;
      } else if (!isEnded) {
        // A client that reads every answer may keep its connection: then it must still be served.
        socket.write(frame(T.PING, 0, 0, Buffer.from('stillup!')));
        await t.resolves(reader.waitFor((f) => f.type === T.PING && (f.flags & F.ACK) !== 0 && f.payload.toString() === 'stillup!', 5_000), 'a reading flooder not cut off is still answered');
      }
      for (const f of reader.frames) if (f.type === T.GOAWAY) goawayCodes.set(f.payload.readUInt32BE(4), (goawayCodes.get(f.payload.readUInt32BE(4)) ?? 0) + 1);
    } finally {
      socket.destroy();
    }
  }
  t.ok(deafConnections > 0, `${deafConnections} of ${FLOOD_CONNECTIONS} flooders never read`);
  t.equal(deafEnded, deafConnections, `every flooder that never read was ended by the proxy (seed ${seed})`);
  t.ok((goawayCodes.get(ERROR_CODE.ENHANCE_YOUR_CALM) ?? 0) > 0, `the floods were ended by their budgets: GOAWAY codes seen ${JSON.stringify([...goawayCodes])}, ${served()} requests reached the endpoint`);
  t.same(internalErrors(logs.lines), [], 'no internal error was logged');
  t.equal(await settledInFlight(kit), 0, 'no request is left counted in flight');
  t.equal(await fetchText(target, '/after-floods'), 'fine', 'a well-behaved app is served after all of it');
});
