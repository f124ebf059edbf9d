import { pino, destination, stdTimeFunctions, type Logger as PinoLogger, type DestinationStream, type LevelWithSilent } from 'pino';
import { DEFAULT_LOG_LEVEL } from './contract.js';
import { LOG_REDACT_PATHS, LOG_REDACTED } from './log-format.js';

export type { Logger } from './log-format.js';
export type { PinoLogger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Where lines go; stdout when absent. Tests pass a stream and parse the JSON lines. */
  stream?: DestinationStream;
  /** Base fields on every line, e.g. `{ pod, namespace }` of the sidecar. */
  base?: Record<string, unknown>;
}

/**
 * The root pino logger of the webhook and the shared watcher (fastify takes it as is); modules take
 * `child({ component })`. The proxy has its own lighter logger writing the same lines (sidecar/log/).
 */
export function createLogger(options: LoggerOptions = {}): PinoLogger {
  return pino(
    {
      level: options.level ?? DEFAULT_LOG_LEVEL,
      base: { ...options.base },
      redact: { paths: [...LOG_REDACT_PATHS], censor: LOG_REDACTED },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.stream ?? destination({ fd: 1, sync: false }),
  );
}
