import { Writable } from 'node:stream';
import type { LevelWithSilent } from 'pino';
import { createLogger, type PinoLogger } from '../../src/common/logger.js';

/** One JSON line as pino wrote it; `err` is pino's serialized Error. */
export interface LogLine {
  level: string;
  msg: string;
  err?: { type?: string; message: string; stack?: string; code?: string };
  [field: string]: unknown;
}

export interface LogCapture {
  /** The root logger to hand to the code under test. */
  log: PinoLogger;
  /** Every line written so far, parsed, in order. */
  lines: LogLine[];
  /**
   * The first line (already written or still to come) matching `predicate`; rejects after
   * `timeoutMs` naming `what` was awaited. Argument order as waitUntil and FrameReader.waitFor.
   */
  waitFor(predicate: (line: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine>;
  /** The first `count` lines matching `predicate`, once that many were written; bounded like waitFor. */
  waitForCount(predicate: (line: LogLine) => boolean, count: number, timeoutMs: number, what: string): Promise<LogLine[]>;
}

/** A real pino logger at `level` writing JSON lines into memory, so tests match on what users would read and wait on log events. */
export function captureLogs(level: LevelWithSilent = 'debug'): LogCapture {
  const lines: LogLine[] = [];
  const waiters = new Set<(line: LogLine) => void>();
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (!text.trim()) continue;
        const line = JSON.parse(text) as LogLine;
        lines.push(line);
        for (const waiter of waiters) waiter(line);
      }
      callback();
    },
  });
  const waitForCount = (predicate: (line: LogLine) => boolean, count: number, timeoutMs: number, what: string): Promise<LogLine[]> => {
    const matching = lines.filter(predicate);
    if (matching.length >= count) return Promise.resolve(matching.slice(0, count));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(onLine);
        const last = lines.slice(-3).map((l) => `${l.level} "${l.msg}"`);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${matching.length} of ${count} matching log line(s); last of ${lines.length} line(s): [${last.join(', ')}]`));
      }, timeoutMs);
      const onLine = (line: LogLine): void => {
        if (!predicate(line)) return;
        matching.push(line);
        if (matching.length < count) return;
        clearTimeout(timer);
        waiters.delete(onLine);
        resolve(matching);
      };
      waiters.add(onLine);
    });
  };
  const waitFor = async (predicate: (line: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine> => (await waitForCount(predicate, 1, timeoutMs, what))[0]!;
  return { log: createLogger({ level, stream }), lines, waitFor, waitForCount };
}
