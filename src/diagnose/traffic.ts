import { METRICS } from '../common/contract.js';
import type { Sample } from './prometheus-text.js';
import type { EndpointTraffic } from './shares.js';

/** One meshed Pod's sidecar metrics at one moment. */
export interface SidecarScrape {
  pod: string;
  samples: Sample[];
}

/** An address:port the Service's EndpointSlices list, with the Pod behind it. */
export interface ServiceEndpoint {
  key: string;
  pod?: string;
  ready: boolean;
  terminating: boolean;
  /** The Pod's creation time (ms since epoch), when the Pod was found. */
  createdAt?: number;
}

export interface ServiceRef {
  namespace: string;
  name: string;
}

export interface ServiceTraffic {
  traffic: EndpointTraffic[];
  /** Meshed Pods whose sidecars sent requests to the Service in the window. */
  callers: string[];
}

/** The sidecar's `target` label for a Kubernetes Service is "namespace/name:port". */
export function isServiceTarget(target: string | undefined, service: ServiceRef): boolean {
  if (target === undefined) return false;
  const prefix = `${service.namespace}/${service.name}`;
  return target === prefix || target.startsWith(`${prefix}:`);
}

const WANTED = new Set<string>([METRICS.requests, `${METRICS.requestDuration}_sum`, `${METRICS.requestDuration}_count`]);

function seriesKey(pod: string, sample: Sample): string {
  const labels = Object.keys(sample.labels)
    .sort()
    .map((k) => `${k}=${sample.labels[k]}`)
    .join(',');
  return `${pod}|${sample.name}|${labels}`;
}

/**
 * Requests (and request time) per endpoint of the Service between two scrapes of every sidecar.
 * A series absent from the first scrape counts from zero; a counter that went down (the sidecar
 * restarted) counts from its new value. With no first scrape, the totals since each sidecar started.
 */
export function serviceTraffic(before: readonly SidecarScrape[] | undefined, after: readonly SidecarScrape[], service: ServiceRef, endpoints: readonly ServiceEndpoint[]): ServiceTraffic {
  const byKey = new Map(endpoints.map((e) => [e.key, e]));
  const previous = new Map<string, number>();
  for (const scrape of before ?? []) {
    for (const sample of scrape.samples) if (WANTED.has(sample.name)) previous.set(seriesKey(scrape.pod, sample), sample.value);
  }
  const rows = new Map<string, EndpointTraffic>();
  for (const e of endpoints) {
    rows.set(e.key, { endpoint: e.key, ...(e.pod ? { pod: e.pod } : {}), requests: 0, durationSumSeconds: 0, durationCount: 0, ready: e.ready && !e.terminating });
  }
  const callers = new Set<string>();
  for (const scrape of after) {
    for (const sample of scrape.samples) {
      if (!WANTED.has(sample.name)) continue;
      const endpoint = sample.labels.endpoint;
      if (endpoint === undefined) continue;
      if (!byKey.has(endpoint) && !isServiceTarget(sample.labels.target, service)) continue;
      const old = previous.get(seriesKey(scrape.pod, sample)) ?? 0;
      const delta = sample.value >= old ? sample.value - old : sample.value;
      if (delta <= 0) continue;
      const row = rows.get(endpoint) ?? { endpoint, requests: 0, durationSumSeconds: 0, durationCount: 0 };
      rows.set(endpoint, row);
      if (sample.name === METRICS.requests) {
        row.requests += delta;
        callers.add(scrape.pod);
      } else if (sample.name.endsWith('_sum')) row.durationSumSeconds! += delta;
      else row.durationCount! += delta;
    }
  }
  markNewEndpoints(rows, endpoints);
  return { traffic: [...rows.values()], callers: [...callers].sort() };
}

/** Endpoints whose Pods were created after every Pod that carries traffic are "new" (a scale-up). */
function markNewEndpoints(rows: Map<string, EndpointTraffic>, endpoints: readonly ServiceEndpoint[]): void {
  const busyCreated = endpoints.filter((e) => (rows.get(e.key)?.requests ?? 0) > 0 && e.createdAt !== undefined).map((e) => e.createdAt!);
  if (busyCreated.length === 0) return;
  const newestBusy = Math.max(...busyCreated);
  for (const e of endpoints) {
    const row = rows.get(e.key);
    if (row && e.createdAt !== undefined && e.createdAt > newestBusy) row.isNew = true;
  }
}
