import type { V1EndpointSlice, V1Namespace, V1Pod, V1Service } from '@kubernetes/client-node';
import { ENV, PROXY_CONTAINER_NAME } from '../common/contract.js';
import { formatHostPort } from '../common/values.js';
import type { ClusterReader, ResourceAccess } from './cluster.js';
import { classifyPod, hasSidecar, type PodMeshState } from './pods.js';
import { parsePrometheusText } from './prometheus-text.js';
import { analyseShares, type ShareAnalysis } from './shares.js';
import { serviceTraffic, type ServiceEndpoint, type SidecarScrape } from './traffic.js';

export interface DiagnoseOptions {
  namespace: string;
  service: string;
  /** Namespaces whose Pods may call the Service; their meshed Pods' sidecars are scraped. */
  clientNamespaces: string[];
  /** Time between the two scrapes; 0 reads totals since each sidecar started. */
  windowMs: number;
  scrapeTimeoutMs: number;
  /** Waits between the scrapes (tests pass their own). */
  sleep?: (ms: number) => Promise<void>;
}

export interface EndpointCounts {
  ready: number;
  notReady: number;
  terminating: number;
  slices: number;
}

export interface Diagnosis {
  service: { namespace: string; name: string; type: string; clusterIP?: string; ports: string[]; hasSelector: boolean };
  endpoints: EndpointCounts;
  clients: {
    namespaces: string[];
    /** Meshed Pods found in the client namespaces. */
    meshed: string[];
    /** Meshed, running Pods whose metrics were read twice. */
    scraped: string[];
    /** Meshed Pods that sent requests to the Service in the window. */
    callers: string[];
    unreadable: { pod: string; error: string }[];
    missingSidecar: { pod: string; namespace: string; fix: string }[];
  };
  /** What the callers' sidecars may read to balance requests to the Service (RBAC), per service account. */
  discoveryAccess: DiscoveryAccess[];
  windowSeconds: number;
  analysis: ShareAnalysis;
}

/** One client service account's discovery permissions, as the API server's SubjectAccessReview answers. */
export interface DiscoveryAccess {
  namespace: string;
  serviceAccount: string;
  /** False when diagnose could not ask (it needs create on subjectaccessreviews). */
  checked: boolean;
  /** Rules missing to balance calls to the Service by name or by its ClusterIP, e.g. "list endpointslices.discovery.k8s.io in namespace shop". */
  missing: string[];
  /** Rules missing to resolve ClusterIPs of other namespaces ("list services cluster-wide"). */
  missingClusterWide: string[];
  /**
   * Every meshed Pod of this account gets its endpoints from `meshlet discovery` (its proxy has
   * MESHLET_DISCOVERY_SERVER): the rules matter only for the fallback to direct watches while the
   * shared watcher is unreachable.
   */
  sharedWatcher: boolean;
  fixes: string[];
}

const sleepFor = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function diagnoseService(reader: ClusterReader, options: DiagnoseOptions): Promise<Diagnosis> {
  const { namespace, service: name } = options;
  const service = await reader.service(namespace, name);
  const slices = await reader.endpointSlices(namespace, name);
  const clientNamespaces = [...new Set(options.clientNamespaces)];
  const podsByNamespace = new Map<string, V1Pod[]>();
  const namespaces = new Map<string, V1Namespace | undefined>();
  for (const ns of new Set([namespace, ...clientNamespaces])) {
    podsByNamespace.set(ns, await reader.pods(ns));
    namespaces.set(ns, await reader.namespace(ns));
  }
  const endpoints = listEndpoints(slices, podsByNamespace.get(namespace) ?? []);
  const states: PodMeshState[] = clientNamespaces.flatMap((ns) => (podsByNamespace.get(ns) ?? []).map((pod) => classifyPod(pod, namespaces.get(ns))));
  const meshed = states.filter((s) => s.meshed);
  const scrapable = meshed.filter((s) => s.running);
  const unreadable = new Map<string, string>();
  const scrape = async (): Promise<SidecarScrape[]> => {
    const results = await Promise.all(
      scrapable.map(async (s) => {
        const id = podId(s, namespace);
        try {
          return { pod: id, samples: parsePrometheusText(await reader.sidecarMetrics(s.namespace, s.name, options.scrapeTimeoutMs)) };
        } catch (err) {
          unreadable.set(id, (err as Error).message);
          return undefined;
        }
      }),
    );
    return results.filter((r): r is SidecarScrape => r !== undefined);
  };
  let before: SidecarScrape[] | undefined;
  if (options.windowMs > 0 && scrapable.length > 0) {
    before = await scrape();
    await (options.sleep ?? sleepFor)(options.windowMs);
  }
  const after = scrapable.length > 0 ? await scrape() : [];
  const scraped = after.filter((a) => before === undefined || before.some((b) => b.pod === a.pod)).map((a) => a.pod);
  const discoveryAccess = await checkDiscoveryAccess(reader, namespace, clientNamespaces.flatMap((ns) => podsByNamespace.get(ns) ?? []).filter(hasSidecar));
  const { traffic, callers } = serviceTraffic(before?.filter((b) => scraped.includes(b.pod)), after.filter((a) => scraped.includes(a.pod)), { namespace, name }, endpoints);
  return {
    service: describeService(service, namespace, name),
    endpoints: countEndpoints(slices),
    clients: {
      namespaces: clientNamespaces,
      meshed: meshed.map((s) => podId(s, namespace)),
      scraped,
      callers,
      unreadable: [...unreadable].map(([pod, error]) => ({ pod, error })),
      missingSidecar: states.filter((s) => s.missingSidecar).map((s) => ({ pod: s.name, namespace: s.namespace, fix: s.fix! })),
    },
    discoveryAccess,
    windowSeconds: options.windowMs / 1000,
    analysis: explainSilence(analyseShares(traffic), meshed.length, scraped.length, name),
  };
}

/** The verbs a sidecar's watches use (sidecar/discovery/resource-watch.ts). */
const WATCH_VERBS = ['list', 'watch'];

function describeRule(access: ResourceAccess): string {
  const resource = access.group ? `${access.resource}.${access.group}` : access.resource;
  return `${access.verb} ${resource} ${access.namespace ? `in namespace ${access.namespace}` : 'cluster-wide'}`;
}

/**
 * For each service account the meshed callers run as: may its sidecars list and watch the Service's
 * Services and EndpointSlices (needed to balance at all), and Services cluster-wide (needed for
 * ClusterIPs of other namespaces)? Missing rules come with the kubectl command that grants them.
 */
async function checkDiscoveryAccess(reader: ClusterReader, serviceNamespace: string, meshedPods: readonly V1Pod[]): Promise<DiscoveryAccess[]> {
  const accounts = new Map<string, { namespace: string; name: string; sharedWatcher: boolean }>();
  for (const pod of meshedPods) {
    const namespace = pod.metadata?.namespace ?? serviceNamespace;
    const name = pod.spec?.serviceAccountName ?? 'default';
    const key = `${namespace}/${name}`;
    const sharedWatcher = usesSharedWatcher(pod) && (accounts.get(key)?.sharedWatcher ?? true);
    accounts.set(key, { namespace, name, sharedWatcher });
  }
  const needed: ResourceAccess[] = WATCH_VERBS.flatMap((verb) => [
    { verb, group: '', resource: 'services', namespace: serviceNamespace },
    { verb, group: 'discovery.k8s.io', resource: 'endpointslices', namespace: serviceNamespace },
  ]);
  const clusterWide: ResourceAccess[] = WATCH_VERBS.map((verb) => ({ verb, group: '', resource: 'services' }));
  const results: DiscoveryAccess[] = [];
  for (const account of [...accounts.values()].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))) {
    const answers = await Promise.all([...needed, ...clusterWide].map(async (access) => ({ access, allowed: await reader.canAccess(account, access) })));
    const checked = answers.every((a) => a.allowed !== undefined);
    const missing = checked ? answers.filter((a) => a.allowed === false && a.access.namespace !== undefined).map((a) => describeRule(a.access)) : [];
    const missingClusterWide = checked ? answers.filter((a) => a.allowed === false && a.access.namespace === undefined).map((a) => describeRule(a.access)) : [];
    const group = `system:serviceaccounts:${account.namespace}`;
    const fixes = [
      ...(missing.length > 0 ? [`kubectl create rolebinding meshlet-proxy-discovery-${account.namespace} --clusterrole=meshlet-proxy-discovery --group=${group} -n ${serviceNamespace}`] : []),
      ...(missingClusterWide.length > 0 ? [`kubectl create clusterrolebinding meshlet-proxy-service-index-${account.namespace} --clusterrole=meshlet-proxy-service-index --group=${group}`] : []),
    ];
    results.push({ namespace: account.namespace, serviceAccount: account.name, checked, missing, missingClusterWide, sharedWatcher: account.sharedWatcher, fixes });
  }
  return results;
}

/** Whether the Pod's proxy container is told to use the shared watcher. */
function usesSharedWatcher(pod: V1Pod): boolean {
  const proxy = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === PROXY_CONTAINER_NAME);
  return proxy?.env?.some((e) => e.name === ENV.discoveryServer && (e.value ?? '') !== '') ?? false;
}

/** With no requests seen, says why: nobody meshed, no sidecar readable, or no calls in the window. */
function explainSilence(analysis: ShareAnalysis, meshed: number, scraped: number, service: string): ShareAnalysis {
  if (analysis.verdict !== 'no-traffic') return analysis;
  const why =
    meshed === 0
      ? 'no meshed client Pods found; only meshed callers report per-endpoint requests'
      : scraped === 0
        ? 'no meshed Pod is running with readable sidecar metrics'
        : `the meshed clients sent no requests to ${service} in the window`;
  return { ...analysis, summary: `cannot tell: ${why}` };
}

/** "web-0", or "other-ns/web-0" for a Pod outside the Service's namespace. */
function podId(state: PodMeshState, serviceNamespace: string): string {
  return state.namespace === serviceNamespace ? state.name : `${state.namespace}/${state.name}`;
}

function describeService(service: V1Service, namespace: string, name: string): Diagnosis['service'] {
  const spec = service.spec ?? {};
  return {
    namespace,
    name,
    type: spec.type ?? 'ClusterIP',
    ...(spec.clusterIP ? { clusterIP: spec.clusterIP } : {}),
    ports: (spec.ports ?? []).map((p) => `${p.port}/${p.protocol ?? 'TCP'}${p.name ? ` (${p.name})` : ''}`),
    hasSelector: Object.keys(spec.selector ?? {}).length > 0,
  };
}

/** Kubernetes: an absent `ready` means ready; `terminating` endpoints are counted apart. */
export function countEndpoints(slices: readonly V1EndpointSlice[]): EndpointCounts {
  const counts = { ready: 0, notReady: 0, terminating: 0, slices: slices.length };
  for (const slice of slices) {
    for (const e of slice.endpoints ?? []) {
      if (e.conditions?.terminating === true) counts.terminating++;
      else if (e.conditions?.ready === false) counts.notReady++;
      else counts.ready++;
    }
  }
  return counts;
}

function listEndpoints(slices: readonly V1EndpointSlice[], pods: readonly V1Pod[]): ServiceEndpoint[] {
  const created = new Map(pods.map((p) => [p.metadata?.name ?? '', p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp).getTime() : undefined]));
  const byKey = new Map<string, ServiceEndpoint>();
  for (const slice of slices) {
    for (const e of slice.endpoints ?? []) {
      const pod = e.targetRef?.kind === 'Pod' ? e.targetRef.name : undefined;
      const createdAt = pod ? created.get(pod) : undefined;
      for (const address of e.addresses ?? []) {
        for (const port of slice.ports ?? []) {
          if (port.port === undefined) continue;
          const key = formatHostPort(address, port.port);
          const endpoint: ServiceEndpoint = {
            key,
            ready: e.conditions?.ready !== false,
            terminating: e.conditions?.terminating === true,
            ...(pod ? { pod } : {}),
            ...(createdAt !== undefined && !Number.isNaN(createdAt) ? { createdAt } : {}),
          };
          const seen = byKey.get(key);
          if (!seen || (!seen.ready && endpoint.ready)) byKey.set(key, endpoint);
        }
      }
    }
  }
  return [...byKey.values()];
}
