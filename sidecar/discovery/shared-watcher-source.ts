import { readFileSync } from 'node:fs';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { Backoff } from '../../src/common/backoff.js';
import type { Logger } from '../../src/common/log-format.js';
import type { HostPort } from '../../src/common/values.js';
import { pickServicePort, servicePortForClusterIp, servicePortForPodAddress } from '../route/service-port.js';
import { EndpointSet } from './endpoint-set.js';
import { endpointsForServicePort } from './endpoint-slices.js';
import { resolveHint, type HintLookups } from './hint.js';
import { PING_INTERVAL_MS, type ClientCommand, type ServerMessage } from './shared-protocol.js';
import { SharedWatcherStream } from './shared-watcher-stream.js';
import { TargetState, type EndpointSource, type Target, type TargetHint } from './source.js';

/** What the shared watcher source falls back on: today's direct watches (a KubernetesSource). */
export interface FallbackSource extends EndpointSource {
  readonly isApiReachable: boolean;
}

export interface SharedWatcherSourceOptions {
  server: HostPort;
  /** The projected token for the audience meshlet-discovery; re-read on every (re)connect. */
  tokenFile: string;
  namespace: string;
  clusterDomain: string;
  /** After the server has been away this long, direct API watches take over (while it stays away). */
  fallbackAfterMs: number;
  /** Builds the direct source; undefined when the proxy has no API credentials of its own. */
  createFallback?: () => Promise<FallbackSource>;
  idleTimeoutMs?: number;
  firstSyncTimeoutMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  connectTimeoutMs?: number;
  /** Silence (no message, no ping) for this long ends the stream; default three pings. */
  stallTimeoutMs?: number;
}

const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_FIRST_SYNC_TIMEOUT_MS = 2_000;
const DEFAULT_INITIAL_BACKOFF_MS = 250;
const DEFAULT_MAX_BACKOFF_MS = 5_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** How often idle subscriptions are dropped and bridged targets re-checked. */
const SWEEP_INTERVAL_MS = 1_000;

interface Waitable {
  /** A first answer arrived (or the server refused the subscription). */
  known: boolean;
  waiters: Set<() => void>;
  startedAt: number;
  lastUsedAt: number;
}

interface ServiceEntry extends Waitable {
  key: string;
  /** A state arrived on the current stream (after a reconnect, the one held may be out of date). */
  isCurrent: boolean;
  service: V1Service | null;
  slices: V1EndpointSlice[];
  /** By Service port number. */
  targets: Map<number, TargetState>;
  /** While falling back: the direct source's target feeding ours, by port. */
  bridges: Map<number, { direct: Target; unsubscribe: () => void }>;
  log: Logger;
}

interface AddressEntry extends Waitable {
  key: string;
  owner: string | null;
}

/**
 * Discovery through `meshlet discovery` (the shared watcher): one stream to it carries the Services
 * and addresses this proxy uses (protocol: ./shared-protocol.ts). The targets handed to the data plane
 * are this source's own and outlive the stream: while the server is away they keep their last sets
 * (marked stale, so `meshlet_discovery_staleness_seconds` grows), the source reconnects with backoff
 * and subscribes again to what it uses, and when the server stays away beyond `fallbackAfterMs`
 * the direct API watches of a KubernetesSource feed the same targets until it returns.
 */
export class SharedWatcherSource implements EndpointSource {
  readonly name = 'shared-watcher';
  private readonly services = new Map<string, ServiceEntry>();
  private readonly addresses = new Map<string, AddressEntry>();
  private readonly backoff: Backoff;
  private readonly sweepTimer: NodeJS.Timeout;
  private stream: SharedWatcherStream | undefined;
  /** The token `stream` was opened with. */
  private streamToken: string | undefined;
  /** A new stream the server asked for, opening; it replaces `stream` once open. */
  private replacement: SharedWatcherStream | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private fallbackTimer: NodeJS.Timeout | undefined;
  private fallback: FallbackSource | undefined;
  private fallbackStarting: Promise<void> | undefined;
  /** How long the server had been away when it came back (for the return line). */
  private leftAwayMs = 0;
  /** When contact was lost; undefined while connected. */
  private awaySince: number | undefined = Date.now();
  private hasConnected = false;
  /** The server is back: each bridged Service returns to it once its fresh state arrives. */
  private isLeavingFallback = false;
  private leaveFallbackTimer: NodeJS.Timeout | undefined;
  private isFailing = false;
  private serverSynced = false;
  private closed = false;
  private readonly lookups: HintLookups = {
    byService: (named, port) => this.resolveService(`${named.namespace}/${named.name}`, port),
    byAddress: (ip, port) => this.resolveAddress(ip, port),
  };

  constructor(
    private readonly options: SharedWatcherSourceOptions,
    private readonly log: Logger,
  ) {
    this.backoff = new Backoff({ initialMs: options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS, maxMs: options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS });
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    this.armFallback();
    this.connect();
  }

  /** Connected to a server that has the cluster listed, or falling back to direct watches that reach the API. */
  get isReachable(): boolean {
    return (this.stream?.isConnected === true && this.serverSynced) || this.fallback?.isApiReachable === true;
  }

  async resolve(hint: TargetHint): Promise<Target | undefined> {
    if (this.closed) return undefined;
    if (this.fallback) return this.resolveThroughFallback(this.fallback, hint);
    return resolveHint(hint, this.options, this.lookups);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweepTimer);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.fallbackTimer);
    clearTimeout(this.leaveFallbackTimer);
    this.stream?.close();
    this.replacement?.close();
    await this.fallbackStarting;
    await this.stopFallback();
  }

  // ---- resolving ----------------------------------------------------------------------------

  private async resolveService(key: string, port: number | undefined): Promise<Target | undefined> {
    const entry = this.serviceEntry(key);
    if (!(await this.whenKnown(entry))) return undefined;
    const service = entry.service;
    if (!service || service.spec?.type === 'ExternalName') return undefined;
    const servicePort = pickServicePort(service, port);
    return servicePort ? this.target(entry, servicePort.port) : undefined;
  }

  private async resolveAddress(ip: string, port: number): Promise<Target | undefined> {
    const address = this.addressEntry(ip);
    if (!(await this.whenKnown(address)) || !address.owner) return undefined;
    const entry = this.serviceEntry(address.owner);
    if (!(await this.whenKnown(entry)) || !entry.service) return undefined;
    const servicePort = servicePortForClusterIp(entry.service, ip, port) ?? servicePortForPodAddress(entry.service, entry.slices, ip, port);
    return servicePort ? this.target(entry, servicePort.port) : undefined;
  }

  /** While falling back, the direct source answers; its target feeds ours of the same id (`ns/name:port`). */
  private async resolveThroughFallback(fallback: FallbackSource, hint: TargetHint): Promise<Target | undefined> {
    const direct = await fallback.resolve(hint);
    const parsed = direct && /^(.+\/.+):(\d+)$/.exec(direct.id);
    if (!direct || !parsed) return direct;
    const entry = this.serviceEntry(parsed[1]!);
    return this.target(entry, Number(parsed[2]), direct);
  }

  private target(entry: ServiceEntry, port: number, direct?: Target): TargetState {
    entry.lastUsedAt = Date.now();
    let target = entry.targets.get(port);
    if (!target) {
      target = new TargetState(`${entry.key}:${port}`);
      entry.targets.set(port, target);
      if (entry.known && entry.service) target.update(endpointsForServicePort(entry.service, entry.slices, port));
    }
    if (this.fallback && !entry.bridges.has(port)) void this.bridge(entry, port, target, direct);
    return target;
  }

  /** The first answer for an entry, waited for at most firstSyncTimeoutMs after it was first asked for, in total. */
  private async whenKnown(entry: Waitable): Promise<boolean> {
    if (entry.known) return true;
    const remainingMs = (this.options.firstSyncTimeoutMs ?? DEFAULT_FIRST_SYNC_TIMEOUT_MS) - (Date.now() - entry.startedAt);
    if (remainingMs <= 0) return false;
    let wake: () => void = () => undefined;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      wake = resolve;
      entry.waiters.add(wake);
      timer = setTimeout(resolve, remainingMs);
      timer.unref();
    });
    clearTimeout(timer);
    entry.waiters.delete(wake);
    return entry.known;
  }

  private serviceEntry(key: string): ServiceEntry {
    let entry = this.services.get(key);
    if (entry) {
      entry.lastUsedAt = Date.now();
      return entry;
    }
    entry = { key, isCurrent: false, service: null, slices: [], targets: new Map(), bridges: new Map(), known: false, waiters: new Set(), startedAt: Date.now(), lastUsedAt: Date.now(), log: this.log.child({ service: key }) };
    this.services.set(key, entry);
    this.send({ op: 'watch', kind: 'service', key });
    return entry;
  }

  private addressEntry(key: string): AddressEntry {
    let entry = this.addresses.get(key);
    if (entry) {
      entry.lastUsedAt = Date.now();
      return entry;
    }
    entry = { key, owner: null, known: false, waiters: new Set(), startedAt: Date.now(), lastUsedAt: Date.now() };
    this.addresses.set(key, entry);
    this.send({ op: 'watch', kind: 'address', key });
    return entry;
  }

  // ---- the stream ---------------------------------------------------------------------------

  private send(command: ClientCommand): void {
    this.stream?.send(command);
  }

  private readToken(): string {
    try {
      return readFileSync(this.options.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new Error(`cannot read the discovery token ${this.options.tokenFile} (${(err as Error).message})`);
    }
  }

  private connect(): void {
    if (this.closed) return;
    let token: string;
    try {
      token = this.readToken();
    } catch (err) {
      this.failed(err as Error);
      return;
    }
    this.stream = this.open(token);
    this.streamToken = token;
  }

  private open(token: string): SharedWatcherStream {
    const stream: SharedWatcherStream = new SharedWatcherStream(
      {
        server: this.options.server,
        token,
        connectTimeoutMs: this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        stallTimeoutMs: this.options.stallTimeoutMs ?? 3 * PING_INTERVAL_MS,
      },
      {
        onOpen: () => {
          if (stream === this.replacement) this.promote(stream, token);
          this.opened();
        },
        onMessage: (message) => {
          if (stream === this.stream) this.received(message);
        },
        onClose: (err, refusal) => {
          if (stream === this.replacement) {
            this.replacement = undefined;
            this.log.debug({ err, statusCode: refusal?.statusCode }, 'the new stream the discovery server asked for failed; keeping the current one while it lasts');
            return;
          }
          if (stream !== this.stream) return;
          this.stream = undefined;
          this.serverSynced = false;
          if (refusal) this.failed(new Error(`HTTP ${refusal.statusCode}: ${refusal.message}`), refusal.statusCode);
          else this.failed(err ?? new Error('the stream ended'));
        },
      },
    );
    return stream;
  }

  /**
   * The server will end the current stream soon (its token expires): open a new one with the token
   * kubelet has rotated into the file, and close the current one once the new one is open. The sets
   * stay current throughout. With no new token in the file yet, the current stream runs to its end
   * and the usual reconnect follows.
   */
  private replace(reason: string): void {
    if (this.replacement || this.closed) return;
    let token: string;
    try {
      token = this.readToken();
    } catch (err) {
      this.log.debug({ err, reason }, 'the discovery server asked for a new stream; the token file cannot be read, so the current one runs to its end');
      return;
    }
    if (token === this.streamToken) {
      this.log.debug({ reason }, 'the discovery server asked for a new stream; the token file holds no new token yet, so the current one runs to its end');
      return;
    }
    this.log.debug({ reason }, 'the discovery server asked for a new stream; opening it with the new token');
    this.replacement = this.open(token);
  }

  private promote(stream: SharedWatcherStream, token: string): void {
    const previous = this.stream;
    clearTimeout(this.reconnectTimer);
    this.replacement = undefined;
    this.stream = stream;
    this.streamToken = token;
    previous?.close();
  }

  private opened(): void {
    this.backoff.reset();
    for (const key of this.services.keys()) this.send({ op: 'watch', kind: 'service', key });
    for (const key of this.addresses.keys()) this.send({ op: 'watch', kind: 'address', key });
  }

  private failed(err: Error, statusCode?: number): void {
    if (this.closed) return;
    this.isLeavingFallback = false;
    clearTimeout(this.leaveFallbackTimer);
    for (const entry of this.services.values()) entry.isCurrent = false;
    for (const entry of this.services.values()) for (const [port, target] of entry.targets) if (!entry.bridges.has(port)) target.markStale();
    if (this.awaySince === undefined) {
      this.awaySince = Date.now();
      this.armFallback();
    }
    if (!this.isFailing) {
      this.isFailing = true;
      const fields = { err, statusCode, server: `${this.options.server.host}:${this.options.server.port}`, fallbackAfterMs: this.options.fallbackAfterMs };
      if (statusCode === 401) this.log.error(fields, 'discovery server refused our token; keeping the last sets');
      else this.log.warn(fields, 'discovery server unreachable; keeping the last sets');
    } else {
      this.log.debug({ err, statusCode, attempt: this.backoff.attempts }, 'discovery server still unreachable');
    }
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), this.backoff.next());
    this.reconnectTimer.unref();
  }

  private received(message: ServerMessage): void {
    switch (message.type) {
      case 'ping':
        this.serverSynced = message.synced;
        if (message.synced) this.markConnected();
        for (const entry of this.services.values()) {
          if (!entry.isCurrent || entry.bridges.size > 0) continue;
          for (const target of entry.targets.values()) {
            if (message.synced) target.update(target.endpoints);
            else target.markStale();
          }
        }
        return;
      case 'service': {
        const entry = this.services.get(message.key);
        if (!entry) return;
        entry.service = message.service;
        entry.slices = message.slices;
        entry.isCurrent = true;
        this.settle(entry);
        if (this.isLeavingFallback) this.unbridge(entry);
        this.publish(entry);
        if (this.isLeavingFallback) this.finishLeavingFallback();
        return;
      }
      case 'address': {
        const entry = this.addresses.get(message.key);
        if (!entry) return;
        entry.owner = message.service;
        this.settle(entry);
        return;
      }
      case 'reconnect':
        this.replace(message.reason);
        return;
      case 'error': {
        this.log.warn({ key: message.key, reason: message.message }, 'discovery server refused a subscription');
        const entry = message.key === undefined ? undefined : (this.services.get(message.key) ?? this.addresses.get(message.key));
        if (entry) this.settle(entry);
        return;
      }
    }
  }

  /** The server is back with the cluster listed: direct watches (if any) stop. */
  private markConnected(): void {
    if (this.awaySince === undefined) return;
    const awayMs = Date.now() - this.awaySince;
    this.awaySince = undefined;
    clearTimeout(this.fallbackTimer);
    if (this.fallback) this.leaveFallback(awayMs);
    else if (this.isFailing) this.log.info({ awayMs }, 'discovery server back');
    else if (!this.hasConnected) this.log.info({ server: `${this.options.server.host}:${this.options.server.port}` }, 'discovery server connected');
    this.hasConnected = true;
    this.isFailing = false;
  }

  private settle(entry: Waitable): void {
    entry.known = true;
    for (const wake of entry.waiters) wake();
    entry.waiters.clear();
  }

  private publish(entry: ServiceEntry): void {
    for (const [port, target] of entry.targets) {
      if (entry.bridges.has(port)) continue;
      const next = entry.service ? endpointsForServicePort(entry.service, entry.slices, port) : EndpointSet.EMPTY;
      const previous = target.endpoints;
      target.update(next);
      if (!this.serverSynced) target.markStale();
      if (next === previous || next.equals(previous)) continue;
      const diff = next.diff(previous);
      entry.log.info({ port, added: diff.added.length, removed: diff.removed.length, changed: diff.changed.length, ready: next.ready.length, draining: next.size - next.ready.length }, 'endpoints updated');
    }
  }

  // ---- fallback to direct watches -----------------------------------------------------------

  private armFallback(): void {
    clearTimeout(this.fallbackTimer);
    this.fallbackTimer = setTimeout(() => {
      this.fallbackStarting = this.startFallback().finally(() => (this.fallbackStarting = undefined));
    }, this.options.fallbackAfterMs);
    this.fallbackTimer.unref();
  }

  private async startFallback(): Promise<void> {
    if (this.closed || this.fallback || this.awaySince === undefined) return;
    const awayMs = Date.now() - this.awaySince;
    if (!this.options.createFallback) {
      this.log.warn({ awayMs }, 'discovery server away; no API credentials to fall back on, keeping the last sets');
      return;
    }
    let fallback: FallbackSource;
    try {
      fallback = await this.options.createFallback();
    } catch (err) {
      this.log.error({ err, awayMs }, 'discovery server away and direct API watches cannot start; keeping the last sets');
      return;
    }
    if (this.closed || this.awaySince === undefined) {
      await fallback.close();
      return;
    }
    this.fallback = fallback;
    this.log.warn({ awayMs, services: this.services.size }, 'discovery server away too long; falling back to direct API watches');
    for (const entry of this.services.values()) for (const [port, target] of entry.targets) void this.bridge(entry, port, target);
  }

  /** Feeds one of our targets from the direct source's target of the same Service port. */
  private async bridge(entry: ServiceEntry, port: number, target: TargetState, known?: Target): Promise<void> {
    const fallback = this.fallback;
    if (!fallback) return;
    const [namespace, name] = entry.key.split('/');
    const direct = known ?? (await fallback.resolve({ authority: `${name}.${namespace}.svc.${this.options.clusterDomain}:${port}` }));
    if (!direct || this.fallback !== fallback || entry.bridges.has(port)) return;
    const unsubscribe = direct.subscribe((next) => target.update(next));
    entry.bridges.set(port, { direct, unsubscribe });
    if (direct.lastSyncedAt !== undefined && !direct.stale) target.update(direct.endpoints);
  }

  /**
   * Hands each Service back to the server once its fresh state has arrived (never the state held
   * from before the outage), then closes the direct watches; bounded by the first-sync timeout.
   */
  private leaveFallback(awayMs: number): void {
    this.isLeavingFallback = true;
    this.leftAwayMs = awayMs;
    clearTimeout(this.leaveFallbackTimer);
    this.leaveFallbackTimer = setTimeout(() => void this.stopFallback(), this.options.firstSyncTimeoutMs ?? DEFAULT_FIRST_SYNC_TIMEOUT_MS);
    this.leaveFallbackTimer.unref();
    for (const entry of this.services.values()) {
      if (!entry.isCurrent || entry.bridges.size === 0) continue;
      this.unbridge(entry);
      this.publish(entry);
    }
    this.finishLeavingFallback();
  }

  private finishLeavingFallback(): void {
    if ([...this.services.values()].every((entry) => entry.bridges.size === 0)) void this.stopFallback();
  }

  private unbridge(entry: ServiceEntry): void {
    for (const bridge of entry.bridges.values()) bridge.unsubscribe();
    entry.bridges.clear();
  }

  private async stopFallback(): Promise<void> {
    const fallback = this.fallback;
    if (!fallback) return;
    this.fallback = undefined;
    clearTimeout(this.leaveFallbackTimer);
    const wasLeaving = this.isLeavingFallback;
    this.isLeavingFallback = false;
    for (const entry of this.services.values()) {
      if (entry.bridges.size === 0) continue;
      this.unbridge(entry);
      if (entry.isCurrent) this.publish(entry);
    }
    if (wasLeaving) this.log.info({ awayMs: this.leftAwayMs }, 'discovery server back; direct API watches stopped');
    await fallback.close();
  }

  // ---- housekeeping -------------------------------------------------------------------------

  private sweep(): void {
    const now = Date.now();
    const cutoff = now - (this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
    for (const [key, entry] of this.services) {
      for (const [port, { direct }] of entry.bridges) {
        const target = entry.targets.get(port)!;
        if (direct.stale) target.markStale();
        else if (direct.lastSyncedAt !== undefined) target.update(direct.endpoints);
      }
      const isIdle = entry.lastUsedAt < cutoff && [...entry.targets.values()].every((t) => t.subscriberCount === 0 && (t.idleSince ?? now) < cutoff);
      if (!isIdle) continue;
      this.unbridge(entry);
      this.services.delete(key);
      this.send({ op: 'unwatch', kind: 'service', key });
    }
    for (const [key, entry] of this.addresses) {
      if (entry.lastUsedAt >= cutoff) continue;
      this.addresses.delete(key);
      this.send({ op: 'unwatch', kind: 'address', key });
    }
  }
}
