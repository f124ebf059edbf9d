import type { EndpointStats } from './endpoint-stats.js';
import type { PickLog } from './pick-log.js';
import { twoRandomIndexes, type Policy } from './policy.js';

/**
 * Power of two choices on cost = latency estimate × (in-flight + 1), as Linkerd does. The estimate
 * (EndpointStats.latencyEstimateMs) jumps up to any slower observation at once (the "peak"), decays
 * towards faster ones, and counts failures as slow, so an endpoint that fails fast never looks fast.
 */
export class PeakEwmaPolicy implements Policy {
  readonly name = 'peak-ewma';

  constructor(private readonly random: () => number = Math.random) {}

  pick(candidates: readonly EndpointStats[], now: number, log: PickLog): EndpointStats {
    if (candidates.length === 1) {
      const only = candidates[0]!;
      log.record(this.name, 'latency-ms x (in-flight+1)', only.key, cost(only, now), undefined, 0);
      return only;
    }
    const [i, j] = twoRandomIndexes(candidates.length, this.random);
    const a = candidates[i]!;
    const b = candidates[j]!;
    const costA = cost(a, now);
    const costB = cost(b, now);
    if (costB < costA) {
      log.record(this.name, 'latency-ms x (in-flight+1)', b.key, costB, a.key, costA);
      return b;
    }
    log.record(this.name, 'latency-ms x (in-flight+1)', a.key, costA, b.key, costB);
    return a;
  }
}

function cost(stats: EndpointStats, now: number): number {
  return stats.latencyEstimate(now) * (stats.inFlight + 1);
}
