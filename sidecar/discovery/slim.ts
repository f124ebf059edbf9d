import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';

/** The label the EndpointSlice controller puts on every slice of a Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** What a Service is reduced to before it is held or sent: its name, type, ClusterIPs and ports. */
export function slimService(service: V1Service): V1Service {
  const { metadata, spec } = service;
  return {
    metadata: { ...(metadata?.name ? { name: metadata.name } : {}), ...(metadata?.namespace ? { namespace: metadata.namespace } : {}), ...(metadata?.resourceVersion ? { resourceVersion: metadata.resourceVersion } : {}) },
    spec: {
      ...(spec?.type ? { type: spec.type } : {}),
      ...(spec?.clusterIP ? { clusterIP: spec.clusterIP } : {}),
      ...(spec?.clusterIPs ? { clusterIPs: spec.clusterIPs } : {}),
      ports: (spec?.ports ?? []).map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, ...(p.protocol ? { protocol: p.protocol } : {}) })),
    },
  };
}

/** What an EndpointSlice is reduced to: its Service's label and what balancing and Pod IP lookups read. */
export function slimEndpointSlice(slice: V1EndpointSlice): V1EndpointSlice {
  const serviceName = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
  return {
    addressType: slice.addressType,
    metadata: {
      ...(slice.metadata?.name ? { name: slice.metadata.name } : {}),
      ...(slice.metadata?.namespace ? { namespace: slice.metadata.namespace } : {}),
      ...(serviceName !== undefined ? { labels: { [SERVICE_NAME_LABEL]: serviceName } } : {}),
    },
    ...(slice.ports ? { ports: slice.ports.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), ...(p.port !== undefined ? { port: p.port } : {}), ...(p.protocol ? { protocol: p.protocol } : {}) })) } : {}),
    endpoints: (slice.endpoints ?? []).map((e) => ({
      addresses: e.addresses,
      ...(e.conditions ? { conditions: e.conditions } : {}),
      ...(e.targetRef?.kind === 'Pod' && e.targetRef.name ? { targetRef: { kind: 'Pod', name: e.targetRef.name } } : {}),
      ...(e.zone ? { zone: e.zone } : {}),
    })),
  };
}
