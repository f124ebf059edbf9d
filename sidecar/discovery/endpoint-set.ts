import { formatHostPort } from '../../src/common/values.js';

/**
 * `ready`: takes new requests. `draining`: terminating but still serving (Kubernetes' `serving`
 * condition), or removed while requests are in flight: it finishes what it has and gets nothing new.
 */
export type EndpointState = 'ready' | 'draining';

export interface Endpoint {
  /** "10.1.2.3:8080" or "[fd00::1]:8080": identity across updates and the `endpoint` metric label. */
  readonly key: string;
  readonly host: string;
  readonly port: number;
  readonly state: EndpointState;
  /** The Pod behind it, when the source knows (EndpointSlice targetRef). */
  readonly pod?: string;
  readonly zone?: string;
}

export interface EndpointSetDiff {
  added: Endpoint[];
  removed: Endpoint[];
  /** Present in both, with another state (e.g. ready → draining). */
  changed: Endpoint[];
}

export function endpointKey(host: string, port: number): string {
  return formatHostPort(host, port);
}

export function makeEndpoint(host: string, port: number, state: EndpointState = 'ready', extra: { pod?: string; zone?: string } = {}): Endpoint {
  return { key: endpointKey(host, port), host, port, state, ...extra };
}

/** An immutable set of endpoints keyed by ip:port. Sources publish a new set on every change. */
export class EndpointSet {
  static readonly EMPTY = new EndpointSet([]);

  readonly all: readonly Endpoint[];
  readonly ready: readonly Endpoint[];
  private readonly byKey: ReadonlyMap<string, Endpoint>;

  private constructor(endpoints: Endpoint[]) {
    this.all = endpoints;
    this.ready = endpoints.filter((e) => e.state === 'ready');
    this.byKey = new Map(endpoints.map((e) => [e.key, e]));
  }

  /** Deduplicates by key; where one address appears twice (two slices), `ready` wins over `draining`. */
  static of(endpoints: Iterable<Endpoint>): EndpointSet {
    const byKey = new Map<string, Endpoint>();
    for (const endpoint of endpoints) {
      const seen = byKey.get(endpoint.key);
      if (!seen || (seen.state === 'draining' && endpoint.state === 'ready')) byKey.set(endpoint.key, endpoint);
    }
    const sorted = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return sorted.length === 0 ? EndpointSet.EMPTY : new EndpointSet(sorted);
  }

  get size(): number {
    return this.all.length;
  }

  get(key: string): Endpoint | undefined {
    return this.byKey.get(key);
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  diff(previous: EndpointSet): EndpointSetDiff {
    const added: Endpoint[] = [];
    const changed: Endpoint[] = [];
    for (const endpoint of this.all) {
      const before = previous.get(endpoint.key);
      if (!before) added.push(endpoint);
      else if (before.state !== endpoint.state || before.pod !== endpoint.pod) changed.push(endpoint);
    }
    const removed = previous.all.filter((e) => !this.byKey.has(e.key));
    return { added, removed, changed };
  }

  equals(other: EndpointSet): boolean {
    if (other === this) return true;
    if (other.size !== this.size) return false;
    const { added, removed, changed } = this.diff(other);
    return added.length === 0 && removed.length === 0 && changed.length === 0;
  }
}
