import type { Endpoint } from '../discovery/endpoint-set.js';
import { Backoff } from '../../src/common/backoff.js';
import type { EndpointMetrics } from '../admin/metrics.js';
import type { EndpointUpstream } from '../upstream/endpoint-upstream.js';
import type { PickResult } from './policy.js';

/**
 * How fast an old latency observation fades, also while an endpoint gets no traffic. Linkerd uses
 * 10 s; with power of two choices the costliest endpoint is almost never picked, so one latency
 * spike (a GC pause, a noisy neighbour) would starve a healthy endpoint until its estimate decays
 * below the others': about 40 s for a 50 ms spike over 1 ms peers at 10 s, 4 s at 1 s. A truly
 * slow endpoint is re-probed that rarely too, and each probe restores its high estimate at once.
 * Under load the blend per observation is bounded by a minimum step instead (see observe()).
 */
export const LATENCY_DECAY_MS = 1_000;
/** A failure counts as at least this slow, so an endpoint that fails fast never looks fast. */
export const FAILURE_PENALTY_MS = 250;
/** Weight of the newest outcome in the error score (an EWMA of the failure rate, 0..1). */
const ERROR_SCORE_WEIGHT = 0.1;

export type EndpointLifecycle = 'ready' | 'draining';

/**
 * Everything the proxy knows about one endpoint of one target: state from discovery, requests in
 * flight, the latency estimate and error score the policies read, ejection, its upstream
 * connection pools and its metric series. One per endpoint; nothing here allocates per request.
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
  errorScore = 0;
  consecutiveFailures = 0;
  ejectedUntil = 0;
  ejections = 0;
  private estimateMs: number;
  private estimateAt: number;
  readonly backoff: Backoff;
  /** The preallocated pick result naming this endpoint. */
  readonly picked: PickResult;

  constructor(
    public endpoint: Endpoint,
    readonly upstream: EndpointUpstream,
    readonly metrics: EndpointMetrics,
    initialEstimateMs: number,
    ejectionBackoff: { initialMs: number; maxMs: number },
    now: number,
  ) {
    this.key = endpoint.key;
    this.state = endpoint.state;
    this.estimateMs = initialEstimateMs;
    this.estimateAt = now;
    this.backoff = new Backoff(ejectionBackoff);
    this.picked = { kind: 'endpoint', endpoint: this };
  }

  /** The latency estimate at `now` (ms), decayed since the last observation. */
  latencyEstimate(now: number): number {
    const elapsed = now - this.estimateAt;
    return elapsed <= 0 ? this.estimateMs : this.estimateMs * Math.exp(-elapsed / LATENCY_DECAY_MS);
  }

  /** Feeds one outcome into the estimate: peaks are taken at once, lower values blend in over time. */
  observe(latencyMs: number, failed: boolean, now: number): void {
    const rtt = failed && latencyMs < FAILURE_PENALTY_MS ? FAILURE_PENALTY_MS : latencyMs;
    const current = this.latencyEstimate(now);
    if (rtt > current) {
      this.estimateMs = rtt;
    } else {
      const elapsed = now - this.estimateAt;
      const keep = elapsed <= 0 ? 1 : Math.exp(-elapsed / LATENCY_DECAY_MS);
      // At least a small step towards the observation, so a busy endpoint recovers from one outlier.
      const weight = keep > 0.95 ? 0.95 : keep;
      this.estimateMs = current * weight + rtt * (1 - weight);
    }
    this.estimateAt = now;
    this.errorScore = this.errorScore * (1 - ERROR_SCORE_WEIGHT) + (failed ? ERROR_SCORE_WEIGHT : 0);
  }

  isEjected(now: number): boolean {
    return this.ejectedUntil > now;
  }
}
