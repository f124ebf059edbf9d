import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { METRICS } from '../../src/common/contract.js';
import { startMeshlet, type MeshletProcess } from '../../tools/meshlet-process.js';
import { F, FrameReader, PREFACE, T, frame, literalBlock, settingsFrame, u32 } from './h2-raw.js';

/**
 * One abusive app against `meshlet proxy` run as a real child process (so its memory is its own),
 * with two loopback HTTP/2 backends and a well-behaved client on another connection. Shared by
 * test/sidecar/protocols/h2-abuse.test.ts (which asserts) and test/bench/abuse.bench.ts (which prints).
 */

/** The well-behaved client sends one request this often while an attack runs. */
export const STEADY_INTERVAL_MS = 50;
/** A well-behaved request not answered within this long counts as lost. */
const STEADY_TIMEOUT_MS = 5_000;
/** Frames an attacker writes per socket write. */
const BATCH_FRAMES = 1_000;

/** Backends: "/sink" never reads its body and never answers; any other path reads the body, then answers 200. */
export interface AbuseBackend {
  address: string;
  /** Streams that reached this backend. */
  streams: number;
  close(): Promise<void>;
}

export async function startAbuseBackend(name: string): Promise<AbuseBackend> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => undefined);
  });
  const backend: AbuseBackend = { address: '', streams: 0, close: async () => undefined };
  server.on('stream', (stream, headers) => {
    backend.streams++;
    stream.on('error', () => undefined);
    if (headers[':path'] === '/sink') {
      stream.pause();
      return;
    }
    stream.resume();
    stream.on('end', () => {
      if (stream.destroyed || stream.closed) return;
      stream.respond({ ':status': 200 });
      stream.end(`ok ${name}`);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  backend.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  backend.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sessions) s.destroy();
      server.close(() => resolve());
    });
  return backend;
}

/** `meshlet proxy` over `backends` on kernel-picked loopback ports; `command`: the node argv before it (default: from source). */
export function startProxyProcess(backends: readonly AbuseBackend[], command?: readonly string[], env?: NodeJS.ProcessEnv): Promise<MeshletProcess> {
  return startMeshlet(['proxy', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--debug-admin', 'off', '--upstream', backends.map((b) => b.address).join(',')], {
    startTimeoutMs: 30_000,
    ...(command === undefined ? {} : { command }),
    ...(env === undefined ? {} : { env }),
  });
}

/** A field of /proc/<pid>/status in bytes (VmRSS: now, VmHWM: the peak since the process started). */
export function procMemoryBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`/proc/${pid}/status has no ${field} line`);
  return Number(match[1]) * 1024;
}

/** Endpoint ejections the proxy reports on /metrics (summed over endpoints). */
export async function ejectionCount(proxy: MeshletProcess): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${proxy.listening.admin.port}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${METRICS.ejections}{`)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

export interface SteadyResult {
  sent: number;
  answered: number;
  /** Requests answered with something else than 200 "ok ...", failed or timed out, with why. */
  lost: string[];
}

export interface SteadyClient {
  /** Resolves once `count` more requests have been answered from now (rejects after `timeoutMs`). */
  answered(count: number, timeoutMs: number): Promise<void>;
  stop(): Promise<SteadyResult>;
}

/** A well-behaved app on its own connection: GET /ok every STEADY_INTERVAL_MS until stop(). */
export function steadyClient(port: number): SteadyClient {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  const result: SteadyResult = { sent: 0, answered: 0, lost: [] };
  const pending = new Set<Promise<void>>();
  const waiters = new Set<() => void>();
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      result.sent++;
      let status = 0;
      let body = '';
      const req = session.request({ ':path': '/ok' });
      const timer = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), STEADY_TIMEOUT_MS);
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('error', () => undefined);
      req.on('close', () => {
        clearTimeout(timer);
        if (status === 200 && body.startsWith('ok ')) {
          result.answered++;
          for (const w of waiters) w();
        } else result.lost.push(`status ${status}, rst ${req.rstCode}, body ${JSON.stringify(body.slice(0, 200))}`);
        resolve();
      });
      req.end();
    });
  const timer = setInterval(() => {
    const p = one();
    pending.add(p);
    void p.then(() => pending.delete(p));
  }, STEADY_INTERVAL_MS);
  return {
    answered(count, timeoutMs) {
      const target = result.answered + count;
      return new Promise((resolve, reject) => {
        const check = () => {
          if (result.answered < target) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the well-behaved client got ${count} answers not within ${timeoutMs} ms (${JSON.stringify(result)})`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    async stop() {
      clearInterval(timer);
      await Promise.all([...pending]);
      session.close();
      return result;
    },
  };
}

export interface AttackResult {
  /** Frames written before the proxy closed the connection (or the attack ran out). */
  framesSent: number;
  closed: boolean;
  /** The GOAWAY error code the attacker read, when it reads. */
  goawayCode: number | undefined;
}

const REQUEST = (path: string, method = 'GET'): Buffer =>
  literalBlock([
    [':method', method],
    [':scheme', 'http'],
    [':path', path],
    [':authority', 'abuse.test'],
  ]);

/**
 * Writes `next(i)` frames in batches of BATCH_FRAMES until `total` are written, the socket closes or
 * `timeoutMs` passes. Waits for 'drain' between batches: a proxy that stops reading stops the attacker.
 */
async function flood(socket: net.Socket, total: number, timeoutMs: number, next: (i: number) => Buffer): Promise<number> {
  const until = Date.now() + timeoutMs;
  let sent = 0;
  while (sent < total && !socket.destroyed && Date.now() < until) {
    const parts: Buffer[] = [];
    for (let i = 0; i < BATCH_FRAMES && sent + i < total; i++) parts.push(next(sent + i));
    sent += parts.length;
    if (!socket.write(Buffer.concat(parts))) {
      const left = until - Date.now();
      if (left <= 0) break;
      // events.once rejects on 'error' (EPIPE once the proxy closed): that ends the attack too.
      await Promise.race([once(socket, 'drain'), once(socket, 'close'), new Promise((r) => setTimeout(r, left).unref())]).catch(() => undefined);
    } else {
      await new Promise((r) => setImmediate(r));
    }
  }
  return sent;
}

/** Waits up to `timeoutMs` for the socket to close. */
async function closedWithin(socket: net.Socket, timeoutMs: number): Promise<boolean> {
  if (socket.destroyed) return true;
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, timeoutMs).unref())]).catch(() => undefined);
  return socket.destroyed;
}

/** A client that reads what the proxy sends (so GOAWAY is seen), preface and SETTINGS sent. */
async function readingAttacker(port: number): Promise<{ socket: net.Socket; reader: FrameReader }> {
  const socket = net.connect(port, '127.0.0.1');
  const reader = new FrameReader(socket, { ackSettings: true });
  await once(socket, 'connect');
  socket.write(Buffer.concat([PREFACE, settingsFrame()]));
  return { socket, reader };
}

/** A client that never reads a byte the proxy sends. */
async function deafAttacker(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(Buffer.concat([PREFACE, settingsFrame()]));
  return socket;
}

function goawayCode(reader: FrameReader): number | undefined {
  const goaway = reader.frames.find((f) => f.type === T.GOAWAY);
  return goaway === undefined ? undefined : goaway.payload.readUInt32BE(4);
}

async function finishReading(socket: net.Socket, reader: FrameReader, framesSent: number, timeoutMs: number): Promise<AttackResult> {
  const closed = await closedWithin(socket, timeoutMs);
  socket.destroy();
  return { framesSent, closed, goawayCode: goawayCode(reader) };
}

/** Rapid Reset (CVE-2023-44487): HEADERS of a GET then RST_STREAM CANCEL, `pairs` times. */
export async function rapidReset(port: number, pairs: number, timeoutMs: number): Promise<AttackResult> {
  const { socket, reader } = await readingAttacker(port);
  const block = REQUEST('/ok');
  const sent = await flood(socket, pairs * 2, timeoutMs, (i) => {
    const streamId = (i >> 1) * 2 + 1;
    return (i & 1) === 0 ? frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, streamId, block) : frame(T.RST_STREAM, 0, streamId, u32(8));
  });
  return finishReading(socket, reader, sent, 5_000);
}

/** PING (CVE-2019-9512) or SETTINGS (CVE-2019-9515) flood from a client that never reads the ACKs. */
export async function controlFlood(port: number, kind: 'ping' | 'settings', total: number, timeoutMs: number): Promise<AttackResult> {
  const socket = await deafAttacker(port);
  const ping = frame(T.PING, 0, 0, Buffer.alloc(8));
  const settings = frame(T.SETTINGS, 0, 0);
  const sent = await flood(socket, total, timeoutMs, () => (kind === 'ping' ? ping : settings));
  // Only now does it read (and discard) what the proxy sent, so it sees the proxy's close.
  socket.resume();
  const closed = await closedWithin(socket, 5_000);
  socket.destroy();
  return { framesSent: sent, closed, goawayCode: undefined };
}

/** Control frames faster than a reading client could want answers: more PINGs in one write than the budget. */
export async function controlBurst(port: number, kind: 'ping' | 'settings', total: number): Promise<AttackResult> {
  const { socket, reader } = await readingAttacker(port);
  const one = kind === 'ping' ? frame(T.PING, 0, 0, Buffer.alloc(8)) : frame(T.SETTINGS, 0, 0);
  socket.write(Buffer.concat(Array.from({ length: total }, () => one)));
  return finishReading(socket, reader, total, 5_000);
}

/** Empty DATA frames (CVE-2019-9518) on a POST to a backend that answers once the body ends. */
export async function emptyDataFlood(port: number, total: number, timeoutMs: number): Promise<AttackResult> {
  const { socket, reader } = await readingAttacker(port);
  socket.write(frame(T.HEADERS, F.END_HEADERS, 1, REQUEST('/echo', 'POST')));
  const empty = frame(T.DATA, 0, 1);
  const sent = await flood(socket, total, timeoutMs, () => empty);
  return finishReading(socket, reader, sent, 5_000);
}

/**
 * DATA frames of `frameBytes` on `streams` POSTs to /sink, a backend that never reads: at most
 * `bytesPerStream` per stream, so the client stays within the windows the proxy granted.
 */
export async function dataToSink(port: number, frameBytes: number, streams: number, bytesPerStream: number, timeoutMs: number): Promise<AttackResult> {
  const { socket, reader } = await readingAttacker(port);
  const open: Buffer[] = [];
  for (let s = 0; s < streams; s++) open.push(frame(T.HEADERS, F.END_HEADERS, s * 2 + 1, REQUEST('/sink', 'POST')));
  socket.write(Buffer.concat(open));
  const payload = Buffer.alloc(frameBytes, 0x61);
  const perStream = Math.floor(bytesPerStream / frameBytes);
  const sent = await flood(socket, perStream * streams, timeoutMs, (i) => frame(T.DATA, 0, (i % streams) * 2 + 1, payload));
  const closed = await closedWithin(socket, 1_000);
  const result = { framesSent: sent, closed, goawayCode: goawayCode(reader) };
  socket.destroy();
  return result;
}

/**
 * Slowloris over HTTP/1.1: `connections` connections each send the start of a request head, then one
 * more byte every `byteIntervalMs`, never finishing it, until the proxy closes them all or
 * `timeoutMs` passes. `framesSent` counts the bytes written; `closed` is true when every connection
 * was closed by the proxy.
 */
export async function slowHeads(port: number, connections: number, byteIntervalMs: number, timeoutMs: number): Promise<AttackResult> {
  const sockets: net.Socket[] = [];
  let sent = 0;
  for (let i = 0; i < connections; i++) {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.resume();
    await once(socket, 'connect');
    const start = `GET /slow-${i} HTTP/1.1\r\nHost: abuse.test\r\nX-Slow: `;
    socket.write(start);
    sent += start.length;
    sockets.push(socket);
  }
  const timer = setInterval(() => {
    for (const socket of sockets) {
      if (socket.destroyed || socket.readableEnded) continue;
      socket.write('a');
      sent++;
    }
  }, byteIntervalMs);
  try {
    const until = Date.now() + timeoutMs;
    for (const socket of sockets) {
      if (socket.readableEnded) continue;
      const left = until - Date.now();
      if (left <= 0) break;
      await Promise.race([once(socket, 'end'), once(socket, 'close'), new Promise((r) => setTimeout(r, left).unref())]).catch(() => undefined);
    }
    return { framesSent: sent, closed: sockets.every((s) => s.destroyed || s.readableEnded), goawayCode: undefined };
  } finally {
    clearInterval(timer);
    for (const socket of sockets) socket.destroy();
  }
}

/**
 * `connections` HTTP/2 connections that send the preface and SETTINGS, then nothing, held for
 * `holdMs`: what idle app connections cost the proxy. `closed` is true when the proxy closed all of them.
 */
export async function idleConnections(port: number, connections: number, holdMs: number): Promise<AttackResult> {
  const sockets: net.Socket[] = [];
  for (let i = 0; i < connections; i++) sockets.push(await deafAttacker(port));
  await new Promise((r) => setTimeout(r, holdMs).unref());
  const closed = sockets.every((s) => s.destroyed || s.readableEnded);
  for (const socket of sockets) socket.destroy();
  return { framesSent: connections * 2, closed, goawayCode: undefined };
}
