import { LeastRequestPolicy } from './least-request.js';
import { PeakEwmaPolicy } from './peak-ewma.js';
import { registerPolicy } from './policy.js';
import { RoundRobinPolicy } from './round-robin.js';

/** The policy a target uses unless told otherwise. */
export const DEFAULT_POLICY = 'peak-ewma';

let registered = false;

/** Registers the built-in policies once. */
export function registerBuiltinPolicies(): void {
  if (registered) return;
  registered = true;
  registerPolicy('round-robin', () => new RoundRobinPolicy());
  registerPolicy('least-request', () => new LeastRequestPolicy());
  registerPolicy('peak-ewma', () => new PeakEwmaPolicy());
}
