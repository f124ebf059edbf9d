import { DEFAULT_LOG_LEVEL } from '../../src/common/contract.js';
import { LOG_REDACT_PATHS, LOG_REDACTED, type LogFn, type Logger } from '../../src/common/log-format.js';
import { LineWriter } from './line-writer.js';

/**
 * The proxy's logger. It writes the same JSON lines as the webhook's pino logger (level label, ISO
 * time, bindings, fields, `msg`; `err` serialized with its type, causes and own fields; the same
 * keys redacted) for a fraction of pino's memory: pino loads worker threads, a stream library and
 * its serializers at start, about 1 MiB of every meshed Pod's peak (README, Where the memory goes).
 */

/** pino's level numbers, so `level` comparisons read the same in both loggers. */
const LEVEL_VALUES: Readonly<Record<string, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
/** Causes followed when serializing an error, so a cyclic or endless chain stays one bounded line. */
const MAX_ERROR_CAUSES = 8;

/** Where the lines go: a LineWriter on stdout, or a test's collector. */
export interface LineOutput {
  write(line: string): unknown;
  flush(callback?: (err?: Error) => void): void;
}

export interface LineLoggerOptions {
  /** One of LOG_LEVELS, or "silent". */
  level?: string;
  /** Fields on every line, e.g. `{ pod, namespace }`. */
  base?: Record<string, unknown>;
  /** Where lines go; a LineWriter on stdout when absent. */
  output?: LineOutput;
}

/** The root logger of `meshlet proxy` and `meshlet init`; modules take `child({ component })`. */
export function createLineLogger(options: LineLoggerOptions = {}): Logger {
  const output = options.output ?? new LineWriter(1, droppedLine);
  return new LineLogger(options.level ?? DEFAULT_LOG_LEVEL, { ...options.base }, output);
}

/** The line that stands in for lines dropped while stdout was not being read. */
function droppedLine(count: number): string {
  return `${JSON.stringify({ level: 'warn', time: new Date().toISOString(), component: 'log', dropped: count, msg: 'log lines dropped: stdout was not read fast enough' })}\n`;
}

class LineLogger implements Logger {
  private threshold: number;
  private current: string;

  readonly fatal: LogFn = (fields: object | string, msg?: string) => this.log('fatal', fields, msg);
  readonly error: LogFn = (fields: object | string, msg?: string) => this.log('error', fields, msg);
  readonly warn: LogFn = (fields: object | string, msg?: string) => this.log('warn', fields, msg);
  readonly info: LogFn = (fields: object | string, msg?: string) => this.log('info', fields, msg);
  readonly debug: LogFn = (fields: object | string, msg?: string) => this.log('debug', fields, msg);
  readonly trace: LogFn = (fields: object | string, msg?: string) => this.log('trace', fields, msg);

  constructor(
    level: string,
    private readonly bindings: Record<string, unknown>,
    private readonly output: LineOutput,
  ) {
    this.current = level;
    this.threshold = levelValue(level);
  }

  get level(): string {
    return this.current;
  }

  set level(level: string) {
    this.threshold = levelValue(level);
    this.current = level;
  }

  child(bindings: Record<string, unknown>): Logger {
    return new LineLogger(this.current, { ...this.bindings, ...bindings }, this.output);
  }

  flush(callback?: (err?: Error) => void): void {
    this.output.flush(callback);
  }

  private log(label: string, fields: object | string, msg: string | undefined): void {
    if (LEVEL_VALUES[label]! < this.threshold) return;
    const line: Record<string, unknown> = { level: label, time: new Date().toISOString(), ...this.bindings };
    if (typeof fields === 'string') {
      line['msg'] = fields;
    } else if (isErrorLike(fields)) {
      line['err'] = serializeError(fields);
      line['msg'] = msg ?? fields.message;
    } else {
      Object.assign(line, fields);
      if (isErrorLike(line['err'])) line['err'] = serializeError(line['err']);
      if (msg !== undefined) line['msg'] = msg;
    }
    for (const path of REDACT_PATHS) redact(line, path);
    this.output.write(`${stringify(line)}\n`);
  }
}

function levelValue(level: string): number {
  const value = LEVEL_VALUES[level];
  if (value === undefined) throw new Error(`log level "${level}" is not valid; allowed: ${Object.keys(LEVEL_VALUES).join(', ')}`);
  return value;
}

/** JSON of the line; a field that cannot be (a BigInt, a cycle) costs the fields, never the line. */
function stringify(line: Record<string, unknown>): string {
  try {
    return JSON.stringify(line);
  } catch (err) {
    return JSON.stringify({ level: line['level'], time: line['time'], msg: line['msg'], logError: `the line's fields could not be written as JSON: ${(err as Error).message}` });
  }
}

// ---------------------------------------------------------------- redaction

const REDACT_PATHS: readonly (readonly string[])[] = LOG_REDACT_PATHS.map((path) => path.split('.'));

/** Replaces the values at `path` ("*" is any key). `target` is the line's own; objects below it are the caller's, so they are copied before a change. */
function redact(target: Record<string, unknown>, path: readonly string[]): void {
  const [head, ...rest] = path as [string, ...string[]];
  const keys = head === '*' ? Object.keys(target) : Object.hasOwn(target, head) ? [head] : [];
  for (const key of keys) {
    const value = target[key];
    if (rest.length === 0) {
      if (value !== undefined) target[key] = LOG_REDACTED;
    } else if (isPlainRecord(value) && reaches(value, rest)) {
      const copy = { ...value };
      redact(copy, rest);
      target[key] = copy;
    }
  }
}

/** Whether `path` leads to a value in `value`. */
function reaches(value: Record<string, unknown>, path: readonly string[]): boolean {
  const [head, ...rest] = path as [string, ...string[]];
  const keys = head === '*' ? Object.keys(value) : Object.hasOwn(value, head) ? [head] : [];
  return keys.some((key) => {
    const next = value[key];
    if (rest.length === 0) return next !== undefined;
    return isPlainRecord(next) && reaches(next, rest);
  });
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// ---------------------------------------------------------------- errors

interface ErrorLike {
  message: string;
  stack?: string;
  name?: string;
  cause?: unknown;
  errors?: unknown;
  [key: string]: unknown;
}

function isErrorLike(value: unknown): value is ErrorLike {
  return value !== null && typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string';
}

/**
 * An error as pino's serializer writes it: `type`, `message` and `stack` with the causes appended
 * (": cause" and "\ncaused by: stack"), `aggregateErrors`, and the error's own enumerable fields
 * (`code`, `errno`, ...).
 */
function serializeError(err: ErrorLike, seen = new Set<ErrorLike>()): Record<string, unknown> {
  seen.add(err);
  const causes = causeChain(err);
  const out: Record<string, unknown> = {
    type: typeof err.constructor === 'function' ? err.constructor.name : err.name,
    message: [err, ...causes].map((e) => e.message).join(': '),
    stack: [err, ...causes].map((e) => e.stack ?? '').join('\ncaused by: '),
  };
  if (Array.isArray(err.errors)) out['aggregateErrors'] = err.errors.map((e) => (isErrorLike(e) && !seen.has(e) ? serializeError(e, seen) : e));
  for (const key in err) {
    if (out[key] !== undefined || key === 'cause') continue;
    const value = err[key];
    if (!isErrorLike(value)) out[key] = value;
    else if (!seen.has(value)) out[key] = serializeError(value, seen);
  }
  return out;
}

/** The error's causes, nearest first, each once, at most MAX_ERROR_CAUSES. */
function causeChain(err: ErrorLike): ErrorLike[] {
  const chain: ErrorLike[] = [];
  let cause = err.cause;
  while (isErrorLike(cause) && cause !== err && !chain.includes(cause) && chain.length < MAX_ERROR_CAUSES) {
    chain.push(cause);
    cause = cause.cause;
  }
  return chain;
}
