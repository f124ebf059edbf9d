import { Resolver } from 'node:dns/promises';
import type { Logger } from '../../src/common/log-format.js';
import type { HostPort } from '../../src/common/values.js';
import { DEFAULT_HTTP_PORT, parseServiceHost, splitAuthority } from '../route/authority.js';
import { EndpointSet, makeEndpoint } from './endpoint-set.js';
import { TargetState, type EndpointSource, type Target, type TargetHint } from './source.js';

export const DEFAULT_DNS_INTERVAL_MS = 5000;
export const DEFAULT_DNS_TIMEOUT_MS = 1000;
const DNS_IDLE_TIMEOUT_MS = 5 * 60_000;
/** Answers that mean "no such name / no such record": an empty set, not a failure. */
const EMPTY_ANSWER_CODES = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN']);

export interface DnsSourceOptions {
  namespace: string;
  clusterDomain: string;
  /** `--upstream-dns name:port` (standalone): every hint resolves to this name's A/AAAA records. */
  upstream?: HostPort;
  /** DNS servers ("127.0.0.1:5353", "[::1]:53"); the system's when absent. */
  servers?: string[];
  /** How often a name is re-resolved. */
  intervalMs?: number;
  /** One query's timeout. */
  timeoutMs?: number;
  /** A name's re-resolution stops after this long without a subscriber or a resolve. */
  idleTimeoutMs?: number;
  /**
   * Fallback mode (in a Pod): answer for Service names only while this says so (the Kubernetes API is
   * unreachable); the upstream mode ignores it.
   */
  isActive?: () => boolean;
}

interface DnsName {
  host: string;
  port: number;
  target: TargetState;
  timer: NodeJS.Timeout | undefined;
  firstAnswer: Promise<void>;
  lastUsedAt: number;
  hasFailed: boolean;
}

/**
 * The A and AAAA records of a name (a headless Service's Pods), re-resolved on an interval. Standalone
 * (`--upstream-dns`) it takes every request; in a Pod it is the fallback for Service names while the
 * API cannot be reached. A failed lookup keeps the last good set and marks it stale; a name that no
 * longer exists (NXDOMAIN) empties it.
 */
export class DnsSource implements EndpointSource {
  readonly name = 'dns';
  private readonly resolver: Resolver;
  private readonly names = new Map<string, DnsName>();
  private readonly intervalMs: number;
  private readonly idleTimeoutMs: number;
  private closed = false;

  constructor(
    private readonly options: DnsSourceOptions,
    private readonly log: Logger,
  ) {
    this.resolver = new Resolver({ timeout: options.timeoutMs ?? DEFAULT_DNS_TIMEOUT_MS, tries: 2 });
    if (options.servers && options.servers.length > 0) this.resolver.setServers(options.servers);
    this.intervalMs = options.intervalMs ?? DEFAULT_DNS_INTERVAL_MS;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DNS_IDLE_TIMEOUT_MS;
  }

  async resolve(hint: TargetHint): Promise<Target | undefined> {
    if (this.closed) return undefined;
    const { upstream } = this.options;
    if (upstream) return this.watchName(upstream.host, upstream.port, `${upstream.host}:${upstream.port}`).then((n) => n.target);
    if (this.options.isActive && !this.options.isActive()) return undefined;
    const authority = hint.authority === undefined ? undefined : splitAuthority(hint.authority);
    const service = authority && parseServiceHost(authority.host, this.options.namespace, this.options.clusterDomain);
    if (!authority || !service) return undefined;
    const port = authority.port ?? hint.originalDst?.port ?? DEFAULT_HTTP_PORT;
    const fqdn = `${service.name}.${service.namespace}.svc.${this.options.clusterDomain}`;
    const name = await this.watchName(fqdn, port, `${service.namespace}/${service.name}:${port}`);
    return name.target.endpoints.size > 0 ? name.target : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const name of this.names.values()) clearTimeout(name.timer);
    this.names.clear();
    this.resolver.cancel();
  }

  private async watchName(host: string, port: number, id: string): Promise<DnsName> {
    const key = `${host}:${port}`;
    let name = this.names.get(key);
    if (!name) {
      const created: DnsName = { host, port, target: new TargetState(id), timer: undefined, firstAnswer: Promise.resolve(), lastUsedAt: Date.now(), hasFailed: false };
      created.firstAnswer = this.refresh(created);
      this.names.set(key, created);
      name = created;
    }
    name.lastUsedAt = Date.now();
    await name.firstAnswer;
    return name;
  }

  private async refresh(name: DnsName): Promise<void> {
    const [v4, v6] = await Promise.allSettled([this.resolver.resolve4(name.host), this.resolver.resolve6(name.host)]);
    if (this.closed) return;
    const failure = [v4, v6].find((r): r is PromiseRejectedResult => r.status === 'rejected' && !EMPTY_ANSWER_CODES.has((r.reason as NodeJS.ErrnoException).code ?? ''));
    if (failure) {
      name.target.markStale();
      if (!name.hasFailed) this.log.warn({ service: name.target.id, host: name.host, err: failure.reason as Error }, 'DNS lookup failed, keeping last good set');
      name.hasFailed = true;
    } else {
      const addresses = [v4, v6].flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
      const next = EndpointSet.of(addresses.map((address) => makeEndpoint(address, name.port)));
      const diff = next.diff(name.target.endpoints);
      name.target.update(next);
      if (name.hasFailed) this.log.info({ service: name.target.id, host: name.host }, 'DNS lookups work again');
      name.hasFailed = false;
      if (diff.added.length + diff.removed.length > 0) {
        this.log.info({ service: name.target.id, host: name.host, added: diff.added.length, removed: diff.removed.length, ready: next.ready.length }, 'endpoints updated');
      }
    }
    this.schedule(name);
  }

  private schedule(name: DnsName): void {
    if (this.closed) return;
    const isIdle = name.target.subscriberCount === 0 && Date.now() - name.lastUsedAt > this.idleTimeoutMs;
    if (isIdle) {
      this.names.delete(`${name.host}:${name.port}`);
      return;
    }
    name.timer = setTimeout(() => void this.refresh(name), this.intervalMs);
    name.timer.unref();
  }
}
