import type { Endpoint } from '../discovery/endpoint-set.js';
import { Backoff } from '../../src/common/backoff.js';
import type { EndpointMetrics } from '../admin/metrics.js';
import type { EndpointUpstream } from '../upstream/endpoint-upstream.js';
import type { PickResult } from './policy.js';

/**
 * Weight of one response in the latency estimate: about the last ten responses count, so a
 * transient stall (which inflates several responses at once) moves it little while an endpoint
 * that stays slow is seen within a dozen requests. 0.3 let the estimates of equal endpoints
 * leave the noise band under load (one of four got 61% of its share with 50 streams in flight).
 */
export const LATENCY_WEIGHT = 0.1;
/**
 * One response counts as at most this multiple of the current estimate, so one outlier (a GC
 * pause, a cold connection) moves the estimate at most 1.3× while a run of slow responses still
 * reaches the true latency (1.3× per response).
 */
export const LATENCY_STEP_LIMIT = 4;
/** Latencies below this are alike: differences under a millisecond are loopback and scheduling noise. */
export const LATENCY_FLOOR_MS = 1;
/** Weight of one outcome in the failure ratio: about the last ten outcomes count. */
export const FAILURE_WEIGHT = 0.1;

export type EndpointLifecycle = 'ready' | 'draining';

/**
 * Everything the proxy knows about one endpoint of one target: state from discovery, requests in
 * flight, the evidence the policies read (latency estimate, failure ratio), slow start, ejection,
 * its upstream connection pools and its metric series. One per endpoint; nothing here allocates
 * per request.
 */
export class EndpointStats {
  readonly key: string;
  state: EndpointLifecycle;
  /** Set when discovery no longer lists it: it finishes what it has, then is dropped. */
  removed = false;
  inFlight = 0;
  /** Open two-way pipes (WebSocket upgrades) through this endpoint. */
  activeConnections = 0;
  requests = 0;
  /** Outcomes observed (finished requests that were not cancelled). */
  observations = 0;
  /** Recent failed outcomes as a fraction of recent outcomes (0..1), weighted by recency. */
  failureRatio = 0;
  consecutiveFailures = 0;
  ejectedUntil = 0;
  ejections = 0;
  /** performance.now() when it joined a target that already had endpoints; -1: no slow start. */
  slowStartFrom: number;
  private estimateMs: number;
  readonly backoff: Backoff;
  /** The preallocated pick result naming this endpoint. */
  readonly picked: PickResult;

  constructor(
    public endpoint: Endpoint,
    readonly upstream: EndpointUpstream,
    readonly metrics: EndpointMetrics,
    initialEstimateMs: number,
    ejectionBackoff: { initialMs: number; maxMs: number },
    slowStartFrom: number,
  ) {
    this.key = endpoint.key;
    this.state = endpoint.state;
    this.estimateMs = initialEstimateMs;
    this.slowStartFrom = slowStartFrom;
    this.backoff = new Backoff(ejectionBackoff);
    this.picked = { kind: 'endpoint', endpoint: this };
  }

  /** The latency estimate (ms): a moving average of recent responses, each outlier bounded. */
  get latencyMs(): number {
    return this.estimateMs;
  }

  /**
   * Feeds one outcome into the evidence. A fast failure says nothing about speed (an endpoint that
   * answers 503 in 1 ms is not fast), so it only counts in the failure ratio; a slow one counts in
   * both.
   */
  observe(latencyMs: number, failed: boolean): void {
    this.observations++;
    this.failureRatio += FAILURE_WEIGHT * ((failed ? 1 : 0) - this.failureRatio);
    const current = this.estimateMs;
    if (failed && latencyMs <= current) return;
    const limit = (current > LATENCY_FLOOR_MS ? current : LATENCY_FLOOR_MS) * LATENCY_STEP_LIMIT;
    const sample = latencyMs > limit ? limit : latencyMs;
    this.estimateMs = current + LATENCY_WEIGHT * (sample - current);
  }

  isEjected(now: number): boolean {
    return this.ejectedUntil > now;
  }
}
