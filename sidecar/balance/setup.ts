import { LeastRequestPolicy } from './least-request.js';
import { PeakEwmaPolicy } from './peak-ewma.js';
import { registerPolicy } from './policy.js';
import { RoundRobinPolicy } from './round-robin.js';

/** The policy a target uses unless told otherwise. */
export const DEFAULT_POLICY = 'peak-ewma';
/** Slow start of peak-ewma unless told otherwise (--slow-start-ms, meshlet.dev/slow-start-ms). */
export const DEFAULT_SLOW_START_MS = 10_000;

let registered = false;

/** Registers the built-in policies once. */
export function registerBuiltinPolicies(): void {
  if (registered) return;
  registered = true;
  registerPolicy('round-robin', () => new RoundRobinPolicy());
  registerPolicy('least-request', () => new LeastRequestPolicy());
  registerPolicy('peak-ewma', (options) => new PeakEwmaPolicy(options));
}
