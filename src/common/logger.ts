import { pino, destination, stdTimeFunctions, type Logger, type DestinationStream, type LevelWithSilent } from 'pino';
import { DEFAULT_LOG_LEVEL } from './contract.js';

export type { Logger };

/** Keys whose values never reach a log line. */
const REDACT_PATHS = [
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
];

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Where lines go; stdout when absent. Tests pass a stream and parse the JSON lines. */
  stream?: DestinationStream;
  /** Base fields on every line, e.g. `{ pod, namespace }` of the sidecar. */
  base?: Record<string, unknown>;
}

/** The one root logger of a process; modules take `child({ component })`. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? DEFAULT_LOG_LEVEL,
      base: { ...options.base },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.stream ?? destination({ fd: 1, sync: false }),
  );
}
