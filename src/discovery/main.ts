import { once } from 'node:events';
import type { CommandSpec, ParsedCommand } from '../common/config.js';
import { collectProblems } from '../common/config.js';
import { DEFAULT_LOG_LEVEL, DISCOVERY_PORT, DISCOVERY_TOKEN_AUDIENCE, ENV, LOG_LEVELS } from '../common/contract.js';
import { createLogger, type Logger } from '../common/logger.js';
import { HOST_PORT_ALLOWED, parseHostPort, type HostPort } from '../common/values.js';
import { MESHLET_VERSION } from '../common/version.js';
import { KubeClient } from '../../sidecar/discovery/kube-client.js';
import { loadKubeConfig } from '../../sidecar/discovery/kube-config.js';
import type { WatchTuning } from '../../sidecar/discovery/resource-watch.js';
import { ClusterIndex } from './cluster-index.js';
import { DiscoveryServer, type DiscoveryServerOptions } from './server.js';
import { TokenReviewer } from './token-review.js';

export const command: CommandSpec = {
  name: 'discovery',
  summary: 'Run the shared watcher: watch Services and EndpointSlices once, stream them to sidecars',
  flags: {
    listen: { type: 'string', placeholder: 'HOST:PORT', env: 'MESHLET_DISCOVERY_LISTEN', default: `0.0.0.0:${DISCOVERY_PORT}`, description: 'Serve sidecars (POST /v1/subscriptions), /healthz, /readyz and /metrics here' },
    kubeconfig: { type: 'string', placeholder: 'FILE', env: 'MESHLET_KUBECONFIG', description: 'Outside a cluster: the cluster to watch (in a Pod: its service account)' },
    'log-level': { type: 'string', placeholder: 'LEVEL', env: ENV.logLevel, default: DEFAULT_LOG_LEVEL, description: LOG_LEVELS.join(', ') },
  },
  details: `
Watches every Service and EndpointSlice of the cluster once (needs list and watch on both, and create
on tokenreviews) and streams to each sidecar started with --discovery-server the Services and
addresses it asks for. Sidecars authenticate with a projected token for the audience
"${DISCOVERY_TOKEN_AUDIENCE}"; any authenticated caller may learn the endpoints of any Service.
Protocol: sidecar/discovery/shared-protocol.ts.`,
};

export interface DiscoveryCommandOptions {
  listen: HostPort;
  kubeconfig?: string;
  logLevel: string;
}

export interface RunningDiscovery {
  port: number;
  server: DiscoveryServer;
  index: ClusterIndex;
  close(): Promise<void>;
}

/** Starts the index and the server (the caller decides when to close); `tuning` is for tests. */
export async function startDiscovery(options: Omit<DiscoveryCommandOptions, 'logLevel'>, logger: Logger, extra: { server?: Partial<DiscoveryServerOptions>; tuning?: Partial<WatchTuning> } = {}): Promise<RunningDiscovery> {
  const log = logger.child({ component: 'discovery-server' });
  const endpoint = await loadKubeConfig({ ...(options.kubeconfig ? { kubeconfig: options.kubeconfig } : {}), inCluster: options.kubeconfig === undefined });
  const client = new KubeClient(endpoint, 'meshlet-discovery');
  const reviewer = new TokenReviewer(client, { audience: DISCOVERY_TOKEN_AUDIENCE }, log.child({ component: 'token-review' }));
  const server = new DiscoveryServer({ host: options.listen.host, port: options.listen.port, ...extra.server }, reviewer, log);
  const index = new ClusterIndex(client, server, log.child({ component: 'cluster-index' }), extra.tuning);
  server.attach(index);
  index.start();
  const address = await server.listen();
  log.info({ host: options.listen.host, port: address.port, version: MESHLET_VERSION }, 'listening');
  return {
    port: address.port,
    server,
    index,
    close: async () => {
      index.stop();
      await server.close();
      client.close();
    },
  };
}

export function parseDiscoveryOptions(parsed: ParsedCommand): DiscoveryCommandOptions {
  const v = parsed.values;
  const listenText = String(v['listen']);
  const logLevel = String(v['log-level']);
  let listen: HostPort | undefined;
  collectProblems([
    () => {
      const r = /:0$/.test(listenText) ? parseHostPort(listenText.replace(/:0$/, ':1')) : parseHostPort(listenText);
      if (!r.ok) return `--listen: "${listenText}" is not valid; allowed: ${HOST_PORT_ALLOWED}`;
      listen = { ...r.value, port: /:0$/.test(listenText) ? 0 : r.value.port };
      return undefined;
    },
    () => (LOG_LEVELS.includes(logLevel as never) ? undefined : `--log-level: "${logLevel}" is not valid; allowed: ${LOG_LEVELS.join(', ')}`),
  ]);
  return { listen: listen!, logLevel, ...(typeof v['kubeconfig'] === 'string' ? { kubeconfig: v['kubeconfig'] } : {}) };
}

export async function run(parsed: ParsedCommand): Promise<number> {
  const options = parseDiscoveryOptions(parsed);
  const logger = createLogger({ level: options.logLevel as never });
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  const stopSignal = Promise.race([once(process, 'SIGTERM'), once(process, 'SIGINT')]);
  const discovery = await startDiscovery(options, logger);
  await stopSignal;
  logger.info({ connections: discovery.server.connectionCount }, 'shutting down; sidecars reconnect to another replica');
  await discovery.close();
  logger.flush();
  return 0;
}
