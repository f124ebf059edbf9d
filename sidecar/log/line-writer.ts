import { fstatSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';

/**
 * At most this many bytes of log lines wait in the proxy for stdout. A log reader that stops
 * reading (a stuck collector, a full pipe) must neither grow the proxy's memory nor stall its event
 * loop: further lines are dropped, counted, and reported in one line once writing resumes.
 */
export const MAX_BUFFERED_LOG_BYTES = 1024 * 1024;
/** At most this many lines wait (many short lines cost more than their bytes). */
export const MAX_BUFFERED_LOG_LINES = 10_000;
/** A write to a file or terminal is retried at most this many times while it returns EAGAIN. */
const MAX_SYNC_WRITE_ATTEMPTS = 1_000;

/**
 * Writes whole lines, in order, to a file descriptor. A pipe or socket (a container's stdout) is
 * written without blocking: while the pipe has room each line reaches the OS before `write`
 * returns (so a fatal line logged just before `process.exit` is not lost); lines arriving while it
 * is full wait here, bounded, and go out together when it drains. If the process exits while the
 * pipe is full, the lines still waiting are lost, as with any writer that never blocks. A file or
 * a terminal is written synchronously.
 */
export class LineWriter {
  private readonly socket: Socket | undefined;
  private waiting: string[] = [];
  private waitingBytes = 0;
  private dropped = 0;
  private broken = false;
  private flushWaiters: ((err?: Error) => void)[] = [];

  /**
   * @param droppedLine formats the line that stands in for `count` lines dropped while the reader was behind.
   */
  constructor(
    private readonly fd: number,
    private readonly droppedLine: (count: number) => string,
  ) {
    const stat = fstatSync(fd);
    if (stat.isFIFO() || stat.isSocket()) {
      this.socket = new Socket({ fd, readable: false, writable: true });
      this.socket.on('drain', () => this.drain());
      this.socket.on('error', (err) => this.fail(err));
    }
  }

  /** Writes or queues `line` (one line ending in "\n"); false when it was dropped. */
  write(line: string): boolean {
    if (this.broken) return false;
    if (!this.socket) {
      this.writeAllSync(line);
      return !this.broken;
    }
    if (this.waiting.length === 0 && this.dropped === 0 && !this.socket.writableNeedDrain) {
      this.socket.write(line);
      return true;
    }
    if (this.waitingBytes + line.length > MAX_BUFFERED_LOG_BYTES || this.waiting.length >= MAX_BUFFERED_LOG_LINES) {
      this.dropped++;
      return false;
    }
    this.waiting.push(line);
    this.waitingBytes += line.length;
    return true;
  }

  /** Calls `callback` once every line written so far has been handed to the OS (or writing failed). */
  flush(callback?: (err?: Error) => void): void {
    if (!callback) return;
    if (!this.socket || this.broken || (this.waiting.length === 0 && this.socket.writableLength === 0)) queueMicrotask(() => callback());
    else if (this.waiting.length === 0 && this.dropped === 0) this.socket.write('', (err) => callback(err ?? undefined));
    else this.flushWaiters.push(callback);
  }

  /** The pipe has room again: the waiting lines (and the count of dropped ones) go out as one write. */
  private drain(): void {
    if (this.waiting.length === 0 && this.dropped === 0) return;
    if (this.dropped > 0) this.waiting.push(this.droppedLine(this.dropped));
    const text = this.waiting.join('');
    const waiters = this.flushWaiters;
    this.waiting = [];
    this.waitingBytes = 0;
    this.dropped = 0;
    this.flushWaiters = [];
    this.socket!.write(text, (err) => {
      for (const waiter of waiters) waiter(err ?? undefined);
    });
  }

  /** The reader is gone (EPIPE): logging stops; the proxy goes on serving. */
  private fail(err: Error): void {
    this.broken = true;
    this.waiting = [];
    this.waitingBytes = 0;
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const waiter of waiters) waiter(err);
  }

  /** Writes `text` to a file or terminal, retrying EAGAIN a bounded number of times. */
  private writeAllSync(text: string): void {
    let buffer = Buffer.from(text, 'utf8');
    for (let attempt = 0; attempt < MAX_SYNC_WRITE_ATTEMPTS && buffer.length > 0; attempt++) {
      try {
        buffer = buffer.subarray(writeSync(this.fd, buffer));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
        this.broken = true;
        return;
      }
    }
  }
}
