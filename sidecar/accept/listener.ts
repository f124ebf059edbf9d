import { EventEmitter } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Logger } from '../../src/common/log-format.js';
import { formatHostPort, type HostPort } from '../../src/common/values.js';
import type { ProxyMetrics } from '../admin/metrics.js';
import type { ConnectionContext } from './connection-context.js';
import type { ProtocolHandler } from '../protocols/handler.js';
import { detectProtocol, type DetectedProtocol } from './detect.js';

/**
 * App connections open at once, at most: one more is closed as soon as it is accepted. Each idle
 * app connection costs about 20 KiB (an HTTP/2 one after its preface: 500 of them added 10 MiB in
 * test/bench/abuse.bench.ts), so 4,096 idle ones stay near 80 MiB, well inside the sidecar's
 * 256 MiB limit, while an app that leaks connections (or a flood on a standalone listener) cannot
 * get the proxy OOM-killed and take the Pod's outbound traffic with it. An app needing more sets
 * --max-app-connections.
 */
export const DEFAULT_MAX_APP_CONNECTIONS = 4_096;
/** A refused connection is logged at most this often (with how many were refused meanwhile). */
const REFUSED_LOG_INTERVAL_MS = 10_000;

export interface ListenerOptions {
  listen: HostPort;
  detectTimeoutMs: number;
  /** App connections open at once, at most (DEFAULT_MAX_APP_CONNECTIONS). */
  maxConnections: number;
  /** In-Pod mode: where each redirected connection was headed (undefined when unknown). */
  readOriginalDst?: (socket: Socket) => HostPort | undefined;
}

export type RelaySet = Record<Exclude<DetectedProtocol, 'closed'>, ProtocolHandler>;

/**
 * Accepts the app's connections (redirected ones in a Pod, or direct ones in standalone mode),
 * sniffs each one's protocol and hands it to that protocol's relay. Emits 'idle' whenever the
 * last open connection closes and 'busy' when one opens while none was (shutdown watches both).
 */
export class ProxyListener extends EventEmitter {
  private readonly server: net.Server;
  private readonly connections = new Set<Socket>();
  private nextConnId = 1;
  /** Connections refused since the last warning, and when that warning was logged. */
  private refusedSinceLog = 0;
  private refusedLoggedAt = -Infinity;

  constructor(
    private readonly options: ListenerOptions,
    private readonly relays: RelaySet,
    private readonly metrics: ProxyMetrics,
    private readonly log: Logger,
  ) {
    super();
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server.maxConnections = options.maxConnections;
    this.server.on('drop', () => this.refused());
    this.server.on('error', (err) => this.log.error({ err }, 'listener error'));
  }

  get openConnections(): number {
    return this.connections.size;
  }

  async listen(): Promise<AddressInfo> {
    const { host, port } = this.options.listen;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting; open connections keep being served. */
  async stopAccepting(): Promise<void> {
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Ends every open connection at once (after the grace period). */
  destroyAll(): void {
    for (const socket of this.connections) socket.destroy();
  }

  /** Node closed a connection at accept because maxConnections were open: counted, and said at most every 10 s. */
  private refused(): void {
    this.metrics.connectionRefused();
    this.refusedSinceLog++;
    const now = performance.now();
    if (now - this.refusedLoggedAt < REFUSED_LOG_INTERVAL_MS) return;
    this.log.warn(
      { refused: this.refusedSinceLog, open: this.connections.size, maxConnections: this.options.maxConnections },
      `app connection refused: ${this.options.maxConnections} are open, the limit (--max-app-connections); the app keeps more connections open than it should, or the limit is too low for it`,
    );
    this.refusedSinceLog = 0;
    this.refusedLoggedAt = now;
  }

  private accept(socket: Socket): void {
    const connId = this.nextConnId++;
    this.connections.add(socket);
    if (this.connections.size === 1) this.emit('busy');
    socket.on('error', (err) => this.log.debug({ connId, err }, 'app connection error'));
    const originalDst = this.options.readOriginalDst?.(socket);
    const ctx: ConnectionContext = {
      connId,
      originalDst,
      dstKey: originalDst ? formatHostPort(originalDst.host, originalDst.port) : '',
      routes: new Map(),
    };
    let protocol: DetectedProtocol | 'detecting' = 'detecting';
    socket.once('close', () => {
      this.connections.delete(socket);
      if (protocol !== 'detecting' && protocol !== 'closed') this.metrics.connectionClosed(protocol);
      if (this.connections.size === 0) this.emit('idle');
    });
    detectProtocol(socket, this.options.detectTimeoutMs).then((detected) => {
      if (socket.destroyed) return;
      protocol = detected;
      if (detected === 'closed') {
        socket.destroy();
        return;
      }
      this.metrics.connectionOpened(detected);
      this.log.debug({ connId, protocol: detected, originalDst: ctx.dstKey || undefined }, 'app connection');
      this.relays[detected].handle(socket, ctx);
    });
  }
}
