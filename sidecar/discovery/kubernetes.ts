import type { V1EndpointSlice, V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { Logger } from '../../src/common/log-format.js';
import type { ServiceName } from '../route/authority.js';
import { clusterIpsOf, pickServicePort, servicePortForClusterIp, servicePortForPodAddress } from '../route/service-port.js';
import { endpointsForServicePort } from './endpoint-slices.js';
import { resolveHint, type HintLookups } from './hint.js';
import { KubeClient, type KubeEndpoint } from './kube-client.js';
import { ResourceWatch, type WatchTuning } from './resource-watch.js';
import { SERVICE_NAME_LABEL, slimService } from './slim.js';
import { TargetState, type EndpointSource, type Target, type TargetHint } from './source.js';

export { SERVICE_NAME_LABEL };

export interface KubernetesSourceOptions {
  /** The Pod's own namespace: short names resolve here, and its Services are searched for ClusterIPs. */
  namespace: string;
  clusterDomain: string;
  /** A Service's watches stop after it has had no subscriber and no resolve for this long. */
  idleTimeoutMs?: number;
  /** How long resolve() waits for the first list of a Service before passing the request through. */
  firstSyncTimeoutMs?: number;
  /** An unknown Pod IP triggers at most one EndpointSlice lookup per namespace per this interval. */
  podLookupIntervalMs?: number;
  tuning?: Partial<WatchTuning>;
}

export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;
export const DEFAULT_FIRST_SYNC_TIMEOUT_MS = 2000;
export const DEFAULT_POD_LOOKUP_INTERVAL_MS = 5000;
/** How often idle watches are swept and healthy targets re-confirmed (bounds the staleness metric). */
const SWEEP_INTERVAL_MS = 5000;
/** The one-off EndpointSlice list behind a Pod IP lookup gives up after this. */
const POD_LOOKUP_TIMEOUT_MS = 5000;

/** How many ambiguous Pod IPs are reported (each once). */
const MAX_REPORTED_AMBIGUOUS_POD_IPS = 100;

interface PodOwner {
  service: V1Service;
  servicePort: V1ServicePort;
}

function endpointSlicesPath(namespace: string): string {
  return `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`;
}

/** The Services of one namespace, watched while requests name that namespace. */
interface NamespaceServices {
  namespace: string;
  watch: ResourceWatch<V1Service>;
  startedAt: number;
  /** A request gave up waiting for this watch's first list. */
  firstSyncExpired?: boolean;
  lastUsedAt: number;
  /** Last one-off EndpointSlice lookup for an unknown Pod IP. */
  lastPodLookupAt: number;
}

/**
 * Every Service of the cluster, slimmed to what resolving a ClusterIP needs: started on the first
 * connection to an address no watched namespace knows. Needs list and watch on services cluster-wide.
 */
interface ClusterServices {
  watch: ResourceWatch<V1Service>;
  /** ClusterIP (v4 and v6) → its Service, rebuilt on every change. */
  byClusterIp: Map<string, V1Service>;
  startedAt: number;
  firstSyncExpired?: boolean;
  lastUsedAt: number;
}

/** One Service's EndpointSlices (watched by label) and the targets of its ports. */
interface ServiceEndpoints {
  namespace: string;
  name: string;
  service: V1Service;
  watch: ResourceWatch<V1EndpointSlice>;
  startedAt: number;
  /** A request gave up waiting for this watch's first list. */
  firstSyncExpired?: boolean;
  lastUsedAt: number;
  /** By Service port number. */
  targets: Map<number, TargetState>;
  log: Logger;
}

/**
 * Kubernetes discovery: lazy per-Service EndpointSlice watches (label kubernetes.io/service-name),
 * started on the first request that names the Service and stopped after it goes unused, plus a
 * Services watch per namespace being called (the Pod's own, and any other an authority names) for
 * names, ports, targetPorts and ClusterIPs. The one cluster-wide watch, of Services slimmed to their
 * ClusterIPs and ports, starts only when a connection goes to an address none of those namespaces
 * know. A Pod IP is traced to its Service through the EndpointSlices already watched or, failing
 * that, one rate-limited list of the EndpointSlices of the namespaces being watched; it resolves
 * only when exactly one Service owns it. All API calls go through our own KubeClient.
 */
export class KubernetesSource implements EndpointSource {
  readonly name = 'kubernetes';
  private readonly client: KubeClient;
  private readonly namespaces = new Map<string, NamespaceServices>();
  private readonly services = new Map<string, ServiceEndpoints>();
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly idleTimeoutMs: number;
  private readonly firstSyncTimeoutMs: number;
  private readonly podLookupIntervalMs: number;
  private clusterServices: ClusterServices | undefined;
  private hasLoggedPodIp = false;
  /** Pod IPs already reported as owned by several Services (said once each, bounded). */
  private readonly ambiguousPodIps = new Set<string>();
  private closed = false;
  private readonly lookups: HintLookups = {
    byService: (named, port) => this.resolveService(named, port),
    byAddress: (ip, port) => this.resolveAddress(ip, port),
  };

  constructor(
    endpoint: KubeEndpoint,
    private readonly options: KubernetesSourceOptions,
    private readonly log: Logger,
  ) {
    this.client = new KubeClient(endpoint);
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.firstSyncTimeoutMs = options.firstSyncTimeoutMs ?? DEFAULT_FIRST_SYNC_TIMEOUT_MS;
    this.podLookupIntervalMs = options.podLookupIntervalMs ?? DEFAULT_POD_LOOKUP_INTERVAL_MS;
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(SWEEP_INTERVAL_MS, Math.max(50, this.idleTimeoutMs / 2)));
    this.sweepTimer.unref();
  }

  /** False while any watch has lost the API (or never reached it in time): the DNS fallback answers then. */
  get isApiReachable(): boolean {
    const now = Date.now();
    const watches = [...this.namespaces.values(), ...this.services.values()];
    return !watches.some((w) => w.watch.isStale || (!w.watch.isSynced && (w.firstSyncExpired === true || now - w.startedAt >= this.firstSyncTimeoutMs)));
  }

  /** Services (namespace/name) whose EndpointSlices are being watched now. */
  get watchedServices(): string[] {
    return [...this.services.keys()].sort();
  }

  async resolve(hint: TargetHint): Promise<Target | undefined> {
    if (this.closed) return undefined;
    return resolveHint(hint, this.options, this.lookups);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweepTimer);
    for (const entry of this.services.values()) entry.watch.stop();
    for (const ns of this.namespaces.values()) ns.watch.stop();
    this.clusterServices?.watch.stop();
    this.clusterServices = undefined;
    this.services.clear();
    this.namespaces.clear();
    this.client.close();
  }

  private async resolveService(named: ServiceName, port: number | undefined): Promise<Target | undefined> {
    const services = this.namespaceServices(named.namespace);
    if (!(await this.waitFirstSync(services))) return undefined;
    const service = services.watch.current.get(named.name);
    if (!service || service.spec?.type === 'ExternalName') return undefined;
    const servicePort = pickServicePort(service, port);
    if (!servicePort) {
      this.log.debug({ service: `${named.namespace}/${named.name}`, port }, 'service has no such port');
      return undefined;
    }
    return this.serviceTarget(service, servicePort);
  }

  /**
   * A ClusterIP:port of any Service (the watched namespaces first, then the cluster-wide index), or
   * a Pod IP:port traced back to the one Service that owns it.
   */
  private async resolveAddress(ip: string, port: number): Promise<Target | undefined> {
    const own = this.namespaceServices(this.options.namespace);
    await this.waitFirstSync(own);
    for (const ns of this.namespaces.values()) {
      for (const service of ns.watch.current.values()) {
        const servicePort = servicePortForClusterIp(service, ip, port);
        if (servicePort) {
          ns.lastUsedAt = Date.now();
          return this.serviceTarget(service, servicePort);
        }
      }
    }
    const index = this.clusterServiceIndex();
    if (await this.waitFirstSync(index)) {
      const service = index.byClusterIp.get(ip);
      const servicePort = service && servicePortForClusterIp(service, ip, port);
      if (service && servicePort) return this.serviceTarget(service, servicePort);
    }
    const owners = this.podOwnersFromWatches(ip, port);
    const owner = owners.length > 0 ? this.onlyOwner(ip, owners) : this.onlyOwner(ip, await this.lookupPodOwners(ip, port));
    if (!owner) return undefined;
    if (!this.hasLoggedPodIp) {
      this.hasLoggedPodIp = true;
      this.log.info(
        { endpoint: ip, service: `${owner.service.metadata?.namespace}/${owner.service.metadata?.name}`, port: owner.servicePort.port },
        'connection headed for a Pod IP; balancing over its Service (a headless Service resolved by the app, or CNI socket load balancing rewrote the ClusterIP)',
      );
    }
    return this.serviceTarget(owner.service, owner.servicePort);
  }

  /** The owner when exactly one Service owns the Pod IP; several is ambiguous (said once per IP): pass through. */
  private onlyOwner(ip: string, owners: PodOwner[]): PodOwner | undefined {
    const distinct = new Map(owners.map((o) => [`${o.service.metadata?.namespace}/${o.service.metadata?.name}`, o]));
    if (distinct.size <= 1) return owners[0];
    if (!this.ambiguousPodIps.has(ip) && this.ambiguousPodIps.size < MAX_REPORTED_AMBIGUOUS_POD_IPS) {
      this.ambiguousPodIps.add(ip);
      this.log.warn({ endpoint: ip, services: [...distinct.keys()].sort() }, 'Pod IP belongs to several Services; passing it through unbalanced (call one of them by name or ClusterIP)');
    }
    return undefined;
  }

  private podOwnersFromWatches(ip: string, port: number): PodOwner[] {
    const owners: PodOwner[] = [];
    for (const entry of this.services.values()) {
      const servicePort = servicePortForPodAddress(entry.service, entry.watch.current.values(), ip, port);
      if (servicePort) owners.push({ service: entry.service, servicePort });
    }
    return owners;
  }

  /** One list of the EndpointSlices in each namespace being watched, at most once per interval. */
  private async lookupPodOwners(ip: string, port: number): Promise<PodOwner[]> {
    const owners: PodOwner[] = [];
    const now = Date.now();
    for (const ns of this.namespaces.values()) {
      if (!ns.watch.isSynced || now - ns.lastPodLookupAt < this.podLookupIntervalMs) continue;
      ns.lastPodLookupAt = now;
      let slices: V1EndpointSlice[];
      try {
        slices = (await this.client.list<V1EndpointSlice>(endpointSlicesPath(ns.namespace), { labelSelector: SERVICE_NAME_LABEL }, POD_LOOKUP_TIMEOUT_MS)).items;
      } catch (err) {
        this.log.warn({ err, namespace: ns.namespace }, 'Pod IP lookup failed');
        continue;
      }
      const holding = slices.filter((s) => (s.endpoints ?? []).some((e) => (e.addresses ?? []).includes(ip)));
      for (const slice of holding) {
        const service = ns.watch.current.get(slice.metadata?.labels?.[SERVICE_NAME_LABEL] ?? '');
        const servicePort = service && servicePortForPodAddress(service, [slice], ip, port);
        if (service && servicePort) owners.push({ service, servicePort });
      }
    }
    return owners;
  }

  private async serviceTarget(service: V1Service, servicePort: V1ServicePort): Promise<Target | undefined> {
    const entry = this.serviceEndpoints(service);
    entry.lastUsedAt = Date.now();
    let target = entry.targets.get(servicePort.port);
    if (!target) {
      target = new TargetState(`${entry.namespace}/${entry.name}:${servicePort.port}`);
      entry.targets.set(servicePort.port, target);
      if (entry.watch.isSynced) this.recompute(entry);
    }
    if (!(await this.waitFirstSync(entry))) return target.lastSyncedAt === undefined ? undefined : target;
    return target;
  }

  /**
   * A watch's first list is waited for at most firstSyncTimeoutMs after it started, in total: while the
   * API stays unreachable, later requests pass through at once instead of each waiting again.
   */
  private async waitFirstSync(entry: NamespaceServices | ServiceEndpoints | ClusterServices): Promise<boolean> {
    const remainingMs = Math.max(0, this.firstSyncTimeoutMs - (Date.now() - entry.startedAt));
    const synced = await entry.watch.whenSynced(remainingMs);
    if (!synced) entry.firstSyncExpired = true;
    return synced;
  }

  private namespaceServices(namespace: string): NamespaceServices {
    let ns = this.namespaces.get(namespace);
    if (ns) {
      ns.lastUsedAt = Date.now();
      return ns;
    }
    const log = this.log.child({ namespace, resource: 'services' });
    const watch = new ResourceWatch<V1Service>({
      client: this.client,
      resource: { group: '', plural: 'services', namespace, path: `/api/v1/namespaces/${namespace}/services` },
      onChange: (services) => this.onServicesChanged(namespace, services),
      log,
      ...(this.options.tuning ? { tuning: this.options.tuning } : {}),
    });
    ns = { namespace, watch, startedAt: Date.now(), lastUsedAt: Date.now(), lastPodLookupAt: 0 };
    this.namespaces.set(namespace, ns);
    log.debug('watching services');
    watch.start();
    return ns;
  }

  private clusterServiceIndex(): ClusterServices {
    if (this.clusterServices) {
      this.clusterServices.lastUsedAt = Date.now();
      return this.clusterServices;
    }
    const log = this.log.child({ resource: 'services', scope: 'cluster' });
    const index: ClusterServices = {
      byClusterIp: new Map(),
      startedAt: Date.now(),
      lastUsedAt: Date.now(),
      watch: new ResourceWatch<V1Service>({
        client: this.client,
        resource: { group: '', plural: 'services', path: '/api/v1/services' },
        slim: slimService,
        onChange: (services) => {
          index.byClusterIp = new Map();
          for (const service of services.values()) for (const ip of clusterIpsOf(service)) index.byClusterIp.set(ip, service);
          this.onServicesChanged(undefined, services);
        },
        log,
        ...(this.options.tuning ? { tuning: this.options.tuning } : {}),
      }),
    };
    this.clusterServices = index;
    log.info('watching the ClusterIPs of every namespace');
    index.watch.start();
    return index;
  }

  private serviceEndpoints(service: V1Service): ServiceEndpoints {
    const namespace = service.metadata?.namespace ?? this.options.namespace;
    const name = service.metadata?.name ?? '';
    const key = `${namespace}/${name}`;
    let entry = this.services.get(key);
    if (entry) return entry;
    const log = this.log.child({ service: key });
    const labelSelector = `${SERVICE_NAME_LABEL}=${name}`;
    const created: ServiceEndpoints = {
      namespace,
      name,
      service,
      startedAt: Date.now(),
      lastUsedAt: Date.now(),
      targets: new Map(),
      log,
      watch: new ResourceWatch<V1EndpointSlice>({
        client: this.client,
        resource: { group: 'discovery.k8s.io', plural: 'endpointslices', namespace, labelSelector, path: endpointSlicesPath(namespace) },
        onChange: () => this.recompute(created),
        onHealth: (health) => {
          if (health === 'stale') for (const target of created.targets.values()) target.markStale();
          else if ([...created.targets.values()].some((t) => t.stale)) this.recompute(created);
        },
        log,
        ...(this.options.tuning ? { tuning: this.options.tuning } : {}),
      }),
    };
    entry = created;
    this.services.set(key, entry);
    log.info('watching endpoints');
    entry.watch.start();
    return entry;
  }

  /** A namespace's Services (keyed by name), or with `namespace` undefined the cluster's (keyed namespace/name). */
  private onServicesChanged(namespace: string | undefined, services: ReadonlyMap<string, V1Service>): void {
    for (const entry of this.services.values()) {
      if (namespace !== undefined && entry.namespace !== namespace) continue;
      const service = services.get(namespace === undefined ? `${entry.namespace}/${entry.name}` : entry.name);
      if (!service || service === entry.service) continue;
      entry.service = service;
      if (entry.watch.isSynced) this.recompute(entry);
    }
  }

  /** Publishes each port target's set from the Service's current slices (confirms it when unchanged). */
  private recompute(entry: ServiceEndpoints): void {
    if (!entry.watch.isSynced) return;
    const slices = [...entry.watch.current.values()];
    for (const [port, target] of entry.targets) {
      const next = endpointsForServicePort(entry.service, slices, port);
      const previous = target.endpoints;
      target.update(next);
      if (next === previous || next.equals(previous)) continue;
      const diff = next.diff(previous);
      entry.log.info(
        { port, added: diff.added.length, removed: diff.removed.length, changed: diff.changed.length, ready: next.ready.length, draining: next.size - next.ready.length },
        'endpoints updated',
      );
    }
  }

  /** Stops watches nobody has used for the idle timeout; re-confirms healthy targets. */
  private sweep(): void {
    const now = Date.now();
    const cutoff = now - this.idleTimeoutMs;
    for (const [key, entry] of this.services) {
      const isIdle = entry.lastUsedAt < cutoff && [...entry.targets.values()].every((t) => t.subscriberCount === 0 && (t.idleSince ?? now) < cutoff);
      if (isIdle) {
        entry.watch.stop();
        this.services.delete(key);
        entry.log.info('stopped watching endpoints (idle)');
      } else if (!entry.watch.isStale) {
        this.recompute(entry);
      }
    }
    for (const [namespace, ns] of this.namespaces) {
      const inUse = [...this.services.values()].some((e) => e.namespace === namespace);
      if (!inUse && ns.lastUsedAt < cutoff) {
        ns.watch.stop();
        this.namespaces.delete(namespace);
        this.log.debug({ namespace }, 'stopped watching services (idle)');
      }
    }
    const index = this.clusterServices;
    if (index && index.lastUsedAt < cutoff && ![...this.services.values()].some((e) => index.watch.current.get(`${e.namespace}/${e.name}`) === e.service)) {
      index.watch.stop();
      this.clusterServices = undefined;
      this.log.info('stopped watching the ClusterIPs of every namespace (idle)');
    }
  }
}
