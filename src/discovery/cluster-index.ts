import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import type { KubeClient } from '../../sidecar/discovery/kube-client.js';
import { ResourceWatch, type WatchTuning } from '../../sidecar/discovery/resource-watch.js';
import { clusterIpsOf } from '../../sidecar/route/service-port.js';
import { SERVICE_NAME_LABEL, slimEndpointSlice, slimService } from '../../sidecar/discovery/slim.js';

/** What the index tells the server: which Services' states changed, and when address owners may have. */
export interface ClusterIndexEvents {
  /** A Service (namespace/name) or one of its EndpointSlices changed. */
  servicesChanged(keys: ReadonlySet<string>): void;
  /** ClusterIPs or Pod IPs changed hands: owners of watched addresses must be looked up again. */
  addressesChanged(): void;
  /** Both collections listed and in contact with the API (true), or contact lost (false). */
  healthChanged(synced: boolean): void;
}

export interface ServiceState {
  service: V1Service | null;
  slices: V1EndpointSlice[];
}

/**
 * Every Service and every EndpointSlice of the cluster, each watched ONCE (two watches in all,
 * whatever the number of sidecars), slimmed to what balancing needs, and indexed by Service and by
 * address: ClusterIP (v4 and v6) to its Service, Pod IP to the Services whose slices hold it. The
 * watches are the sidecar's own list-and-watch loop (relist on 410, bookmarks, backoff).
 */
export class ClusterIndex {
  private readonly services: ResourceWatch<V1Service>;
  private readonly slices: ResourceWatch<V1EndpointSlice>;
  /** What the last onChange saw, to find what changed by object identity (changed items are new objects). */
  private readonly serviceSnapshot = new Map<string, V1Service>();
  private readonly sliceSnapshot = new Map<string, V1EndpointSlice>();
  /** Service key → its slices by slice key. */
  private readonly slicesByService = new Map<string, Map<string, V1EndpointSlice>>();
  private byClusterIp = new Map<string, string>();
  /** Pod IP → Service key → how many of its slices hold it. */
  private readonly podOwners = new Map<string, Map<string, number>>();
  private wasSynced = false;

  constructor(
    client: KubeClient,
    private readonly events: ClusterIndexEvents,
    log: Logger,
    tuning?: Partial<WatchTuning>,
  ) {
    this.services = new ResourceWatch<V1Service>({
      client,
      resource: { group: '', plural: 'services', path: '/api/v1/services' },
      slim: slimService,
      onChange: (items) => this.onServices(items),
      onHealth: () => queueMicrotask(() => this.reportHealth()),
      log: log.child({ resource: 'services' }),
      ...(tuning ? { tuning } : {}),
    });
    this.slices = new ResourceWatch<V1EndpointSlice>({
      client,
      resource: { group: 'discovery.k8s.io', plural: 'endpointslices', labelSelector: SERVICE_NAME_LABEL, path: '/apis/discovery.k8s.io/v1/endpointslices' },
      slim: slimEndpointSlice,
      onChange: (items) => this.onSlices(items),
      onHealth: () => queueMicrotask(() => this.reportHealth()),
      log: log.child({ resource: 'endpointslices' }),
      ...(tuning ? { tuning } : {}),
    });
  }

  /** Both collections listed, and neither watch has lost the API since. */
  get isSynced(): boolean {
    return this.services.isSynced && this.slices.isSynced && !this.services.isStale && !this.slices.isStale;
  }

  get counts(): { services: number; slices: number } {
    return { services: this.serviceSnapshot.size, slices: this.sliceSnapshot.size };
  }

  start(): this {
    this.services.start();
    this.slices.start();
    return this;
  }

  stop(): void {
    this.services.stop();
    this.slices.stop();
  }

  state(key: string): ServiceState {
    return { service: this.serviceSnapshot.get(key) ?? null, slices: [...(this.slicesByService.get(key)?.values() ?? [])] };
  }

  /** The Service with this ClusterIP, else the one Service whose slices hold it as a Pod IP; null otherwise. */
  ownerOf(address: string): string | null {
    const byClusterIp = this.byClusterIp.get(address);
    if (byClusterIp) return byClusterIp;
    const owners = this.podOwners.get(address);
    if (!owners || owners.size !== 1) return null;
    return owners.keys().next().value ?? null;
  }

  private onServices(items: ReadonlyMap<string, V1Service>): void {
    const changed = new Set<string>();
    for (const key of this.serviceSnapshot.keys()) {
      if (items.has(key)) continue;
      this.serviceSnapshot.delete(key);
      changed.add(key);
    }
    for (const [key, service] of items) {
      if (this.serviceSnapshot.get(key) === service) continue;
      this.serviceSnapshot.set(key, service);
      changed.add(key);
    }
    if (changed.size === 0) return;
    const byClusterIp = new Map<string, string>();
    for (const [key, service] of items) for (const ip of clusterIpsOf(service)) byClusterIp.set(ip, key);
    this.byClusterIp = byClusterIp;
    this.events.servicesChanged(changed);
    this.events.addressesChanged();
  }

  private onSlices(items: ReadonlyMap<string, V1EndpointSlice>): void {
    const changed = new Set<string>();
    for (const [key, slice] of this.sliceSnapshot) {
      if (items.get(key) === slice) continue;
      changed.add(this.forget(key, slice));
      this.sliceSnapshot.delete(key);
    }
    for (const [key, slice] of items) {
      if (this.sliceSnapshot.get(key) === slice) continue;
      changed.add(this.remember(key, slice));
      this.sliceSnapshot.set(key, slice);
    }
    if (changed.size === 0) return;
    this.events.servicesChanged(changed);
    this.events.addressesChanged();
  }

  private remember(sliceKey: string, slice: V1EndpointSlice): string {
    const serviceKey = serviceKeyOf(slice);
    let slices = this.slicesByService.get(serviceKey);
    if (!slices) this.slicesByService.set(serviceKey, (slices = new Map()));
    slices.set(sliceKey, slice);
    for (const ip of addressesOf(slice)) {
      let owners = this.podOwners.get(ip);
      if (!owners) this.podOwners.set(ip, (owners = new Map()));
      owners.set(serviceKey, (owners.get(serviceKey) ?? 0) + 1);
    }
    return serviceKey;
  }

  private forget(sliceKey: string, slice: V1EndpointSlice): string {
    const serviceKey = serviceKeyOf(slice);
    const slices = this.slicesByService.get(serviceKey);
    slices?.delete(sliceKey);
    if (slices?.size === 0) this.slicesByService.delete(serviceKey);
    for (const ip of addressesOf(slice)) {
      const owners = this.podOwners.get(ip);
      const count = owners?.get(serviceKey) ?? 0;
      if (count > 1) owners!.set(serviceKey, count - 1);
      else owners?.delete(serviceKey);
      if (owners?.size === 0) this.podOwners.delete(ip);
    }
    return serviceKey;
  }

  /** Deferred a microtask: a (re)list reports health just before it hands over the items. */
  private reportHealth(): void {
    const synced = this.isSynced;
    if (synced === this.wasSynced) return;
    this.wasSynced = synced;
    this.events.healthChanged(synced);
  }
}

function serviceKeyOf(slice: V1EndpointSlice): string {
  return `${slice.metadata?.namespace ?? ''}/${slice.metadata?.labels?.[SERVICE_NAME_LABEL] ?? ''}`;
}

function* addressesOf(slice: V1EndpointSlice): Iterable<string> {
  for (const endpoint of slice.endpoints ?? []) yield* endpoint.addresses ?? [];
}
