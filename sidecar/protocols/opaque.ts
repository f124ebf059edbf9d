import type { Socket } from 'node:net';
import { formatHostPort, type HostPort } from '../../src/common/values.js';
import type { ConnectionContext } from '../accept/connection-context.js';
import { openPipe } from '../wire/pipe.js';
import type { ProtocolHandler, RelayDeps } from './handler.js';

/**
 * Anything that is not HTTP: a byte pipe to the original destination, unchanged. In standalone
 * mode there is none, so opaque connections go to `--opaque-to` or are closed with one warning.
 */
export class OpaqueRelay implements ProtocolHandler {
  private readonly open = new Set<Socket>();
  private warnedNoDestination = false;

  constructor(private readonly deps: RelayDeps) {}

  handle(socket: Socket, ctx: ConnectionContext): void {
    const destination: HostPort | undefined = ctx.originalDst ?? this.deps.opaqueTo;
    if (destination === undefined) {
      this.deps.metrics.passthrough('opaque', 'no-destination');
      if (!this.warnedNoDestination) {
        this.warnedNoDestination = true;
        this.deps.log.warn({ connId: ctx.connId }, 'closing non-HTTP connections: standalone mode has no original destination; set --opaque-to HOST:PORT to forward them');
      }
      socket.destroy();
      return;
    }
    this.deps.metrics.passthrough('opaque', ctx.originalDst ? 'opaque' : 'opaque-to');
    this.open.add(socket);
    const key = formatHostPort(destination.host, destination.port);
    openPipe(socket, destination, key, this.deps.connectTimeoutMs, {
      onConnected: () => undefined,
      onConnectFailed: (err) => {
        this.deps.log.debug({ connId: ctx.connId, destination: key, err }, 'opaque upstream failed');
        socket.destroy();
      },
      onClosed: () => this.open.delete(socket),
    });
  }

  close(): void {
    for (const socket of this.open) socket.end();
  }
}
