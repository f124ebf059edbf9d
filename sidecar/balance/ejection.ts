import type { EndpointStats } from './endpoint-stats.js';

export interface EjectionOptions {
  /** Failed requests in a row that eject an endpoint. */
  consecutiveFailures: number;
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_EJECTION: EjectionOptions = { consecutiveFailures: 5, initialMs: 1_000, maxMs: 30_000 };

/**
 * Consecutive-failure ejection with a backoff that grows each time the same endpoint is ejected
 * again and resets after a success. A failed connection attempt ejects at once. Returns whether
 * this outcome ejected the endpoint.
 */
export function recordOutcome(stats: EndpointStats, failed: boolean, connectFailure: boolean, options: EjectionOptions, now: number): boolean {
  if (!failed) {
    if (stats.consecutiveFailures !== 0) stats.consecutiveFailures = 0;
    if (stats.backoff.attempts !== 0 && stats.ejectedUntil <= now) stats.backoff.reset();
    return false;
  }
  stats.consecutiveFailures++;
  if (stats.isEjected(now)) return false;
  if (!connectFailure && stats.consecutiveFailures < options.consecutiveFailures) return false;
  stats.ejectedUntil = now + stats.backoff.next();
  stats.ejections++;
  // Back in rotation, one more failure ejects it again (for longer).
  stats.consecutiveFailures = options.consecutiveFailures - 1;
  return true;
}
