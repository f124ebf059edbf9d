import { LB_POLICIES, LB_POLICY, type LbPolicyName } from '../../src/common/contract.js';
import { LeastRequestPolicy } from './least-request.js';
import { PeakEwmaPolicy } from './peak-ewma.js';
import { registerPolicy, type PolicyFactory } from './policy.js';
import { RoundRobinPolicy } from './round-robin.js';

/** Slow start of peak-ewma unless told otherwise (--slow-start-ms, meshlet.dev/slow-start-ms), in ms. */
export const DEFAULT_SLOW_START_MS = 10_000;

/**
 * One factory per policy of the contract: the type makes this table name exactly LB_POLICIES, so a
 * name added there without a policy here (or the other way round) does not compile.
 */
const BUILTIN_POLICIES: { readonly [name in LbPolicyName]: PolicyFactory } = {
  [LB_POLICY.roundRobin]: () => new RoundRobinPolicy(),
  [LB_POLICY.leastRequest]: () => new LeastRequestPolicy(),
  [LB_POLICY.peakEwma]: (options) => new PeakEwmaPolicy(options),
};

let registered = false;

/** Registers the built-in policies once, in the contract's order. */
export function registerBuiltinPolicies(): void {
  if (registered) return;
  registered = true;
  for (const name of LB_POLICIES) registerPolicy(name, BUILTIN_POLICIES[name]);
}
