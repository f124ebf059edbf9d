import type { Logger } from '../../src/common/log-format.js';
import { parseHostPort, HOST_PORT_ALLOWED } from '../../src/common/values.js';
import { CompositeSource } from './composite.js';
import { DnsSource, type DnsSourceOptions } from './dns.js';
import { InvalidDiscoveryInputError } from './errors.js';
import { DEFAULT_DISCOVERY_FALLBACK_MS, type DiscoveryOptions } from './options.js';
import { ServicesFileSource } from './services-file.js';
import type { EndpointSource } from './source.js';
import { StaticSource } from './static.js';
import type { KubernetesSource } from './kubernetes.js';
import { DEFAULT_DISCOVERY_TOKEN_FILE } from '../../src/common/contract.js';

/**
 * Builds the proxy's EndpointSource from its options. Sources are asked in this order:
 * static upstream (catch-all: every request goes there) → services file → Kubernetes (through the
 * shared watcher with `--discovery-server`, falling back to direct watches; else direct) → DNS
 * (`--upstream-dns`, a catch-all; or in a Pod the fallback for Service names while the API is
 * unreachable). Throws a MeshletError when a list, file or credential given at start is unusable.
 */
export async function createDiscovery(options: DiscoveryOptions, log: Logger): Promise<EndpointSource> {
  const dlog = log.child({ component: 'discovery' });
  const sources: EndpointSource[] = [];
  try {
    if (options.upstreamList && options.upstreamList.length > 0) sources.push(StaticSource.fromList(options.upstreamList));
    if (options.upstreamFile) sources.push(await StaticSource.fromFile(options.upstreamFile, dlog.child({ source: 'static' })));
    if (options.servicesFile) sources.push(await ServicesFileSource.open(options.servicesFile, options, dlog.child({ source: 'services' })));
    const dnsOptions: DnsSourceOptions = {
      namespace: options.namespace,
      clusterDomain: options.clusterDomain,
      ...(options.dnsServers ? { servers: options.dnsServers } : {}),
      ...(options.dnsIntervalMs ? { intervalMs: options.dnsIntervalMs } : {}),
    };
    if (options.discoveryServer) {
      const { SharedWatcherSource } = await import('./shared-watcher-source.js');
      const hasCredentials = options.kubeconfig !== undefined || options.inCluster;
      const shared = new SharedWatcherSource(
        {
          server: options.discoveryServer,
          tokenFile: options.discoveryTokenFile ?? DEFAULT_DISCOVERY_TOKEN_FILE,
          namespace: options.namespace,
          clusterDomain: options.clusterDomain,
          fallbackAfterMs: options.discoveryFallbackMs ?? DEFAULT_DISCOVERY_FALLBACK_MS,
          ...(hasCredentials ? { createFallback: () => createKubernetesSource(options, dlog.child({ source: 'kubernetes-fallback' })) } : {}),
        },
        dlog.child({ source: 'shared-watcher' }),
      );
      sources.push(shared);
      if (!options.upstreamDns) sources.push(new DnsSource({ ...dnsOptions, isActive: () => !shared.isReachable }, dlog.child({ source: 'dns-fallback' })));
    } else if (options.kubeconfig || options.inCluster) {
      const kube = await createKubernetesSource(options, dlog.child({ source: 'kubernetes' }));
      sources.push(kube);
      if (!options.upstreamDns) sources.push(new DnsSource({ ...dnsOptions, isActive: () => !kube.isApiReachable }, dlog.child({ source: 'dns-fallback' })));
    }
    if (options.upstreamDns) {
      const upstream = parseHostPort(options.upstreamDns);
      if (!upstream.ok) throw new InvalidDiscoveryInputError('--upstream-dns', [`"${options.upstreamDns}" is not valid; allowed: ${HOST_PORT_ALLOWED} (a headless Service name and port)`]);
      sources.push(new DnsSource({ ...dnsOptions, upstream: upstream.value }, dlog.child({ source: 'dns' })));
    }
  } catch (err) {
    await Promise.allSettled(sources.map((s) => s.close()));
    throw err;
  }
  dlog.info({ sources: sources.map((s) => s.name) }, 'discovery ready');
  return new CompositeSource(sources);
}

/** Direct API watches; loaded only when asked for: a standalone proxy never holds the Kubernetes client code. */
async function createKubernetesSource(options: DiscoveryOptions, log: Logger): Promise<KubernetesSource> {
  const [{ loadKubeConfig }, { KubernetesSource }] = await Promise.all([import('./kube-config.js'), import('./kubernetes.js')]);
  return new KubernetesSource(await loadKubeConfig(options), { namespace: options.namespace, clusterDomain: options.clusterDomain }, log);
}
