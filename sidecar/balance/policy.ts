import type { LbPolicyName } from '../../src/common/contract.js';
import type { EndpointStats } from './endpoint-stats.js';
import type { PickLog } from './pick-log.js';

/** What a pick yields: an endpoint, or why there is none (an expected outcome, not an exception). */
export type PickResult = { kind: 'endpoint'; endpoint: EndpointStats } | { kind: 'unavailable'; reason: string };

/** Settings every policy instance gets; a policy uses those that concern it. */
export interface PolicyOptions {
  /** How long an endpoint that joins a target already in use ramps up to its full share (ms); 0: no ramp. */
  slowStartMs: number;
}

/** The parts of an endpoint's weight under a weighted policy, for the debug view. */
export interface EndpointScore {
  latencyMs: number;
  /** Latencies up to this count as equal to the fastest candidate's. */
  equalBelowMs: number;
  latencyFactor: number;
  failureRatio: number;
  failureFactor: number;
  /** 1 outside slow start. */
  ramp: number;
  inFlight: number;
  /** Before the floor every candidate gets (MIN_WEIGHT_FRACTION of the heaviest). */
  weight: number;
  /** (in flight + 1) / weight: the lowest is picked, unless a lighter endpoint is due. */
  cost: number;
  /** Smooth weighted round-robin credit: the candidate with the most is picked next. */
  credit: number;
}

/**
 * A load-balancing policy. `pick` is called once per request with the endpoints that may take it
 * (ready and not ejected, never empty) and records the choice it made in `log` for the debug view.
 */
export interface Policy {
  /** The name it is selected by (LB_POLICY in the contract), shown in the pick log and the debug view. */
  readonly name: LbPolicyName;
  pick(candidates: readonly EndpointStats[], now: number, log: PickLog): EndpointStats;
  /** The parts of the endpoint's weight, for policies that weigh endpoints. */
  score?(stats: EndpointStats): EndpointScore;
}

export type PolicyFactory = (options: PolicyOptions) => Policy;

const registry = new Map<LbPolicyName, PolicyFactory>();

/** Makes a policy selectable by its contract name (`--lb-policy`, `meshlet.dev/lb-policy`). */
export function registerPolicy(name: LbPolicyName, factory: PolicyFactory): void {
  registry.set(name, factory);
}

/** The registered policies, in the order they were registered. */
export function policyNames(): LbPolicyName[] {
  return [...registry.keys()];
}

export function isPolicyName(name: string): name is LbPolicyName {
  return registry.has(name as LbPolicyName);
}

/** A fresh policy instance (policies keep per-target state such as a round-robin cursor). */
export function createPolicy(name: string, options: PolicyOptions): Policy {
  const factory = registry.get(name as LbPolicyName);
  if (!factory) throw new Error(`load-balancing policy "${name}" is not valid; allowed: ${policyNames().join(', ')}`);
  return factory(options);
}

/** Two distinct random indexes below n (n >= 2), for power-of-two-choices policies. */
export function twoRandomIndexes(n: number, random: () => number = Math.random): [number, number] {
  const a = Math.floor(random() * n);
  let b = Math.floor(random() * (n - 1));
  if (b >= a) b++;
  return [a, b];
}
