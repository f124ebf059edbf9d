import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/common/logger.js';

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

/** A real pino logger writing JSON lines into memory, so tests can match on what users would read. */
export function captureLogs(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as LogLine);
      callback();
    },
  });
  return { log: createLogger({ level: 'debug', stream }), lines };
}
