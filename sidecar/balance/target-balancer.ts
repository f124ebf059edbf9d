import type { Logger } from '../../src/common/log-format.js';
import type { ProxyMetrics } from '../admin/metrics.js';
import type { Endpoint, EndpointSet } from '../discovery/endpoint-set.js';
import type { Target } from '../discovery/source.js';
import type { UpstreamOptions } from '../upstream/endpoint-upstream.js';
import { EndpointUpstream } from '../upstream/endpoint-upstream.js';
import { recordOutcome, type EjectionOptions } from './ejection.js';
import { EndpointStats } from './endpoint-stats.js';
import { PickLog } from './pick-log.js';
import type { PickResult, Policy } from './policy.js';
import { RetryBudget, type RetryBudgetOptions } from './retry-budget.js';

/** Latency estimate for a target's first endpoints, before anything is measured (ms). */
const INITIAL_ESTIMATE_MS = 1;

export interface BalancerOptions {
  ejection: EjectionOptions;
  /** Slow start of endpoints that join a target already in use (ms); 0: none. */
  slowStartMs: number;
  retryBudget: RetryBudgetOptions;
  upstream: UpstreamOptions;
}

/** How a request on an endpoint ended. */
export const OUTCOME = { success: 0, failure: 1, connectFailure: 2, cancelled: 3 } as const;
export type Outcome = (typeof OUTCOME)[keyof typeof OUTCOME];

const NO_ENDPOINTS: PickResult = { kind: 'unavailable', reason: 'the target has no ready endpoints' };
const NO_OTHER_ENDPOINT: PickResult = { kind: 'unavailable', reason: 'no other endpoint to retry on' };

/**
 * One target's balancer: follows the target's endpoint set (new endpoints get the next request,
 * removed and terminating ones drain), keeps EndpointStats per endpoint, asks the policy to pick
 * among the ready, non-ejected ones, and records each request's outcome.
 */
export class TargetBalancer {
  readonly id: string;
  readonly pickLog = new PickLog();
  readonly retryBudget: RetryBudget;
  /** A stand-in for an original destination the source does not know: traffic passes through unbalanced. */
  isPassthrough = false;
  /** Every endpoint we hold, ready or draining. */
  private readonly byKey = new Map<string, EndpointStats>();
  /** Ready and not ejected: what the policy chooses from. */
  private candidates: EndpointStats[] = [];
  /** Ready but ejected: used only when nothing else is left (better a maybe than a certain failure). */
  private ejectedReady: EndpointStats[] = [];
  /** Candidates that have never been picked: the next request goes to one of them first. */
  private fresh: EndpointStats[] = [];
  private nextEjectionExpiry = Infinity;
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(
    readonly target: Target,
    readonly policy: Policy,
    private readonly options: BalancerOptions,
    private readonly metrics: ProxyMetrics,
    private readonly log: Logger,
  ) {
    this.id = target.id;
    this.retryBudget = new RetryBudget(options.retryBudget);
    this.apply(target.endpoints);
    this.unsubscribe = target.subscribe((next) => this.apply(next));
  }

  /** performance.now() of the last pick: the registry lets go of targets unused for a while. */
  lastPickAt = performance.now();

  get stale(): boolean {
    return this.target.stale;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Nothing in flight and no pipe open through any endpoint. */
  isIdle(): boolean {
    for (const stats of this.byKey.values()) if (stats.inFlight > 0 || stats.activeConnections > 0) return false;
    return true;
  }

  get lastSyncedAt(): number | undefined {
    return this.target.lastSyncedAt;
  }

  endpoints(): IterableIterator<EndpointStats> {
    return this.byKey.values();
  }

  /** Picks the endpoint for one request and counts it in flight. */
  pick(now: number): PickResult {
    this.lastPickAt = now;
    if (now >= this.nextEjectionExpiry) this.rebuild(now);
    if (this.fresh.length > 0) {
      const fresh = this.takeFresh();
      if (fresh !== undefined) return fresh.picked;
    }
    let pool = this.candidates;
    if (pool.length === 0) {
      if (this.ejectedReady.length === 0) return NO_ENDPOINTS;
      pool = this.ejectedReady;
    }
    const chosen = this.policy.pick(pool, now, this.pickLog);
    this.begin(chosen);
    return chosen.picked;
  }

  /** A new endpoint gets the next request, whatever the policy (its estimate starts as the best one's). */
  private takeFresh(): EndpointStats | undefined {
    while (this.fresh.length > 0) {
      const stats = this.fresh.pop()!;
      if (stats.requests === 0 && !stats.removed && this.candidates.includes(stats)) {
        this.pickLog.record('new-endpoint', 'requests so far', stats.key, 0, undefined, 0);
        this.begin(stats);
        return stats;
      }
    }
    return undefined;
  }

  /** A retry: any candidate but `exclude`. */
  pickOther(exclude: EndpointStats, now: number): PickResult {
    if (now >= this.nextEjectionExpiry) this.rebuild(now);
    const pool = this.candidates.filter((c) => c !== exclude);
    if (pool.length === 0) return NO_OTHER_ENDPOINT;
    const chosen = this.policy.pick(pool, now, this.pickLog);
    this.begin(chosen);
    return chosen.picked;
  }

  /** For long-lived pipes (WebSocket): the candidate with the fewest open pipes. */
  pickFewestConnections(now: number): PickResult {
    this.lastPickAt = now;
    if (now >= this.nextEjectionExpiry) this.rebuild(now);
    const pool = this.candidates.length > 0 ? this.candidates : this.ejectedReady;
    if (pool.length === 0) return NO_ENDPOINTS;
    let best = pool[0]!;
    for (let i = 1; i < pool.length; i++) if (pool[i]!.activeConnections < best.activeConnections) best = pool[i]!;
    this.pickLog.record('fewest-connections', 'open pipes', best.key, best.activeConnections, undefined, 0);
    best.activeConnections++;
    best.requests++;
    return best.picked;
  }

  private begin(stats: EndpointStats): void {
    stats.inFlight++;
    stats.requests++;
    stats.metrics.inFlight++;
    this.retryBudget.deposit();
  }

  /**
   * Ends one request on `stats`: latency feeds the policy's estimate (not for cancelled requests),
   * failures count towards ejection; a drained endpoint is dropped once idle.
   */
  finish(stats: EndpointStats, latencyMs: number, outcome: Outcome, now: number): void {
    stats.inFlight--;
    stats.metrics.inFlight--;
    if (outcome !== OUTCOME.cancelled) {
      const failed = outcome !== OUTCOME.success;
      stats.observe(latencyMs, failed);
      if (recordOutcome(stats, failed, outcome === OUTCOME.connectFailure, this.options.ejection, now)) {
        this.metrics.ejection(stats.metrics);
        this.log.warn({ endpoint: stats.key, forMs: Math.round(stats.ejectedUntil - now), ejections: stats.ejections }, 'endpoint ejected');
        this.rebuild(now);
      }
    }
    if (stats.removed && stats.inFlight === 0 && stats.activeConnections === 0) this.drop(stats);
  }

  /** Ends a two-way pipe opened with pickFewestConnections. */
  finishConnection(stats: EndpointStats): void {
    stats.activeConnections--;
    if (stats.removed && stats.inFlight === 0 && stats.activeConnections === 0) this.drop(stats);
  }

  counts(now: number = performance.now()): { ready: number; draining: number; ejected: number } {
    let ready = 0;
    let draining = 0;
    let ejected = 0;
    for (const stats of this.byKey.values()) {
      if (stats.state === 'draining' || stats.removed) draining++;
      else if (stats.isEjected(now)) ejected++;
      else ready++;
    }
    return { ready, draining, ejected };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const stats of this.byKey.values()) stats.upstream.close();
    this.byKey.clear();
    this.candidates = [];
    this.ejectedReady = [];
  }

  private apply(next: EndpointSet): void {
    if (this.closed) return;
    const now = performance.now();
    let added = 0;
    let removed = 0;
    for (const endpoint of next.all) {
      const existing = this.byKey.get(endpoint.key);
      if (existing) {
        existing.endpoint = endpoint;
        existing.state = endpoint.state;
        existing.removed = false;
      } else {
        this.byKey.set(endpoint.key, this.createStats(endpoint, now));
        added++;
      }
    }
    for (const stats of this.byKey.values()) {
      if (next.has(stats.key) || stats.removed) continue;
      stats.removed = true;
      removed++;
      if (stats.inFlight === 0 && stats.activeConnections === 0) this.drop(stats);
    }
    this.rebuild(now);
    if (added > 0 || removed > 0) this.log.debug({ target: this.id, added, removed, ready: next.ready.length }, 'balancer endpoints updated');
  }

  /**
   * A new endpoint starts with the fastest candidate's estimate; one that joins a target already in
   * use (the target has candidates) starts its slow start now.
   */
  private createStats(endpoint: Endpoint, now: number): EndpointStats {
    let initial = Infinity;
    for (const c of this.candidates) initial = Math.min(initial, c.latencyMs);
    if (initial === Infinity) initial = INITIAL_ESTIMATE_MS;
    const upstream = new EndpointUpstream(endpoint, this.options.upstream, this.log);
    const metrics = this.metrics.endpoint(this.id, endpoint.key);
    const slowStartFrom = this.candidates.length > 0 && this.options.slowStartMs > 0 ? now : -1;
    return new EndpointStats(endpoint, upstream, metrics, initial, this.options.ejection, slowStartFrom);
  }

  private drop(stats: EndpointStats): void {
    if (this.byKey.get(stats.key) !== stats) return;
    this.byKey.delete(stats.key);
    stats.upstream.close();
    this.rebuild(performance.now());
  }

  private rebuild(now: number): void {
    const candidates: EndpointStats[] = [];
    const ejectedReady: EndpointStats[] = [];
    let nextExpiry = Infinity;
    for (const stats of this.byKey.values()) {
      if (stats.removed || stats.state !== 'ready') continue;
      if (stats.isEjected(now)) {
        ejectedReady.push(stats);
        if (stats.ejectedUntil < nextExpiry) nextExpiry = stats.ejectedUntil;
      } else {
        candidates.push(stats);
      }
    }
    this.candidates = candidates;
    this.ejectedReady = ejectedReady;
    this.fresh = candidates.filter((c) => c.requests === 0).reverse();
    this.nextEjectionExpiry = nextExpiry;
  }
}
