import type { HostPort } from '../../src/common/values.js';
import { EndpointSet } from './endpoint-set.js';

/**
 * The contract between discovery and the data plane. The data plane asks a source to resolve where a
 * request was going (its authority and, for redirected connections, the original destination) into a
 * Target, subscribes to it while it uses it, and balances over `target.endpoints`.
 */
export interface TargetHint {
  /** `:authority` or `Host`, as the app sent it (may carry a port). */
  authority?: string;
  /** Where the app's connection was headed before iptables redirected it (SO_ORIGINAL_DST). */
  originalDst?: HostPort;
}

export type EndpointListener = (endpoints: EndpointSet, previous: EndpointSet) => void;

export interface Target {
  /** Stable name used in logs and the `target` metric label, e.g. "demo/web:8080" or "static". */
  readonly id: string;
  /** The latest known set; EndpointSet.EMPTY until the source first hears of it. */
  readonly endpoints: EndpointSet;
  /** When the source last confirmed the set is current (ms since epoch); undefined before the first sync. */
  readonly lastSyncedAt: number | undefined;
  /** True while the source has lost contact and serves its last good set. */
  readonly stale: boolean;
  /**
   * Calls `listener` on every change. While a target has subscribers its source keeps it current;
   * a source may stop watching targets that have had none for a while.
   */
  subscribe(listener: EndpointListener): () => void;
}

export interface EndpointSource {
  /** 'static', 'services', 'kubernetes', 'dns', or a composite of them. */
  readonly name: string;
  /** The target the hint names, or undefined when this source does not know it (pass through). */
  resolve(hint: TargetHint): Promise<Target | undefined>;
  close(): Promise<void>;
}

/** The Target implementation sources share: holds the current set and tells subscribers of changes. */
export class TargetState implements Target {
  private current: EndpointSet = EndpointSet.EMPTY;
  private syncedAt: number | undefined;
  private isStale = false;
  private readonly listeners = new Set<EndpointListener>();
  /** When the last subscriber left (ms since epoch); undefined while subscribed. */
  idleSince: number | undefined = Date.now();

  constructor(
    readonly id: string,
    private readonly now: () => number = Date.now,
  ) {}

  get endpoints(): EndpointSet {
    return this.current;
  }

  get lastSyncedAt(): number | undefined {
    return this.syncedAt;
  }

  get stale(): boolean {
    return this.isStale;
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  subscribe(listener: EndpointListener): () => void {
    this.listeners.add(listener);
    this.idleSince = undefined;
    return () => {
      if (this.listeners.delete(listener) && this.listeners.size === 0) this.idleSince = this.now();
    };
  }

  /** Publishes a new set (confirmed current by the source); listeners hear only of real changes. */
  update(next: EndpointSet): void {
    this.syncedAt = this.now();
    this.isStale = false;
    const previous = this.current;
    if (previous.equals(next)) return;
    this.current = next;
    for (const listener of this.listeners) listener(next, previous);
  }

  /** The source lost contact; the last good set stays in use. */
  markStale(): void {
    this.isStale = true;
  }
}
