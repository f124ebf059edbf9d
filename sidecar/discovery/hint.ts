import { isIP } from 'node:net';
import { DEFAULT_HTTP_PORT, parseServiceHost, splitAuthority, type ServiceName } from '../route/authority.js';
import type { Target, TargetHint } from './source.js';

/** How a source finds a Target: by a Service's name, or by an address (a ClusterIP or a Pod IP). */
export interface HintLookups {
  byService(named: ServiceName, port: number | undefined): Promise<Target | undefined>;
  byAddress(ip: string, port: number): Promise<Target | undefined>;
}

/**
 * The order every Kubernetes-backed source follows: the authority first (a Service name, short
 * names in `namespace`, or an IP literal), then the connection's original destination.
 */
export async function resolveHint(hint: TargetHint, naming: { namespace: string; clusterDomain: string }, lookups: HintLookups): Promise<Target | undefined> {
  const authority = hint.authority === undefined ? undefined : splitAuthority(hint.authority);
  if (authority) {
    const port = authority.port ?? hint.originalDst?.port;
    const named = parseServiceHost(authority.host, naming.namespace, naming.clusterDomain);
    const target = named ? await lookups.byService(named, port) : isIP(authority.host) ? await lookups.byAddress(authority.host, port ?? DEFAULT_HTTP_PORT) : undefined;
    if (target) return target;
  }
  if (hint.originalDst) return lookups.byAddress(hint.originalDst.host, hint.originalDst.port);
  return undefined;
}
