import type { Socket } from 'node:net';
import type { Logger } from '../../src/common/log-format.js';
import type { HostPort } from '../../src/common/values.js';
import type { ProxyMetrics } from '../admin/metrics.js';
import type { TargetRegistry } from '../route/target-registry.js';
import type { ConnectionContext } from '../accept/connection-context.js';

/**
 * One protocol's relay: takes an accepted app connection whose first bytes were sniffed (and put
 * back), and serves it until it closes. The listener knows only this interface, so a relay can be
 * replaced whole — e.g. a frame-level HTTP/2 relay that remaps stream ids instead of creating one
 * stream object per request on each side.
 */
export interface ProtocolHandler {
  handle(socket: Socket, ctx: ConnectionContext): void;
  /** Stops serving: open connections are closed gracefully. */
  close(): void;
}

/** What every relay needs. */
export interface RelayDeps {
  registry: TargetRegistry;
  metrics: ProxyMetrics;
  log: Logger;
  /** Standalone mode: where opaque (non-HTTP) connections go, since they have no original destination. */
  opaqueTo?: HostPort;
  connectTimeoutMs: number;
}
