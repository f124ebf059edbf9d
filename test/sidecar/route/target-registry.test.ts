import t from 'tap';
import { createLogger } from '../../../src/common/logger.js';
import { ProxyMetrics } from '../../../sidecar/admin/metrics.js';
import { DEFAULT_EJECTION } from '../../../sidecar/balance/ejection.js';
import { registerBuiltinPolicies } from '../../../sidecar/balance/setup.js';
import { OUTCOME, type TargetBalancer } from '../../../sidecar/balance/target-balancer.js';
import { IDLE_TARGET_MS, TargetRegistry } from '../../../sidecar/route/target-registry.js';
import type { Target, TargetHint } from '../../../sidecar/discovery/source.js';
import type { ConnectionContext } from '../../../sidecar/accept/connection-context.js';
import { DEFAULT_UPSTREAM } from '../../../sidecar/upstream/endpoint-upstream.js';
import { TestSource } from '../../helpers/proxy-harness.js';

/**
 * A sidecar must not hold on to every Service it ever called: a target unused for a while is let
 * go (its watch can stop), and the next request to it resolves it again.
 */
registerBuiltinPolicies();

function setup<S extends TestSource>(source: S = new TestSource(['198.18.0.1:8080', '198.18.0.2:8080']) as S) {
  const registry = new TargetRegistry(
    source,
    'round-robin',
    { ejection: DEFAULT_EJECTION, slowStartMs: 0, retryBudget: { ratio: 0.2, minPerSecond: 0, maxTokens: 10 }, upstream: DEFAULT_UPSTREAM },
    new ProxyMetrics(),
    createLogger({ level: 'silent' }),
  );
  const connection = (): ConnectionContext => ({ connId: 1, originalDst: undefined, dstKey: '', routes: new Map() });
  return { source, registry, connection };
}

async function routeOf(registry: TargetRegistry, ctx: ConnectionContext, authority: string): Promise<TargetBalancer> {
  const balancer = await registry.route(ctx, authority);
  if (balancer === null) throw new Error('no route');
  return balancer;
}

t.test('a target unused for the idle period is released and its subscription ends', async (t) => {
  const { source, registry, connection } = setup();
  t.teardown(() => registry.close());
  const ctx = connection();
  const balancer = await routeOf(registry, ctx, 'web:8080');
  t.equal(source.target.subscriberCount, 1, 'the balancer follows the target while in use');

  const pickedAt = balancer.lastPickAt;
  t.equal(registry.releaseIdle(pickedAt + IDLE_TARGET_MS / 2), 0, 'not released before the idle period');
  t.equal(registry.releaseIdle(pickedAt + IDLE_TARGET_MS + 1), 1, 'released after it');
  t.equal(source.target.subscriberCount, 0, 'discovery is no longer asked to keep it current');
  t.ok(balancer.isClosed);

  const again = await routeOf(registry, ctx, 'web:8080');
  t.not(again, balancer, 'the next request on the same connection resolves it again');
  t.equal(source.target.subscriberCount, 1);
  t.equal(source.resolved.length, 2, 'the source was asked twice in all');
  const pick = again.pick(performance.now());
  t.equal(pick.kind, 'endpoint', 'and it balances as before');
});

t.test('a target with a request in flight is kept however long it has been', async (t) => {
  const { source, registry, connection } = setup();
  t.teardown(() => registry.close());
  const balancer = await routeOf(registry, connection(), 'web:8080');
  const pick = balancer.pick(balancer.lastPickAt);
  if (pick.kind !== 'endpoint') throw new Error(pick.reason);
  t.equal(registry.releaseIdle(balancer.lastPickAt + 10 * IDLE_TARGET_MS), 0, 'a long request keeps its target');
  t.equal(source.target.subscriberCount, 1);
  balancer.finish(pick.endpoint, 1, OUTCOME.success, balancer.lastPickAt + 10 * IDLE_TARGET_MS);
  t.equal(registry.releaseIdle(balancer.lastPickAt + 10 * IDLE_TARGET_MS), 1, 'released once it finished');
});

/** Resolves the first lookup to a target whose subscription throws (a bug in the balancer's making), then normally. */
class FailOnceSource extends TestSource {
  private hasFailed = false;
  override async resolve(hint: TargetHint): Promise<Target | undefined> {
    if (this.hasFailed) return super.resolve(hint);
    this.hasFailed = true;
    this.resolved.push(hint);
    const refuse = () => {
      throw new Error('subscription refused');
    };
    return new Proxy(this.target, { get: (target, key) => (key === 'subscribe' ? refuse : Reflect.get(target, key, target)) });
  }
}

t.test('a route lookup that failed is tried again on the next request, not remembered', async (t) => {
  const { source, registry, connection } = setup(new FailOnceSource(['198.18.0.1:8080']));
  t.teardown(() => registry.close());
  await t.rejects(registry.route(connection(), 'web:8080') as Promise<unknown>, /subscription refused/, 'the first lookup fails');
  const balancer = await routeOf(registry, connection(), 'web:8080');
  t.equal(source.resolved.length, 2, 'the second request asked the source again');
  t.equal(balancer.pick(performance.now()).kind, 'endpoint', 'and is balanced');
});
