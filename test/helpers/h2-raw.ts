import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';

/**
 * Hand-written HTTP/2 for tests: frames built byte by byte and a reader that parses what the peer
 * sends, so a test can put on the wire what node:http2 never would (bad frames, padding, GOAWAY at
 * a chosen moment) and see exactly which frames come back.
 */

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const F = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

export function settingsFrame(pairs: Array<[number, number]> = []): Buffer {
  const payload = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(T.SETTINGS, 0, 0, payload);
}

export function u32(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v, i * 4));
  return b;
}

/** HPACK integer with an n-bit prefix (RFC 7541 5.1); `first` holds the pattern bits above the prefix. */
function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

/** A header block of literal fields without indexing, no Huffman: the plainest valid HPACK. */
export function literalBlock(fields: Array<[string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0x00, ...hpackInt(n.length, 7, 0)]), n, Buffer.from(hpackInt(v.length, 7, 0)), v);
  }
  return Buffer.concat(parts);
}

/** Parses frames from a socket; answers SETTINGS with an ACK when `ackSettings`. */
export class FrameReader {
  readonly frames: RawFrame[] = [];
  closed = false;
  /** Called for every frame as it arrives (after the SETTINGS ACK, if any, went out). */
  onFrame: ((f: RawFrame) => void) | undefined = undefined;
  private buffer = Buffer.alloc(0);
  private prefaceLeft: number;
  private waiters: Array<() => void> = [];
  private pingsSent = 0;

  constructor(
    readonly socket: net.Socket,
    options: { expectPreface?: boolean; ackSettings?: boolean } = {},
  ) {
    this.prefaceLeft = options.expectPreface ? PREFACE.length : 0;
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      if (this.prefaceLeft > 0) {
        const n = Math.min(this.prefaceLeft, this.buffer.length);
        this.prefaceLeft -= n;
        this.buffer = this.buffer.subarray(n);
      }
      while (this.buffer.length >= 9) {
        const length = this.buffer.readUIntBE(0, 3);
        if (this.buffer.length < 9 + length) break;
        const f: RawFrame = {
          type: this.buffer[3]!,
          flags: this.buffer[4]!,
          streamId: this.buffer.readUInt32BE(5) & 0x7fffffff,
          payload: Buffer.from(this.buffer.subarray(9, 9 + length)),
        };
        this.buffer = this.buffer.subarray(9 + length);
        if (options.ackSettings && f.type === T.SETTINGS && (f.flags & F.ACK) === 0 && !socket.destroyed) socket.write(frame(T.SETTINGS, F.ACK, 0));
        this.frames.push(f);
        this.onFrame?.(f);
      }
      this.wake();
    });
  }

  /** The first frame (from the start) matching `pred`; rejects after `timeoutMs` or on close. */
  async waitFor(pred: (f: RawFrame) => boolean, timeoutMs = 5000, what = 'frame'): Promise<RawFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(pred);
      if (found) return found;
      if (this.closed) throw new Error(`connection closed before ${what} arrived`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Sends a PING and waits for its ACK. The peer handles frames in order, so by then it has read
   * every frame written before the PING, and whatever it wrote before the ACK is in `frames`.
   */
  async roundTrip(timeoutMs = 5000): Promise<void> {
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(++this.pingsSent, 4);
    this.socket.write(frame(T.PING, 0, 0, payload));
    await this.waitFor((f) => f.type === T.PING && (f.flags & F.ACK) !== 0 && f.payload.equals(payload), timeoutMs, `the ACK of PING ${this.pingsSent}`);
  }

  /** Resolves when the socket has closed, rejects after `timeoutMs`. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    if (this.closed) return;
    await Promise.race([
      once(this.socket, 'close'),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** A raw client connection: preface and empty SETTINGS sent, server SETTINGS acknowledged. */
export async function rawClient(port: number): Promise<{ socket: net.Socket; reader: FrameReader }> {
  const socket = net.connect(port, '127.0.0.1');
  const reader = new FrameReader(socket, { ackSettings: true });
  await once(socket, 'connect');
  socket.write(Buffer.concat([PREFACE, settingsFrame()]));
  return { socket, reader };
}

/** A raw upstream: each accepted connection gets a FrameReader (preface skipped, SETTINGS acknowledged) and our SETTINGS. */
export async function rawServer(
  onConnection: (socket: net.Socket, reader: FrameReader) => void,
  settings: Array<[number, number]> = [],
): Promise<{ server: net.Server; address: string; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const reader = new FrameReader(socket, { expectPreface: true, ackSettings: true });
    socket.write(settingsFrame(settings));
    onConnection(socket, reader);
  });
  return { server, sockets, ...(await listenOnLoopback(server, sockets)) };
}

/** Listens on 127.0.0.1:0; `close()` destroys what is still in `open` (sockets, sessions), then closes the server. */
export async function listenOnLoopback(server: net.Server, open: Set<{ destroy(): void }>): Promise<{ address: string; close(): Promise<void> }> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
