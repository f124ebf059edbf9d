import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../common/logger.js';
import {
  MAX_BUFFERED_BYTES,
  MAX_MESSAGE_BYTES,
  NDJSON_CONTENT_TYPE,
  PING_INTERVAL_MS,
  RECONNECT_LEAD_MS,
  SUBSCRIPTIONS_PATH,
  type ServerMessage,
  type SubscriptionKind,
} from '../../sidecar/discovery/shared-protocol.js';
import type { ClusterIndex, ClusterIndexEvents } from './cluster-index.js';
import { Subscriber, type SubscriberHost } from './subscriber.js';
import type { TokenReviewer } from './token-review.js';

export interface DiscoveryServerOptions {
  host: string;
  port: number;
  pingIntervalMs?: number;
  maxBufferedBytes?: number;
  /** Sidecar connections accepted at once; more get 503 (they retry, possibly at another replica). */
  maxConnections?: number;
  /** How long before a stream's token expires the sidecar is asked to reconnect (RECONNECT_LEAD_MS). */
  reconnectLeadMs?: number;
}

export const DEFAULT_MAX_CONNECTIONS = 20_000;

/**
 * `meshlet discovery`'s HTTP server: authenticates each sidecar (TokenReview), then streams it the
 * states it watches (protocol: sidecar/discovery/shared-protocol.ts). Each state is encoded once per
 * change and written to every subscriber of it. GET /healthz, /readyz (200 once the cluster is
 * listed) and /metrics (Prometheus text).
 */
export class DiscoveryServer implements ClusterIndexEvents, SubscriberHost {
  private readonly server: Server;
  private readonly subscribers = new Set<Subscriber>();
  /** Before each subscriber's token expires it is asked to reconnect; when it expires, its stream is ended. */
  private readonly expiryTimers = new Map<Subscriber, NodeJS.Timeout>();
  private readonly serviceSubscribers = new Map<string, Set<Subscriber>>();
  private readonly addressSubscribers = new Map<string, Set<Subscriber>>();
  /** The last encoded state of each watched Service, and the last owner sent for each watched address. */
  private readonly serviceLines = new Map<string, string>();
  private readonly addressOwners = new Map<string, string | null>();
  private readonly sockets = new Set<Socket>();
  private readonly pingTimer: NodeJS.Timeout;
  private nextId = 1;
  private index!: ClusterIndex;
  /** Subscribers dropped for not reading, and subscriptions refused (401), since start. */
  private droppedSubscribers = 0;
  private refusedSubscriptions = 0;

  constructor(
    private readonly options: DiscoveryServerOptions,
    private readonly reviewer: TokenReviewer,
    private readonly log: Logger,
  ) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.error({ err }, 'request failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      });
    });
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.server.requestTimeout = 0;
    this.pingTimer = setInterval(() => this.ping(), options.pingIntervalMs ?? PING_INTERVAL_MS);
    this.pingTimer.unref();
  }

  /** The index to serve from (it reports to this server through ClusterIndexEvents). */
  attach(index: ClusterIndex): void {
    this.index = index;
  }

  get connectionCount(): number {
    return this.subscribers.size;
  }

  /** Distinct Services and addresses some sidecar watches now. */
  get watched(): { services: number; addresses: number } {
    return { services: this.serviceSubscribers.size, addresses: this.addressSubscribers.size };
  }

  async listen(): Promise<AddressInfo> {
    this.server.listen(this.options.port, this.options.host);
    await once(this.server, 'listening');
    return this.server.address() as AddressInfo;
  }

  /** Ends every stream cleanly (sidecars reconnect elsewhere) and stops listening. */
  async close(): Promise<void> {
    clearInterval(this.pingTimer);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const subscriber of [...this.subscribers]) subscriber.end();
    for (const socket of this.sockets) socket.destroySoon();
    await closed;
  }

  // ---- ClusterIndexEvents -------------------------------------------------------------------

  servicesChanged(keys: ReadonlySet<string>): void {
    if (!this.index.isSynced) return;
    for (const key of keys) if (this.serviceSubscribers.has(key)) this.publishService(key);
  }

  addressesChanged(): void {
    if (!this.index.isSynced) return;
    for (const address of this.addressSubscribers.keys()) this.publishAddress(address);
  }

  healthChanged(synced: boolean): void {
    this.log.info({ synced, ...this.index.counts }, synced ? 'cluster listed; serving' : 'lost the API; sidecars keep their last sets');
    if (synced) {
      for (const key of this.serviceSubscribers.keys()) this.publishService(key);
      for (const address of this.addressSubscribers.keys()) this.publishAddress(address);
    }
    this.ping();
  }

  // ---- SubscriberHost -----------------------------------------------------------------------

  watch(subscriber: Subscriber, kind: SubscriptionKind, key: string): void {
    const registry = kind === 'service' ? this.serviceSubscribers : this.addressSubscribers;
    let set = registry.get(key);
    if (!set) registry.set(key, (set = new Set()));
    set.add(subscriber);
    if (!this.index.isSynced) return;
    if (kind === 'service') {
      const line = this.serviceLines.get(key) ?? this.encodeService(key);
      this.serviceLines.set(key, line);
      subscriber.write(line);
    } else {
      const owner = this.addressOwners.get(key) ?? this.index.ownerOf(key);
      this.addressOwners.set(key, owner);
      subscriber.send({ type: 'address', key, service: owner });
    }
  }

  unwatch(subscriber: Subscriber, kind: SubscriptionKind, key: string): void {
    const registry = kind === 'service' ? this.serviceSubscribers : this.addressSubscribers;
    const set = registry.get(key);
    set?.delete(subscriber);
    if (set?.size !== 0) return;
    registry.delete(key);
    if (kind === 'service') this.serviceLines.delete(key);
    else this.addressOwners.delete(key);
  }

  closed(subscriber: Subscriber): void {
    if (!this.subscribers.delete(subscriber)) return;
    clearTimeout(this.expiryTimers.get(subscriber));
    this.expiryTimers.delete(subscriber);
    if (subscriber.wasDropped) this.droppedSubscribers++;
    for (const key of subscriber.services) this.unwatch(subscriber, 'service', key);
    for (const key of subscriber.addresses) this.unwatch(subscriber, 'address', key);
    this.log.debug({ connId: subscriber.id, user: subscriber.user }, 'subscriber left');
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') return text(res, 200, 'ok\n');
    if (req.method === 'GET' && path === '/readyz') return this.index.isSynced ? text(res, 200, 'ready\n') : text(res, 503, 'not ready: the cluster is not listed yet\n');
    if (req.method === 'GET' && path === '/metrics') return text(res, 200, this.renderMetrics(), 'text/plain; version=0.0.4; charset=utf-8');
    if (path !== SUBSCRIPTIONS_PATH) return text(res, 404, `no such path ${JSON.stringify(path)}; allowed: POST ${SUBSCRIPTIONS_PATH}, GET /healthz, GET /readyz, GET /metrics\n`);
    if (req.method !== 'POST') return text(res, 405, `method ${req.method} not allowed; allowed: POST ${SUBSCRIPTIONS_PATH}\n`);
    const token = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!token) {
      this.refusedSubscriptions++;
      return text(res, 401, 'no bearer token; allowed: Authorization: Bearer <projected service-account token with audience meshlet-discovery>\n');
    }
    const verdict = await this.reviewer.review(token);
    if (verdict.kind === 'refused') {
      this.refusedSubscriptions++;
      this.log.debug({ reason: verdict.reason }, 'subscriber refused');
      return text(res, 401, `token refused: ${verdict.reason}; allowed: a projected service-account token with audience meshlet-discovery\n`);
    }
    if (verdict.kind === 'unavailable') return text(res, 503, `cannot check tokens now: ${verdict.reason}\n`);
    if (this.subscribers.size >= (this.options.maxConnections ?? DEFAULT_MAX_CONNECTIONS)) return text(res, 503, `${this.subscribers.size} sidecars connected; allowed: at most ${this.options.maxConnections ?? DEFAULT_MAX_CONNECTIONS} per replica\n`);

    res.writeHead(200, { 'content-type': NDJSON_CONTENT_TYPE, 'cache-control': 'no-cache' });
    res.flushHeaders();
    const id = this.nextId++;
    const subscriber = new Subscriber(id, verdict.user, req, res, this, this.options.maxBufferedBytes ?? MAX_BUFFERED_BYTES, this.log);
    this.subscribers.add(subscriber);
    if (verdict.expiresAt !== undefined) this.limitToToken(subscriber, verdict.expiresAt, verdict.user);
    this.log.debug({ connId: id, user: verdict.user }, 'subscriber joined');
    subscriber.send({ type: 'ping', synced: this.index.isSynced });
  }

  /**
   * A stream lasts no longer than the token it was opened with. Shortly before the token expires the
   * sidecar is asked to open a new stream with the token kubelet has rotated in meanwhile (at 80% of
   * the token's life); whatever is still open at expiry is ended.
   */
  private limitToToken(subscriber: Subscriber, expiresAt: number, user: string): void {
    const at = (when: number, run: () => void) => {
      const timer = setTimeout(run, Math.max(0, when - Date.now()));
      timer.unref();
      this.expiryTimers.set(subscriber, timer);
    };
    const end = () => {
      this.log.debug({ connId: subscriber.id, user }, 'subscriber token expired: stream ended');
      subscriber.end();
    };
    if (expiresAt <= Date.now()) return at(expiresAt, end);
    at(expiresAt - (this.options.reconnectLeadMs ?? RECONNECT_LEAD_MS), () => {
      subscriber.send({ type: 'reconnect', reason: `the token this stream was opened with expires at ${new Date(expiresAt).toISOString()}` });
      at(expiresAt, end);
    });
  }

  private publishService(key: string): void {
    const line = this.encodeService(key);
    if (this.serviceLines.get(key) === line) return;
    this.serviceLines.set(key, line);
    for (const subscriber of [...(this.serviceSubscribers.get(key) ?? [])]) subscriber.write(line);
  }

  private publishAddress(address: string): void {
    const owner = this.index.ownerOf(address);
    if (this.addressOwners.get(address) === owner) return;
    this.addressOwners.set(address, owner);
    const line = `${JSON.stringify({ type: 'address', key: address, service: owner } satisfies ServerMessage)}\n`;
    for (const subscriber of [...(this.addressSubscribers.get(address) ?? [])]) subscriber.write(line);
  }

  /** A Service's state as one line, or an error line when it would exceed MAX_MESSAGE_BYTES. */
  private encodeService(key: string): string {
    const line = `${JSON.stringify({ type: 'service', key, ...this.index.state(key) } satisfies ServerMessage)}\n`;
    if (line.length <= MAX_MESSAGE_BYTES) return line;
    this.log.warn({ service: key, messageBytes: line.length, maxMessageBytes: MAX_MESSAGE_BYTES }, 'service state too large to send');
    return `${JSON.stringify({ type: 'error', key, message: `the state of ${key} is ${line.length} bytes; allowed: at most ${MAX_MESSAGE_BYTES} bytes per message` } satisfies ServerMessage)}\n`;
  }

  private renderMetrics(): string {
    const { services, slices } = this.index.counts;
    const lines: string[] = [];
    const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[string, number]>) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    };
    metric('meshlet_discovery_server_synced', 'gauge', '1 while every Service and EndpointSlice is listed and the API is in contact.', [['', this.index.isSynced ? 1 : 0]]);
    metric('meshlet_discovery_server_objects', 'gauge', 'Objects held, slimmed.', [['{resource="services"}', services], ['{resource="endpointslices"}', slices]]);
    metric('meshlet_discovery_server_subscribers', 'gauge', 'Sidecar streams open.', [['', this.subscribers.size]]);
    metric('meshlet_discovery_server_watched', 'gauge', 'Distinct keys some sidecar watches.', [['{kind="service"}', this.serviceSubscribers.size], ['{kind="address"}', this.addressSubscribers.size]]);
    metric('meshlet_discovery_server_dropped_subscribers_total', 'counter', 'Sidecar streams disconnected for not reading.', [['', this.droppedSubscribers]]);
    metric('meshlet_discovery_server_refused_subscriptions_total', 'counter', 'Subscriptions answered 401.', [['', this.refusedSubscriptions]]);
    return `${lines.join('\n')}\n`;
  }

  private ping(): void {
    const line = `${JSON.stringify({ type: 'ping', synced: this.index?.isSynced ?? false } satisfies ServerMessage)}\n`;
    for (const subscriber of [...this.subscribers]) subscriber.write(line);
  }
}

function text(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
