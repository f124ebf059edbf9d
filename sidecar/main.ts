import type { AddressInfo, Socket } from 'node:net';
import type { CommandSpec, ParsedCommand } from '../src/common/config.js';
import { ADMIN_PATH } from '../src/common/contract.js';
import type { Logger } from '../src/common/log-format.js';
import { createLineLogger } from './log/line-logger.js';
import type { HostPort } from '../src/common/values.js';
import { AdminServer } from './admin/server.js';
import { buildDebugView } from './admin/debug-view.js';
import { ProxyMetrics } from './admin/metrics.js';
import { DEFAULT_EJECTION } from './balance/ejection.js';
import { DEFAULT_RETRY_BUDGET } from './balance/retry-budget.js';
import { registerBuiltinPolicies } from './balance/setup.js';
import { TargetRegistry } from './route/target-registry.js';
import { PROXY_COMMAND, parseProxyConfig, type ProxyConfig } from './config.js';
import { createDiscovery } from './discovery/setup.js';
import type { EndpointSource } from './discovery/source.js';
import { ProxyListener } from './accept/listener.js';
import { originalDstSupport, readOriginalDst } from './accept/original-dst.js';
import { Http1Relay } from './protocols/http1.js';
import { Http2Relay } from './protocols/http2.js';
import { OpaqueRelay } from './protocols/opaque.js';
import { DEFAULT_UPSTREAM } from './upstream/endpoint-upstream.js';

export const command: CommandSpec = PROXY_COMMAND;

export interface ProxyDeps {
  source: EndpointSource;
  log: Logger;
  /** In-Pod mode: how to learn a connection's original destination (the SO_ORIGINAL_DST addon by default). */
  readOriginalDst?: (socket: Socket) => HostPort | undefined;
}

export interface RunningProxy {
  address: AddressInfo;
  admin: AddressInfo;
  debugAdmin: AddressInfo | undefined;
  registry: TargetRegistry;
  metrics: ProxyMetrics;
  listener: ProxyListener;
  /**
   * SIGTERM behaviour: keep serving (new connections and requests too) until the app's connections
   * have all closed or `graceMs` has passed, then close.
   */
  shutdown(graceMs: number): Promise<void>;
  /** Closes everything now. */
  close(): Promise<void>;
}

/** Sources → balancers → relays → listener → admin. Returns once everything listens. */
export async function startProxy(config: ProxyConfig, deps: ProxyDeps): Promise<RunningProxy> {
  registerBuiltinPolicies();
  const log = deps.log.child({ component: 'proxy' });
  const metrics = new ProxyMetrics(config.maxEndpointLabels);
  const registry = new TargetRegistry(
    deps.source,
    config.lbPolicy,
    { ejection: DEFAULT_EJECTION, slowStartMs: config.slowStartMs, retryBudget: DEFAULT_RETRY_BUDGET, upstream: { ...DEFAULT_UPSTREAM, connectTimeoutMs: config.connectTimeoutMs, pingMs: config.upstreamPingMs } },
    metrics,
    deps.log.child({ component: 'balancer' }),
  );
  const relayDeps = { registry, metrics, log: deps.log.child({ component: 'relay' }), opaqueTo: config.opaqueTo, connectTimeoutMs: config.connectTimeoutMs };
  const relays = {
    http2: new Http2Relay(relayDeps, { idleTimeoutMs: config.h2IdleTimeoutMs }),
    http1: new Http1Relay(relayDeps, { headerTimeoutMs: config.http1HeaderTimeoutMs, idleTimeoutMs: config.http1IdleTimeoutMs }),
    opaque: new OpaqueRelay(relayDeps),
  };
  let readDst = deps.readOriginalDst;
  if (config.mode === 'pod' && readDst === undefined) {
    const support = originalDstSupport();
    if (!support.available) log.warn({ reason: support.reason }, 'original destinations unavailable: unknown targets cannot pass through');
    readDst = readOriginalDst;
  }
  const listener = new ProxyListener({ listen: config.listen, detectTimeoutMs: config.detectTimeoutMs, maxConnections: config.maxAppConnections, readOriginalDst: readDst }, relays, metrics, deps.log.child({ component: 'listener' }));
  let shuttingDown = false;
  const admin = new AdminServer(
    config.admin,
    {
      [ADMIN_PATH.live]: () => ({ status: 200, contentType: 'text/plain', body: 'live\n' }),
      [ADMIN_PATH.ready]: () => ({ status: 200, contentType: 'text/plain', body: shuttingDown ? 'ready (shutting down, still serving)\n' : 'ready\n' }),
      [ADMIN_PATH.metrics]: () => ({
        status: 200,
        contentType: 'text/plain; version=0.0.4; charset=utf-8',
        body: metrics.render({
          *upstreamConnections() {
            for (const b of registry.all()) for (const s of b.endpoints()) yield { target: b.id, endpoint: s.metrics.endpoint, value: s.upstream.connections };
          },
          *endpointCounts() {
            for (const b of registry.all()) {
              const synced = b.lastSyncedAt;
              yield { target: b.id, ...b.counts(), stalenessSeconds: b.stale && synced !== undefined ? (Date.now() - synced) / 1000 : 0 };
            }
          },
        }),
      }),
    },
    log,
  );
  let debugAdmin = config.debugAdmin
    ? new AdminServer(config.debugAdmin, { '/debug/endpoints': () => ({ status: 200, contentType: 'application/json', body: JSON.stringify(buildDebugView(registry), null, 2) }) }, log)
    : undefined;

  const address = await listener.listen();
  const adminAddress = await admin.listen();
  // The debug view is optional: a taken port (a second standalone proxy on one machine) costs the
  // view, never the proxy.
  const debugAddress = await debugAdmin?.listen().catch((err: Error) => {
    log.warn({ err, debugAdmin: config.debugAdmin }, 'debug endpoint table not served: its address is unavailable (set --debug-admin HOST:PORT or off)');
    debugAdmin = undefined;
    return undefined;
  });
  log.info(
    {
      mode: config.mode,
      address: address.address,
      port: address.port,
      admin: { address: adminAddress.address, port: adminAddress.port },
      debugAdmin: debugAddress ? { address: debugAddress.address, port: debugAddress.port } : undefined,
      policy: config.lbPolicy,
      source: deps.source.name,
    },
    'listening',
  );

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      await listener.stopAccepting();
      relays.http2.close();
      relays.http1.close();
      relays.opaque.close();
      listener.destroyAll();
      registry.close();
      await admin.close();
      await debugAdmin?.close();
    })();
    return closed;
  };
  const shutdown = async (graceMs: number): Promise<void> => {
    shuttingDown = true;
    const started = Date.now();
    log.info({ openConnections: listener.openConnections, graceMs, quietMs: config.shutdownQuietMs }, 'shutting down: serving until the app closes its connections');
    await new Promise<void>((resolve) => {
      // Done when the app has had no open connection for quietMs, or at the grace deadline. The quiet
      // window covers an app that gets SIGTERM with us (no native sidecars) and connects again while it
      // shuts down: refusing those last calls is the Linkerd bug we must not have.
      let quiet: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(deadline);
        clearTimeout(quiet);
        listener.off('idle', armQuiet);
        listener.off('busy', disarmQuiet);
        resolve();
      };
      const armQuiet = () => {
        clearTimeout(quiet);
        quiet = setTimeout(done, Math.min(config.shutdownQuietMs, graceMs));
      };
      const disarmQuiet = () => clearTimeout(quiet);
      const deadline = setTimeout(done, graceMs);
      listener.on('idle', armQuiet);
      listener.on('busy', disarmQuiet);
      if (listener.openConnections === 0) armQuiet();
    });
    log.info({ openConnections: listener.openConnections, durationMs: Date.now() - started }, 'shutdown complete');
    await close();
  };
  return { address, admin: adminAddress, debugAdmin: debugAddress, registry, metrics, listener, shutdown, close };
}

/** `meshlet proxy`: runs until SIGTERM/SIGINT, then shuts down gracefully (a second signal exits at once). */
export async function run(parsed: ParsedCommand): Promise<number> {
  const config = parseProxyConfig(parsed.values);
  const root = createLineLogger({ level: config.logLevel });
  process.on('uncaughtException', (err) => {
    root.fatal({ err }, 'uncaught exception');
    process.exit(70);
  });
  const source = await createDiscovery(config.discovery, root);
  const proxy = await startProxy(config, { source, log: root });
  await new Promise<void>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        root.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      signalled = true;
      root.info({ signal }, 'signal received');
      void proxy.shutdown(config.shutdownGraceMs).then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await source.close();
  root.flush();
  return 0;
}
