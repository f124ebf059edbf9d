import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { clusterIpsOf } from '../route/service-port.js';
import { EndpointSet, makeEndpoint, type Endpoint, type EndpointState } from './endpoint-set.js';

/**
 * What Kubernetes' endpoint conditions mean for new requests. `ready` unknown (omitted) counts as
 * ready and `serving` unknown as `ready`, as the EndpointSlice API says; `terminating` unknown is
 * false. Terminating-but-serving endpoints drain (finish in-flight work, get nothing new); endpoints
 * neither ready nor serving are left out.
 */
export function endpointState(conditions: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null } | undefined): EndpointState | undefined {
  const ready = conditions?.ready ?? true;
  const serving = conditions?.serving ?? ready;
  const terminating = conditions?.terminating ?? false;
  if (ready && !terminating) return 'ready';
  return serving ? 'draining' : undefined;
}

/**
 * Merges every slice of one Service into the endpoints of one Service port. `portName` is the
 * Service port's name ("" when unnamed): EndpointSlice ports carry it with the real target port of
 * the Pods in that slice, which is how a named targetPort that differs per Pod resolves. A slice
 * without ports (a headless Service without ports) means "every port": `fallbackPort` is used.
 */
export function endpointsFromSlices(slices: Iterable<V1EndpointSlice>, portName: string, fallbackPort: number): EndpointSet {
  const endpoints: Endpoint[] = [];
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    const port = slicePort(slice, portName, fallbackPort);
    if (port === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      const state = endpointState(endpoint.conditions);
      if (!state) continue;
      const pod = endpoint.targetRef?.kind === 'Pod' ? endpoint.targetRef.name : undefined;
      for (const address of endpoint.addresses ?? []) {
        endpoints.push(makeEndpoint(address, port, state, { ...(pod ? { pod } : {}), ...(endpoint.zone ? { zone: endpoint.zone } : {}) }));
      }
    }
  }
  return EndpointSet.of(endpoints);
}

function slicePort(slice: V1EndpointSlice, portName: string, fallbackPort: number): number | undefined {
  if (!slice.ports || slice.ports.length === 0) return fallbackPort;
  const match = slice.ports.find((p) => (p.name ?? '') === portName && (p.protocol ?? 'TCP') === 'TCP');
  return match?.port ?? undefined;
}

/**
 * The endpoints of one Service port from the Service's slices: none when the Service has no such TCP
 * port, except for a headless Service without ports, whose endpoints serve whatever port was dialled.
 */
export function endpointsForServicePort(service: V1Service, slices: Iterable<V1EndpointSlice>, port: number): EndpointSet {
  const ports = service.spec?.ports ?? [];
  const servicePort = ports.find((p) => p.port === port && (p.protocol ?? 'TCP') === 'TCP');
  const isHeadlessWithoutPorts = ports.length === 0 && clusterIpsOf(service).length === 0;
  return servicePort || isHeadlessWithoutPorts ? endpointsFromSlices(slices, servicePort?.name ?? '', port) : EndpointSet.EMPTY;
}
