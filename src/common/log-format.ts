/**
 * What every meshlet logger offers its callers, and what its lines must leave out. Two loggers
 * write the same JSON lines: pino in the webhook and the shared watcher (`logger.ts`), and the
 * proxy's own lighter one (`sidecar/log/`), which runs in every meshed Pod. This module loads
 * neither, so code typed against `Logger` costs the proxy nothing.
 */

/** One log call: fields and a message, or a message alone. */
export interface LogFn {
  (fields: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  /** One of LOG_LEVELS, or "silent". */
  level: string;
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  /** A logger whose lines also carry `bindings`, e.g. `{ component: 'relay' }`. */
  child(bindings: Record<string, unknown>): Logger;
  /** Hands what is buffered to the OS; `callback` runs once it has been. */
  flush(callback?: (err?: Error) => void): void;
}

/** Keys whose values never reach a log line ("*" is any one key). */
export const LOG_REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'token',
  '*.token',
  'key',
  '*.key',
  'privateKey',
  '*.privateKey',
] as const;

/** What a redacted value reads as. */
export const LOG_REDACTED = '[redacted]';
