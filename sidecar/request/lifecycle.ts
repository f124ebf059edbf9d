// Imported, not the global: in Node 20 globalThis.performance is a getter run on every use.
import { performance } from 'node:perf_hooks';
import { NoEndpointsError } from '../../src/common/errors.js';
import { PROTOCOL_INDEX, type ProtocolLabel } from '../admin/metrics.js';
import type { EndpointStats } from '../balance/endpoint-stats.js';
import type { PickResult } from '../balance/policy.js';
import { OUTCOME, type Outcome, type TargetBalancer } from '../balance/target-balancer.js';
import type { ConnectionContext } from '../accept/connection-context.js';
import type { RouteResult } from '../route/target-registry.js';
import type { RelayDeps } from '../protocols/handler.js';
import { FAILURES, FAILURE, type FailureKind, type FailureRule } from './failures.js';
import { NO_REPLAY_CHUNKS, type Replayable } from './replay.js';

/** The `reason` label of meshlet_retries_total: why a request went to a second endpoint. */
export const RETRY_REASON = {
  connectFailure: 'connect-failure',
  refusedStream: 'refused-stream',
  goaway: 'goaway',
  deadConnection: 'dead-connection',
} as const;
export type RetryReason = (typeof RETRY_REASON)[keyof typeof RETRY_REASON];

/**
 * One app request through the proxy, whatever its protocol: route -> begin (unknown target,
 * pass-through, pick, no endpoints) -> dispatch to an endpoint -> settle (exactly once per attempt)
 * | retry (once, only a request the endpoint never processed, within the retry budget) | fail (a
 * FAILURE kind, rendered by the protocol from the one table). Each protocol's exchange extends it
 * and supplies the hooks: how an attempt gets its upstream connection, how a failure is written,
 * whether the app still waits, how an attempt is abandoned. Nothing here allocates per request
 * beyond the object itself.
 */
export abstract class RequestLifecycle implements Replayable {
  balancer: TargetBalancer | undefined = undefined;
  /** The current attempt's endpoint, until the attempt is settled. */
  stats: EndpointStats | undefined = undefined;
  readonly startedAt: number;
  /** When the current attempt went out on an established connection: latency samples start here. */
  sentAt = 0;
  /** When the final response head arrived (0: not yet). */
  respondedAt = 0;
  status = 0;
  grpcStatus = '';
  /** Body chunks received so far, while a retry is still possible (null once not). */
  replay: Buffer[] | null = NO_REPLAY_CHUNKS;
  replayBytes = 0;
  replayCharge = 0;
  retried = false;
  /** PROTOCOL_INDEX of `protocol`, for the per-endpoint request counter. */
  private readonly protocolIndex: number;

  constructor(
    readonly deps: RelayDeps,
    readonly protocol: ProtocolLabel,
  ) {
    this.startedAt = performance.now();
    this.protocolIndex = PROTOCOL_INDEX[protocol];
  }

  // ---------------------------------------------------------------- hooks the protocol supplies

  /** The app still waits for this request (not cancelled, not answered, connection open). */
  abstract isLive(): boolean;
  /** Gets the attempt an upstream connection (at once or later) and sends it; failures call connectFailed. */
  protected abstract acquire(stats: EndpointStats): void;
  /** Writes the proxy's own answer for `rule` (or ends the stream or connection if a response began). */
  protected abstract render(rule: FailureRule, message: string): void;
  /** Ends the current attempt's upstream part at once (nothing more is sent to the endpoint). */
  protected abstract abandonAttempt(): void;
  /** Last resort when failing itself threw: the app connection is torn down. */
  protected abstract destroyConnection(err: unknown): void;
  /** How this protocol names the authority in messages ("authority", "host"). */
  protected abstract get authorityName(): string;

  /** The route lookup is asynchronous: stop taking input meanwhile, if the protocol needs to. */
  protected waitForRoute(): void {}

  /** The endpoint for a new request. */
  protected pickEndpoint(balancer: TargetBalancer, now: number): PickResult {
    return balancer.pick(now);
  }

  // ---------------------------------------------------------------- the lifecycle

  /** Looks the route up (cached: synchronous) and begins; a rejected lookup is answered, never left hanging. */
  route(ctx: ConnectionContext, authority: string | undefined): void {
    const route = this.deps.registry.route(ctx, authority);
    if (route instanceof Promise) {
      this.waitForRoute();
      route
        .then(
          (resolved) => this.begin(resolved, authority),
          (err: unknown) => this.routeFailed(err, authority),
        )
        .catch((err: unknown) => this.internalError(err));
    } else {
      this.begin(route, authority);
    }
  }

  private routeFailed(err: unknown, authority: string | undefined): void {
    this.deps.log.error({ err, authority }, 'route lookup failed');
    this.fail(FAILURE.routeFailed, `meshlet: route lookup for ${this.authorityName} "${authority ?? ''}" failed: ${(err as Error)?.message ?? String(err)}`);
  }

  private begin(balancer: RouteResult, authority: string | undefined): void {
    if (!this.isLive()) return;
    if (balancer === null) {
      this.fail(FAILURE.unknownTarget, `meshlet: no target known for ${this.authorityName} "${authority ?? ''}" and the connection has no original destination`);
      return;
    }
    if (balancer.isPassthrough) this.deps.metrics.passthrough(this.protocol, 'unknown-target');
    this.balancer = balancer;
    const pick = this.pickEndpoint(balancer, this.startedAt);
    if (pick.kind === 'unavailable') {
      this.fail(FAILURE.noEndpoints, new NoEndpointsError(balancer.id, pick.reason).message);
      return;
    }
    this.dispatch(pick.endpoint);
  }

  /** Sends the request (again, for a retry) to `stats`. */
  protected dispatch(stats: EndpointStats): void {
    this.stats = stats;
    this.acquire(stats);
  }

  /** The attempt is going out on a connection now: counted, and its latency starts. */
  protected markSent(stats: EndpointStats): void {
    stats.metrics.request(this.protocolIndex);
    this.sentAt = performance.now();
  }

  /** No connection to `stats`: retried elsewhere when allowed, else answered connect-failure. */
  connectFailed(stats: EndpointStats, err: Error): void {
    if (!this.isLive()) {
      this.settle(OUTCOME.cancelled);
      return;
    }
    this.settle(OUTCOME.connectFailure);
    if (this.retry(stats, RETRY_REASON.connectFailure)) return;
    this.fail(FAILURE.connectFailure, `meshlet: ${err.message}`);
  }

  /** Retries once on another endpoint, when the budget allows; true when a retry is under way. */
  retry(failed: EndpointStats, reason: RetryReason): boolean {
    if (this.retried || this.replay === null || !this.isLive()) return false;
    const balancer = this.balancer!;
    const now = performance.now();
    if (!balancer.retryBudget.tryWithdraw(now)) return false;
    const pick = balancer.pickOther(failed, now);
    if (pick.kind === 'unavailable') return false;
    this.retried = true;
    this.deps.metrics.retry(balancer.id, reason);
    this.dispatch(pick.endpoint);
    return true;
  }

  /** Ends the current attempt's accounting on its endpoint (exactly once per attempt). */
  settle(outcome: Outcome): void {
    const stats = this.stats;
    if (stats === undefined) return;
    this.stats = undefined;
    const now = performance.now();
    const respondedAt = this.respondedAt;
    const latency = (respondedAt > 0 ? respondedAt : now) - (this.sentAt > 0 ? this.sentAt : this.startedAt);
    this.sentAt = 0;
    if (respondedAt > 0) stats.metrics.response(this.status, this.grpcStatus, (now - this.startedAt) / 1000);
    this.balancer!.finish(stats, latency, outcome, now);
  }

  /** The request failed in the proxy: counted under the kind's reason and answered as the table says. */
  fail(kind: FailureKind, message: string): void {
    if (!this.isLive()) return;
    const rule = FAILURES[kind]!;
    this.deps.metrics.proxyError(this.balancer?.id ?? 'unknown', rule.reason);
    this.render(rule, message);
  }

  /** A bug of ours surfaced outside a connection's own event handling: this request fails, nothing else. */
  internalError(err: unknown): void {
    this.deps.log.error({ err, protocol: this.protocol }, 'relay internal error: the request fails, the proxy goes on');
    try {
      this.abandonAttempt();
      this.settle(OUTCOME.failure);
      this.fail(FAILURE.internal, `meshlet internal error: ${(err as Error)?.message ?? String(err)}`);
    } catch {
      this.destroyConnection(err);
    }
  }
}
