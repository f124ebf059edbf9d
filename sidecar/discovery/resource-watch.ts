import { Backoff } from '../../src/common/backoff.js';
import type { Logger } from '../../src/common/log-format.js';
import { KubeApiError, type KubeClient, type WatchHandle } from './kube-client.js';

/** The objects we watch carry at least a name and a resourceVersion. */
export interface KubeItem {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

/** What is watched, in the words of an RBAC rule (named in the log line when access is refused). */
export interface WatchedResource {
  group: string;
  plural: string;
  /** Undefined for a cluster-wide watch (items are then keyed `namespace/name`). */
  namespace?: string;
  labelSelector?: string;
  /** The API path of the collection, e.g. /apis/discovery.k8s.io/v1/namespaces/demo/endpointslices. */
  path: string;
}

export interface WatchTuning {
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Asked of the server; it ends the watch then and we resume from the last resourceVersion. */
  watchTimeoutSeconds: number;
  /** A list (or a watch's first byte) taking longer than this counts as a failure. */
  requestTimeoutMs: number;
  /** A watch silent for longer than this (no event, no bookmark) is presumed dead and restarted. */
  stallTimeoutMs: number;
}

export const DEFAULT_WATCH_TUNING: WatchTuning = {
  initialBackoffMs: 250,
  maxBackoffMs: 10_000,
  watchTimeoutSeconds: 300,
  requestTimeoutMs: 10_000,
  stallTimeoutMs: 330_000,
};

/** A watch that closes sooner than this without an event was not healthy: back off before the next. */
const MIN_HEALTHY_WATCH_MS = 1000;

export type WatchHealth = 'synced' | 'stale';

export interface ResourceWatchOptions<T extends KubeItem> {
  client: KubeClient;
  resource: WatchedResource;
  /** The whole current collection, after the first list and after every change. */
  onChange: (items: ReadonlyMap<string, T>) => void;
  /** Keeps only what is needed of each item (a cluster-wide watch holds many). */
  slim?: (item: T) => T;
  /** 'synced' after every successful (re)list or (re)connect; 'stale' when contact is lost. */
  onHealth?: (health: WatchHealth) => void;
  log: Logger;
  tuning?: Partial<WatchTuning>;
}

type WatchOutcome = { kind: 'closed' | 'expired'; events: number; durationMs: number };

/**
 * List, then watch from the list's resourceVersion, forever: the informer loop of client-go, written
 * out so every API reality is handled explicitly. A watch the server ends (its timeout) resumes from
 * the last resourceVersion; `410 Gone` (as a status or an ERROR event) relists; any failure keeps the
 * last good collection, reports 'stale', and retries with jittered backoff; a 403 is logged as an
 * error naming the missing RBAC rule.
 */
export class ResourceWatch<T extends KubeItem> {
  private readonly items = new Map<string, T>();
  private readonly tuning: WatchTuning;
  private readonly backoff: Backoff;
  private resourceVersion: string | undefined;
  private needsList = true;
  private stopped = false;
  private failing = false;
  private phase: 'list' | 'watch' = 'list';
  private handle: WatchHandle | undefined;
  private wake: (() => void) | undefined;
  private synced = false;
  private readonly firstSync: Promise<void>;
  private resolveFirstSync!: () => void;
  /** The last attempt was refused (401, 403) and nothing was listed since. */
  private refused = false;
  private readonly refusalWaiters = new Set<() => void>();
  /** When the collection was last confirmed current (ms since epoch). */
  lastSyncedAt: number | undefined;

  constructor(private readonly options: ResourceWatchOptions<T>) {
    this.tuning = { ...DEFAULT_WATCH_TUNING, ...options.tuning };
    this.backoff = new Backoff({ initialMs: this.tuning.initialBackoffMs, maxMs: this.tuning.maxBackoffMs });
    this.firstSync = new Promise((resolve) => (this.resolveFirstSync = resolve));
  }

  get isSynced(): boolean {
    return this.synced;
  }

  /** True while the last list or watch attempt failed (the collection may be out of date). */
  get isStale(): boolean {
    return this.failing;
  }

  get current(): ReadonlyMap<string, T> {
    return this.items;
  }

  start(): this {
    void this.run().catch((err: unknown) => this.options.log.error({ err }, 'watch loop ended unexpectedly'));
    return this;
  }

  /**
   * Resolves true once the first list arrived; false after `timeoutMs` without it, or as soon as the
   * API refuses us (401, 403): waiting longer would not help, and the request passes through at once.
   */
  async whenSynced(timeoutMs: number): Promise<boolean> {
    if (this.synced) return true;
    if (this.refused) return false;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
    });
    let wake: () => void = () => undefined;
    const refused = new Promise<false>((resolve) => {
      wake = () => resolve(false);
      this.refusalWaiters.add(wake);
    });
    const result = await Promise.race([this.firstSync.then(() => true as const), timedOut, refused]);
    clearTimeout(timer);
    this.refusalWaiters.delete(wake);
    return result;
  }

  stop(): void {
    this.stopped = true;
    this.handle?.abort();
    this.wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.needsList) await this.relist();
        if (this.stopped) return;
        const outcome = await this.watchOnce();
        if (this.stopped) return;
        if (outcome.kind === 'expired') {
          this.options.log.info({ resourceVersion: this.resourceVersion }, 'resource version expired, relisting');
          this.needsList = true;
        } else if (outcome.events === 0 && outcome.durationMs < MIN_HEALTHY_WATCH_MS) {
          await this.sleep(this.backoff.next());
        } else {
          this.backoff.reset();
        }
      } catch (err) {
        if (this.stopped) return;
        this.reportFailure(err);
        await this.sleep(this.backoff.next());
      }
    }
  }

  private async relist(): Promise<void> {
    this.phase = 'list';
    const { resource } = this.options;
    const list = await this.options.client.list<T>(resource.path, resource.labelSelector ? { labelSelector: resource.labelSelector } : {}, this.tuning.requestTimeoutMs);
    if (this.stopped) return;
    this.items.clear();
    for (const item of list.items) {
      const key = this.keyOf(item);
      if (key) this.items.set(key, this.options.slim ? this.options.slim(item) : item);
    }
    this.resourceVersion = list.metadata?.resourceVersion;
    this.needsList = false;
    this.markHealthy();
    this.options.onChange(this.items);
  }

  private watchOnce(): Promise<WatchOutcome> {
    this.phase = 'watch';
    const { resource } = this.options;
    const started = Date.now();
    let events = 0;
    let expired = false;
    let statusError: KubeApiError | undefined;
    let finished = false;
    let stallTimer: NodeJS.Timeout | undefined;
    let connectTimer: NodeJS.Timeout | undefined;

    return new Promise<WatchOutcome>((resolve, reject) => {
      const finish = (err: unknown): void => {
        if (finished) return;
        finished = true;
        clearTimeout(stallTimer);
        clearTimeout(connectTimer);
        this.handle?.abort();
        this.handle = undefined;
        if (expired) resolve({ kind: 'expired', events, durationMs: Date.now() - started });
        else if (statusError) reject(statusError);
        else if (err && !this.stopped) reject(err);
        else resolve({ kind: 'closed', events, durationMs: Date.now() - started });
      };
      const armStallTimer = (): void => {
        clearTimeout(stallTimer);
        stallTimer = setTimeout(() => finish(new Error(`watch silent for ${this.tuning.stallTimeoutMs} ms`)), this.tuning.stallTimeoutMs);
        stallTimer.unref();
      };
      connectTimer = setTimeout(() => finish(new Error(`watch not answered within ${this.tuning.requestTimeoutMs} ms`)), this.tuning.requestTimeoutMs);
      connectTimer.unref();
      armStallTimer();

      const query: Record<string, string> = {
        allowWatchBookmarks: 'true',
        timeoutSeconds: String(this.tuning.watchTimeoutSeconds),
        ...(this.resourceVersion ? { resourceVersion: this.resourceVersion } : {}),
        ...(resource.labelSelector ? { labelSelector: resource.labelSelector } : {}),
      };
      this.handle = this.options.client.watch(resource.path, query, {
        onOpen: () => {
          clearTimeout(connectTimer);
          if (finished || this.stopped) return finish(null);
          this.markHealthy();
        },
        onEvent: ({ type, object }) => {
          if (finished) return;
          armStallTimer();
          events++;
          this.onEvent(type, object, (status) => {
            if (status.code === 410) expired = true;
            else statusError = new KubeApiError(status.code ?? 500, status.message ?? 'watch error event');
          });
        },
        onDone: (err) => finish(err ?? null),
      });
    });
  }

  private onEvent(type: string, object: unknown, onStatus: (status: { code?: number; message?: string }) => void): void {
    if (type === 'ERROR') {
      onStatus(object as { code?: number; message?: string });
      return;
    }
    const item = object as T;
    const resourceVersion = item.metadata?.resourceVersion;
    if (resourceVersion) this.resourceVersion = resourceVersion;
    const key = this.keyOf(item);
    if (type === 'BOOKMARK' || !key) {
      this.markHealthy();
      return;
    }
    if (type === 'DELETED') this.items.delete(key);
    else this.items.set(key, this.options.slim ? this.options.slim(item) : item);
    this.markHealthy();
    this.options.onChange(this.items);
  }

  private keyOf(item: T): string | undefined {
    const name = item.metadata?.name;
    if (!name || this.options.resource.namespace !== undefined) return name;
    return `${item.metadata?.namespace ?? ''}/${name}`;
  }

  private markHealthy(): void {
    this.lastSyncedAt = Date.now();
    if (this.failing) this.options.log.info({ resource: this.options.resource.plural, namespace: this.options.resource.namespace }, 'API contact restored');
    this.failing = false;
    this.refused = false;
    if (!this.synced) {
      this.synced = true;
      this.resolveFirstSync();
    }
    this.options.onHealth?.('synced');
  }

  private reportFailure(err: unknown): void {
    const statusCode = statusCodeOf(err);
    const wasFailing = this.failing;
    this.failing = true;
    this.options.onHealth?.('stale');
    const { group, plural, namespace } = this.options.resource;
    if (statusCode === 410) {
      this.needsList = true;
      this.options.log.info({ resource: plural, namespace }, 'resource version expired, relisting');
      return;
    }
    if ((statusCode === 401 || statusCode === 403) && !this.synced) {
      this.refused = true;
      for (const wake of this.refusalWaiters) wake();
      this.refusalWaiters.clear();
    }
    if (wasFailing) {
      this.options.log.debug({ err, statusCode, attempt: this.backoff.attempts }, 'API still unreachable');
      return;
    }
    if (statusCode === 403) {
      const verb = this.phase;
      const rule = `${verb} ${group ? `${plural}.${group}` : plural} ${namespace === undefined ? 'cluster-wide' : `in namespace ${namespace}`}`;
      const grant =
        namespace === undefined
          ? `a ClusterRole with get, list, watch on ${plural} in API group "${group}", bound with a ClusterRoleBinding to this Pod's service account`
          : `a Role or ClusterRole with get, list, watch on ${plural} in API group "${group}", bound to this Pod's service account`;
      this.options.log.error({ verb, resource: plural, group, namespace, rule, statusCode }, `missing RBAC permission: allow ${rule} (${grant})`);
    } else if (statusCode === 401) {
      this.options.log.error({ resource: plural, namespace, statusCode }, 'API rejected our credentials; keeping last good set');
    } else {
      this.options.log.warn({ err, statusCode, resource: plural, namespace, phase: this.phase }, 'API unreachable, keeping last good set');
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

function statusCodeOf(err: unknown): number | undefined {
  return err instanceof KubeApiError ? err.statusCode : undefined;
}
