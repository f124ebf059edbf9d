import type { Socket } from 'node:net';

/**
 * Size of the buffers small frames are packed into: one per connection, a new one each time it
 * fills (the full one lives until the socket wrote it and the GC found it). At 1,000 req/s, 64 KiB
 * slabs held 1.4 MiB of ArrayBuffers at the peak, 16 KiB ones 0.6-0.85; a saturated burst of 50
 * requests fills about 5 KiB, and payloads above COPY_LIMIT_BYTES never go into a slab.
 */
const SLAB_BYTES = 16 * 1024;
/** Payloads up to this size are copied next to their frame header; larger ones are written by reference. */
const COPY_LIMIT_BYTES = 4 * 1024;

/** Writers with bytes waiting, flushed together once the current tick's frames are all written. */
const dirty: FrameWriter[] = [];
let flushScheduled = false;

function flushDirty(): void {
  flushScheduled = false;
  for (let i = 0; i < dirty.length; i++) dirty[i]!.flush();
  dirty.length = 0;
}

/**
 * Packs a connection's outgoing frames into shared slabs and hands them to the socket once per
 * tick (one writev for everything a burst of incoming frames produced), instead of one write
 * and one Buffer per frame. Bytes handed to the socket are never overwritten: a slab is only
 * appended to, and a new one starts when it is full.
 */
export class FrameWriter {
  /** Where the next bytes go; callers may write into `slab` between reserve() and commit(). */
  slab: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  /** First byte of `slab` not yet handed to the socket. */
  private start = 0;
  /** Next free byte of `slab`. */
  end = 0;
  /** Earlier segments waiting, in order, before slab[start, end); emptied (not replaced) on flush. */
  private readonly parts: Buffer[] = [];
  private isDirty = false;

  constructor(private readonly socket: Socket) {}

  /** Makes room for `bytes` contiguous bytes at slab[end]; returns `end`. */
  reserve(bytes: number): number {
    if (this.end + bytes > this.slab.length) {
      this.seal();
      this.slab = Buffer.allocUnsafe(bytes > SLAB_BYTES ? bytes : SLAB_BYTES);
      this.start = 0;
      this.end = 0;
    }
    return this.end;
  }

  /** Marks `bytes` written at slab[end] as part of the output. */
  commit(bytes: number): void {
    this.end += bytes;
    this.markDirty();
  }

  /** Appends `payload` after what was committed: copied when small, else by reference. */
  append(payload: Buffer): void {
    const length = payload.length;
    if (length === 0) return;
    if (length <= COPY_LIMIT_BYTES) {
      const offset = this.reserve(length);
      payload.copy(this.slab, offset);
      this.end = offset + length;
    } else {
      this.seal();
      this.parts.push(payload);
    }
    this.markDirty();
  }

  /** Hands everything waiting to the socket now. */
  flush(): void {
    this.isDirty = false;
    this.seal();
    const parts = this.parts;
    if (parts.length === 0 || this.socket.destroyed) {
      parts.length = 0;
      return;
    }
    if (parts.length === 1) {
      this.socket.write(parts[0]!);
    } else {
      this.socket.cork();
      for (let i = 0; i < parts.length; i++) this.socket.write(parts[i]!);
      this.socket.uncork();
    }
    parts.length = 0;
  }

  private seal(): void {
    if (this.end > this.start) {
      this.parts.push(this.slab.subarray(this.start, this.end));
      this.start = this.end;
    }
  }

  private markDirty(): void {
    if (this.isDirty) return;
    this.isDirty = true;
    dirty.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      process.nextTick(flushDirty);
    }
  }
}
