import type { TargetRegistry } from '../route/target-registry.js';

/**
 * The live endpoint table for /debug/endpoints: per target, per endpoint its state, in-flight,
 * latency estimate, failure ratio and ejection, and under a weighted policy (peak-ewma) the parts
 * of its weight; plus the last picks and why each went where it did.
 * Served on localhost only: it reveals internals.
 */
export function buildDebugView(registry: TargetRegistry): unknown {
  const now = performance.now();
  const targets = [];
  for (const balancer of registry.all()) {
    const endpoints = [];
    for (const stats of balancer.endpoints()) {
      const ejected = stats.isEjected(now);
      const score = balancer.policy.score?.(stats);
      endpoints.push({
        endpoint: stats.key,
        pod: stats.endpoint.pod,
        state: stats.removed ? 'draining' : ejected ? 'ejected' : stats.state,
        removedFromDiscovery: stats.removed,
        inFlight: stats.inFlight,
        openPipes: stats.activeConnections,
        requests: stats.requests,
        latencyEstimateMs: round(stats.latencyMs),
        failureRatio: round(stats.failureRatio),
        consecutiveFailures: stats.consecutiveFailures,
        ejected,
        ejectedForMs: ejected ? Math.round(stats.ejectedUntil - now) : 0,
        ejections: stats.ejections,
        upstreamConnections: stats.upstream.connections,
        score: score === undefined ? undefined : roundAll(score),
      });
    }
    targets.push({
      target: balancer.id,
      policy: balancer.policy.name,
      passthrough: balancer.isPassthrough,
      stale: balancer.stale,
      lastSyncedAt: balancer.lastSyncedAt === undefined ? undefined : new Date(balancer.lastSyncedAt).toISOString(),
      endpoints,
      recentPicks: balancer.pickLog.recent().map((p) => ({ at: new Date(p.at).toISOString(), candidates: p.candidates, chosen: p.chosen, why: p.why })),
    });
  }
  return { targets };
}

function roundAll<T extends object>(values: T): T {
  const out = { ...values };
  for (const key of Object.keys(out) as Array<keyof T>) if (typeof out[key] === 'number') out[key] = round(out[key] as number) as T[keyof T];
  return out;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
