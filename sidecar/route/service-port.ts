import type { V1EndpointSlice, V1Service, V1ServicePort } from '@kubernetes/client-node';

/** TCP ports of a Service (meshlet balances TCP only). */
function tcpPorts(service: V1Service): V1ServicePort[] {
  return (service.spec?.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP');
}

/**
 * The Service port a request meant: the one with the port it named; when it named none (an authority
 * without a port, no original destination), the Service's only port, else 80 if the Service has it.
 */
export function pickServicePort(service: V1Service, port: number | undefined): V1ServicePort | undefined {
  const ports = tcpPorts(service);
  if (port !== undefined) return ports.find((p) => p.port === port);
  return ports.length === 1 ? ports[0] : ports.find((p) => p.port === 80);
}

/** The Service port that a ClusterIP:port connection was headed for. */
export function servicePortForClusterIp(service: V1Service, ip: string, port: number): V1ServicePort | undefined {
  if (!clusterIpsOf(service).includes(ip)) return undefined;
  return tcpPorts(service).find((p) => p.port === port);
}

/**
 * The Service port behind a connection to a Pod IP:port: the slice holding that address names the
 * port (the EndpointSlice port carries the Service port's name and the Pod's real port). For a slice
 * without ports (headless, no ports), the Service port with the same number.
 */
export function servicePortForPodAddress(service: V1Service, slices: Iterable<V1EndpointSlice>, ip: string, port: number): V1ServicePort | undefined {
  const ports = tcpPorts(service);
  for (const slice of slices) {
    if (!(slice.endpoints ?? []).some((e) => (e.addresses ?? []).includes(ip))) continue;
    if (!slice.ports || slice.ports.length === 0) return ports.find((p) => p.port === port) ?? syntheticPort(port);
    const slicePort = slice.ports.find((p) => p.port === port && (p.protocol ?? 'TCP') === 'TCP');
    if (!slicePort) continue;
    const match = ports.find((p) => (p.name ?? '') === (slicePort.name ?? ''));
    if (match) return match;
  }
  return undefined;
}

/** A headless Service without ports still has endpoints: the port the app dialled is the one meant. */
function syntheticPort(port: number): V1ServicePort {
  return { name: '', port, protocol: 'TCP', targetPort: port };
}

/** The ClusterIPs of a Service, none for a headless one. */
export function clusterIpsOf(service: V1Service): string[] {
  return (service.spec?.clusterIPs ?? (service.spec?.clusterIP ? [service.spec.clusterIP] : [])).filter((ip) => ip !== 'None' && ip !== '');
}
