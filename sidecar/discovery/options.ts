import type { HostPort } from '../../src/common/values.js';

/**
 * What `meshlet proxy` tells discovery (parsed and validated from flags and MESHLET_* variables in
 * sidecar/config.ts). `createDiscovery` in ./setup.ts builds the EndpointSource from it.
 */
export interface DiscoveryOptions {
  /** Standalone: `--upstream host:port,host:port` (inline list) — every request is balanced over these. */
  upstreamList?: string[];
  /** Standalone: `--upstream FILE`, a watched JSON array of "host:port" strings. */
  upstreamFile?: string;
  /** Standalone: `--upstream-dns name:port`, a headless Service's A/AAAA records, re-resolved. */
  upstreamDns?: string;
  /** `--services FILE`: watched JSON object { "name:port" | "vip:port": ["ip:port", ...] }. */
  servicesFile?: string;
  /** `--kubeconfig FILE` outside a cluster; in a Pod the projected token is used instead. */
  kubeconfig?: string;
  /** Use in-cluster credentials (the proxy's projected service-account token). */
  inCluster: boolean;
  /** The projected token file, when not the default location. */
  tokenFile?: string;
  /** Namespace that short names resolve in (the Pod's own, or `--namespace`). */
  namespace: string;
  /** `--cluster-domain`, default "cluster.local". */
  clusterDomain: string;
  /** DNS servers for `--upstream-dns` and the in-Pod DNS fallback ("127.0.0.1:5353"); the system's when absent. */
  dnsServers?: string[];
  /** How often DNS names are re-resolved (ms); default 5000. */
  dnsIntervalMs?: number;
  /** `--discovery-server HOST:PORT`: endpoints from `meshlet discovery` instead of the proxy's own watches. */
  discoveryServer?: HostPort;
  /** The projected token (audience meshlet-discovery) presented to the discovery server. */
  discoveryTokenFile?: string;
  /** After the discovery server has been away this long, direct API watches take over (ms). */
  discoveryFallbackMs?: number;
}

/** `--discovery-fallback-ms` unless set: how long the discovery server may be away before direct watches take over. */
export const DEFAULT_DISCOVERY_FALLBACK_MS = 30_000;
