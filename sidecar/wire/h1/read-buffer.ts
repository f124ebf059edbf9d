import type { OnReadOpts, Socket } from 'node:net';

/** The most one read takes (as Node's own reads). */
const READ_BUFFER_BYTES = 64 * 1024;
/**
 * Every HTTP/1.1 socket, app side and upstream side, reads into this one buffer: a read is parsed
 * and relayed before the next one lands (libuv reads again only after the callback returned), so no
 * buffer is allocated per read and Node's stream machinery is skipped. Nothing may keep a view of a
 * read after its callback: what must outlive it (body bytes, a left-over pipelined request, the
 * first bytes of an Upgrade) is copied first; isBorrowed() tells.
 */
const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);

/** Whether `chunk` is a view of the shared read buffer (valid only until its read callback returns). */
export function isBorrowed(chunk: Buffer): boolean {
  return chunk.buffer === readBuffer.buffer;
}

/** The `onread` option of net.connect: each read goes to `onRead` as a view of the shared buffer. */
export function sharedReadOptions(onRead: (chunk: Buffer) => void): OnReadOpts {
  return {
    buffer: readBuffer,
    callback: (bytes: number) => {
      onRead(readBuffer.subarray(0, bytes));
      return true;
    },
  };
}

/** The per-socket slots behind net.connect's `onread` (lib/net.js: kBuffer, kBufferCb). */
interface OnReadSlots {
  buffer: symbol;
  callback: symbol;
}

let slots: OnReadSlots | null | undefined;

function onReadSlots(socket: Socket): OnReadSlots | null {
  if (slots === undefined) {
    const symbols = Object.getOwnPropertySymbols(socket);
    const buffer = symbols.find((s) => s.description === 'kBuffer');
    const callback = symbols.find((s) => s.description === 'kBufferCb');
    slots = buffer !== undefined && callback !== undefined ? { buffer, callback } : null;
  }
  return slots;
}

interface UserBufferHandle {
  useUserBuffer?: (buffer: Uint8Array) => void;
}

/**
 * Makes an accepted socket read as net.connect's `onread` option does (Node offers that option only
 * to sockets it connects): each read goes to `onRead` as a view of the shared buffer, and no 'data'
 * event is emitted; pause(), resume(), 'end' and 'close' work as before. Returns false, changing
 * nothing, when this Node does not have the slots it uses (the caller keeps 'data' events).
 */
export function readIntoSharedBuffer(socket: Socket, onRead: (chunk: Buffer) => void): boolean {
  const handle = (socket as unknown as { _handle: UserBufferHandle | null })._handle;
  const found = onReadSlots(socket);
  if (found === null || typeof handle?.useUserBuffer !== 'function') return false;
  const target = socket as unknown as Record<symbol, unknown>;
  target[found.buffer] = readBuffer;
  target[found.callback] = (bytes: number) => {
    onRead(readBuffer.subarray(0, bytes));
    return true;
  };
  handle.useUserBuffer(readBuffer);
  return true;
}

/**
 * Hands a socket switched by readIntoSharedBuffer back to Node's stream: each later read is pushed
 * as a copy of its own, so 'data' events and pipe() work again (an Upgrade becoming a byte pipe).
 * Returns false when reading did not go through the shared buffer: nothing to undo.
 */
export function streamSharedReads(socket: Socket): boolean {
  const found = slots;
  const target = socket as unknown as Record<symbol, unknown>;
  if (found === null || found === undefined || target[found.buffer] !== readBuffer) return false;
  // onStreamRead stops reading when this returns false (the stream's buffer is full), as push() says.
  target[found.callback] = (bytes: number) => socket.push(Buffer.from(readBuffer.subarray(0, bytes)));
  return true;
}
