import type { H2Connection, Writable } from './connection.js';
import { H2_STREAM_WINDOW_BYTES } from '../../upstream/h2-pool.js';

/** Stream-level credit goes back to the sender in steps of a quarter of the window we grant. */
const STREAM_CREDIT_STEP_BYTES = H2_STREAM_WINDOW_BYTES >>> 2;
/**
 * Queued payloads smaller than this are copied, so a waiting queue never pins whole socket reads.
 * When small copies follow each other in the queue they are gathered into blocks of
 * COALESCE_BLOCK_BYTES: a body sent as a million 1-byte frames then costs its bytes in memory,
 * not a Buffer per frame (about 100 bytes of heap each).
 */
const COPY_BELOW_BYTES = 8 * 1024;
const COALESCE_BLOCK_BYTES = 16 * 1024;
const EMPTY = Buffer.alloc(0);
/** The queue of a leg that has never queued anything: shared, never written to (most legs never queue). */
const NO_QUEUE: Buffer[] = [];

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a leg moves bytes between any two connections
type AnyConnection = H2Connection<any, any>;

/** Told when a leg has sent its end of stream. */
export interface LegOwner {
  legEnded(leg: H2Leg): void;
}

/**
 * One direction of one relayed stream: the body (and trailers) received from `from` on `fromId`,
 * written to `to` on `toId` as the receiver's stream and connection windows and socket allow.
 * Credit goes back to the sender only for bytes passed on, so what waits here is bounded by the
 * windows we granted. Most bodies go straight through without being queued.
 */
export class H2Leg implements Writable {
  to: AnyConnection | undefined = undefined;
  toId = 0;
  /** What the receiver lets us send on this stream. */
  sendWindow = 0;
  from: AnyConnection | undefined = undefined;
  fromId = 0;
  /** The sender ended its side (END_STREAM received). */
  endReceived = false;
  /** We ended ours towards the receiver. */
  endSent = false;
  /** The receiving stream is gone (reset or closed): nothing more is written. */
  closed = false;
  /** Set when the sender ended the stream with RST_STREAM: the same reset follows the body. */
  resetCode: number | undefined = undefined;
  /** Trailers to send after the body, when the sender ended with a HEADERS frame. */
  trailers: string[] | undefined = undefined;
  trailersNeverIndexed: number[] | undefined = undefined;
  /** Body bytes waiting for window. */
  queued = 0;
  private queue: Buffer[] = NO_QUEUE;
  private head = 0;
  /** Index in `queue` of the last entry that is our own copy (more small payloads may join it), or -1. */
  private copyIndex = -1;
  /** The block small payloads are gathered in; its filled part ends at `blockEnd`. */
  private block: Buffer | undefined = undefined;
  private blockEnd = 0;
  /** Bytes at the front of the queue already credited to the sender (a retry's replayed body). */
  private precredited = 0;
  private streamCredit = 0;

  constructor(readonly owner: LegOwner) {}

  /** Starts (or, for a retry, restarts) writing to `to`; `replay` is the whole body received so far. */
  attach(to: AnyConnection, toId: number, sendWindow: number, replay?: readonly Buffer[], replayBytes?: number): void {
    this.to = to;
    this.toId = toId;
    this.sendWindow = sendWindow;
    this.closed = false;
    this.endSent = false;
    if (replay !== undefined && replayBytes! > 0) {
      this.precredited = replayBytes! - this.queued;
      this.queue = replay.slice();
      this.head = 0;
      this.copyIndex = -1;
      this.queued = replayBytes!;
    }
  }

  /** The receiver opened this stream's window by `bytes` (negative: a smaller initial window). */
  grant(bytes: number): void {
    this.sendWindow += bytes;
    this.flush();
  }

  /**
   * Body bytes from the sender; `flowBytes` includes padding, credited at once. `isKept`: the
   * payload is already held, bounded, for as long as it may wait here (a copy of its own, or a
   * chunk kept for a retry), so it is queued as it is.
   */
  push(payload: Buffer, flowBytes: number, endStream: boolean, isKept: boolean): void {
    const length = payload.length;
    if (flowBytes > length) this.credit(flowBytes - length);
    if (endStream) this.endReceived = true;
    if (length > 0) {
      const to = this.to;
      if (this.queued === 0 && to !== undefined && !this.closed && length <= this.sendWindow && length <= to.sendWindow && length <= to.peerMaxFrame && !to.isCongested) {
        this.sendWindow -= length;
        const last = this.endReceived && this.trailers === undefined && this.resetCode === undefined;
        to.writeData(this.toId, payload, last);
        this.credit(length);
        if (last) this.ended();
        return;
      }
      if (length < COPY_BELOW_BYTES && !isKept) this.queueCopy(payload);
      else this.enqueue(payload);
      this.queued += length;
    }
    this.flush();
  }

  /** The sender's trailers: they go out after everything queued. */
  pushTrailers(fields: string[], neverIndexed?: number[]): void {
    this.trailers = fields;
    this.trailersNeverIndexed = neverIndexed;
    this.endReceived = true;
    this.flush();
  }

  /** The sender reset its stream with `code` after a complete body: pass the body on, then the reset. */
  endWithReset(code: number): void {
    this.resetCode = code;
    this.endReceived = true;
    this.flush();
  }

  /** Writes what the windows allow; waits on the connection when it or its socket is full. */
  flush(): void {
    const to = this.to;
    if (to === undefined || this.closed || this.endSent || to.isClosed) return;
    const queue = this.queue;
    while (this.queued > 0) {
      let room = this.sendWindow;
      if (to.sendWindow < room) room = to.sendWindow;
      if (to.peerMaxFrame < room) room = to.peerMaxFrame;
      if (room <= 0 || to.isCongested) {
        // A full stream window waits for this stream's WINDOW_UPDATE; the rest for the connection.
        if (to.sendWindow <= 0 || to.isCongested) to.waiting.add(this);
        return;
      }
      const chunk = queue[this.head]!;
      let piece = chunk;
      if (chunk.length > room) {
        piece = chunk.subarray(0, room);
        queue[this.head] = chunk.subarray(room);
      } else {
        this.head++;
      }
      const length = piece.length;
      this.queued -= length;
      this.sendWindow -= length;
      const last = this.queued === 0 && this.endReceived && this.trailers === undefined && this.resetCode === undefined;
      to.writeData(this.toId, piece, last);
      const precredited = this.precredited < length ? this.precredited : length;
      this.precredited -= precredited;
      if (length > precredited) this.credit(length - precredited);
      if (last) {
        this.clearQueue();
        this.ended();
        return;
      }
    }
    this.clearQueue();
    if (!this.endReceived) return;
    if (this.resetCode !== undefined) to.writeReset(this.toId, this.resetCode);
    else if (this.trailers !== undefined) to.writeHeaders(this.toId, this.trailers, true, this.trailersNeverIndexed);
    else to.writeData(this.toId, EMPTY, true);
    this.ended();
  }

  /** The receiving stream is gone: drop what waits (crediting the sender's connection for it) and stop. */
  close(): void {
    this.closed = true;
    this.to?.waiting.delete(this);
    const dropped = this.queued - this.precredited;
    if (dropped > 0 && this.from !== undefined && !this.from.isClosed) this.from.credit(dropped);
    this.precredited = 0;
    this.queue = NO_QUEUE;
    this.head = 0;
    this.queued = 0;
    this.copyIndex = -1;
  }

  /** Copies a small payload to the end of the queue, joining the copy before it when there is one. */
  private queueCopy(payload: Buffer): void {
    const queue = this.queue;
    const length = payload.length;
    const last = queue.length - 1;
    if (this.copyIndex === last && last >= this.head) {
      const entry = queue[last]!;
      let block = this.block;
      if (block !== undefined && entry.buffer === block.buffer && this.blockEnd + length <= block.length) {
        payload.copy(block, this.blockEnd);
        this.blockEnd += length;
        queue[last] = block.subarray(entry.byteOffset - block.byteOffset, this.blockEnd);
        return;
      }
      if (entry.length + length <= COALESCE_BLOCK_BYTES) {
        block = Buffer.allocUnsafeSlow(COALESCE_BLOCK_BYTES);
        entry.copy(block, 0);
        payload.copy(block, entry.length);
        this.block = block;
        this.blockEnd = entry.length + length;
        queue[last] = block.subarray(0, this.blockEnd);
        return;
      }
    }
    this.enqueue(Buffer.from(payload));
    this.copyIndex = this.queue.length - 1;
  }

  private enqueue(payload: Buffer): void {
    if (this.queue === NO_QUEUE) this.queue = [payload];
    else this.queue.push(payload);
  }

  private ended(): void {
    this.endSent = true;
    this.owner.legEnded(this);
  }

  private clearQueue(): void {
    if (this.head === 0) return;
    this.queue.length = 0;
    this.head = 0;
    this.copyIndex = -1;
  }

  /** Gives the sender back window for `bytes` passed on. */
  private credit(bytes: number): void {
    const from = this.from;
    if (from === undefined || from.isClosed) return;
    from.credit(bytes);
    if (this.endReceived) return;
    const pending = this.streamCredit + bytes;
    if (pending >= STREAM_CREDIT_STEP_BYTES) {
      this.streamCredit = 0;
      from.writeWindowUpdate(this.fromId, pending);
    } else {
      this.streamCredit = pending;
    }
  }
}
