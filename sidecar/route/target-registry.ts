import { LB_POLICY, type LbPolicyName } from '../../src/common/contract.js';
import type { Logger } from '../../src/common/log-format.js';
import type { ProxyMetrics } from '../admin/metrics.js';
import { EndpointSet, makeEndpoint } from '../discovery/endpoint-set.js';
import type { EndpointSource, Target } from '../discovery/source.js';
import type { ConnectionContext } from '../accept/connection-context.js';
import { createPolicy } from '../balance/policy.js';
import { TargetBalancer, type BalancerOptions } from '../balance/target-balancer.js';

/** How long "this source does not know that target" is remembered before asking again. */
export const NEGATIVE_ROUTE_TTL_MS = 5_000;
/** Route cache entries kept at most; the cache starts over past this (bounded memory). */
const MAX_CACHED_ROUTES = 10_000;
/**
 * A target with no request for this long, and nothing in flight, is let go: its balancer closes its
 * upstream connections and unsubscribes, so discovery can stop watching it. The next request to it
 * resolves it again.
 */
export const IDLE_TARGET_MS = 5 * 60_000;
const IDLE_SWEEP_INTERVAL_MS = 30_000;
/** The `target` label of requests passed through to their original destination. */
export const PASSTHROUGH_TARGET = 'passthrough';

/** The balancer to use, or null: the target is unknown and there is no original destination. */
export type RouteResult = TargetBalancer | null;

interface Negative {
  until: number;
}

/**
 * Resolves (authority, original destination) to a target balancer through the endpoint source,
 * once: results are cached so the hot path does a Map lookup, never a promise per request. Holds
 * one balancer per target (subscribed while held) and one pass-through balancer per original
 * destination the source does not know.
 */
export class TargetRegistry {
  private readonly routes = new Map<string, TargetBalancer | Negative | Promise<RouteResult>>();
  private readonly balancers = new Map<string, TargetBalancer>();
  private readonly passthroughs = new Map<string, TargetBalancer>();
  private readonly sweepTimer: NodeJS.Timeout;

  constructor(
    private readonly source: EndpointSource,
    private readonly policyName: LbPolicyName,
    private readonly options: BalancerOptions,
    private readonly metrics: ProxyMetrics,
    private readonly log: Logger,
  ) {
    this.sweepTimer = setInterval(() => this.releaseIdle(performance.now()), IDLE_SWEEP_INTERVAL_MS).unref();
  }

  /** The route for one request: synchronous when cached (the common case). */
  route(ctx: ConnectionContext, authority: string | undefined): RouteResult | Promise<RouteResult> {
    const key = authority ?? '';
    const local = ctx.routes.get(key);
    if (local !== undefined && !local.isClosed) return local;
    const cacheKey = `${ctx.dstKey}|${key}`;
    const cached = this.routes.get(cacheKey);
    if (cached !== undefined) {
      if (cached instanceof TargetBalancer) {
        ctx.routes.set(key, cached);
        return cached;
      }
      if (cached instanceof Promise) return cached;
      if (cached.until > Date.now()) return this.unknownTarget(ctx);
    }
    if (this.routes.size >= MAX_CACHED_ROUTES) this.routes.clear();
    const pending = this.resolve(ctx, authority, cacheKey);
    this.routes.set(cacheKey, pending);
    // A lookup that threw is not remembered: the next request to this authority tries again.
    pending.catch(() => {
      if (this.routes.get(cacheKey) === pending) this.routes.delete(cacheKey);
    });
    return pending;
  }

  all(): IterableIterator<TargetBalancer> {
    return [...this.balancers.values(), ...this.passthroughs.values()].values();
  }

  /** Lets go of every balancer unused for `idleMs` with nothing in flight; returns how many. */
  releaseIdle(now: number, idleMs: number = IDLE_TARGET_MS): number {
    let released = 0;
    for (const map of [this.balancers, this.passthroughs]) {
      for (const [key, balancer] of map) {
        if (now - balancer.lastPickAt < idleMs || !balancer.isIdle()) continue;
        balancer.close();
        map.delete(key);
        released++;
        if (!balancer.isPassthrough) this.log.info({ target: balancer.id }, 'target released');
      }
    }
    if (released > 0) {
      for (const [cacheKey, cached] of this.routes) if (cached instanceof TargetBalancer && cached.isClosed) this.routes.delete(cacheKey);
    }
    return released;
  }

  close(): void {
    clearInterval(this.sweepTimer);
    for (const balancer of this.all()) balancer.close();
    this.balancers.clear();
    this.passthroughs.clear();
    this.routes.clear();
  }

  private async resolve(ctx: ConnectionContext, authority: string | undefined, cacheKey: string): Promise<RouteResult> {
    let target: Target | undefined;
    try {
      target = await this.source.resolve({ authority, originalDst: ctx.originalDst });
    } catch (err) {
      this.log.warn({ authority, originalDst: ctx.dstKey || undefined, err }, 'target resolution failed');
    }
    if (target === undefined) {
      this.routes.set(cacheKey, { until: Date.now() + NEGATIVE_ROUTE_TTL_MS });
      return this.unknownTarget(ctx);
    }
    let balancer = this.balancers.get(target.id);
    if (balancer === undefined || balancer.target !== target) {
      balancer?.close();
      balancer = new TargetBalancer(target, createPolicy(this.policyName, { slowStartMs: this.options.slowStartMs }), this.options, this.metrics, this.log.child({ target: target.id }));
      this.balancers.set(target.id, balancer);
      this.log.info({ target: target.id, policy: this.policyName, endpoints: target.endpoints.size }, 'target in use');
    }
    this.routes.set(cacheKey, balancer);
    ctx.routes.set(authority ?? '', balancer);
    return balancer;
  }

  /** The original destination as a one-endpoint target, or null without one. */
  private unknownTarget(ctx: ConnectionContext): RouteResult {
    const dst = ctx.originalDst;
    if (dst === undefined) return null;
    let balancer = this.passthroughs.get(ctx.dstKey);
    if (balancer === undefined) {
      const target: Target = {
        id: PASSTHROUGH_TARGET,
        endpoints: EndpointSet.of([makeEndpoint(dst.host, dst.port)]),
        lastSyncedAt: undefined,
        stale: false,
        subscribe: () => () => undefined,
      };
      balancer = new TargetBalancer(target, createPolicy(LB_POLICY.roundRobin, { slowStartMs: 0 }), this.options, this.metrics, this.log.child({ target: PASSTHROUGH_TARGET }));
      balancer.isPassthrough = true;
      this.passthroughs.set(ctx.dstKey, balancer);
    }
    return balancer;
  }
}
