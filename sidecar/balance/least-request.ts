import { LB_POLICY } from '../../src/common/contract.js';
import type { EndpointStats } from './endpoint-stats.js';
import type { PickLog } from './pick-log.js';
import { twoRandomIndexes, type Policy } from './policy.js';

/** Power of two choices on requests in flight. */
export class LeastRequestPolicy implements Policy {
  readonly name = LB_POLICY.leastRequest;

  constructor(private readonly random: () => number = Math.random) {}

  pick(candidates: readonly EndpointStats[], _now: number, log: PickLog): EndpointStats {
    if (candidates.length === 1) {
      const only = candidates[0]!;
      log.record(this.name, 'in-flight', only.key, only.inFlight, undefined, 0);
      return only;
    }
    const [i, j] = twoRandomIndexes(candidates.length, this.random);
    const a = candidates[i]!;
    const b = candidates[j]!;
    const [chosen, other] = b.inFlight < a.inFlight ? [b, a] : [a, b];
    log.record(this.name, 'in-flight', chosen.key, chosen.inFlight, other.key, other.inFlight);
    return chosen;
  }
}
