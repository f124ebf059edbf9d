import { LB_POLICY } from '../../src/common/contract.js';
import type { EndpointStats } from './endpoint-stats.js';
import type { PickLog } from './pick-log.js';
import type { Policy } from './policy.js';

/** Each candidate in turn. */
export class RoundRobinPolicy implements Policy {
  readonly name = LB_POLICY.roundRobin;
  private cursor = 0;

  pick(candidates: readonly EndpointStats[], _now: number, log: PickLog): EndpointStats {
    if (this.cursor >= candidates.length) this.cursor = 0;
    const chosen = candidates[this.cursor++]!;
    log.record(this.name, 'turn', chosen.key, 0, undefined, 0);
    return chosen;
  }
}
