import net, { type Socket } from 'node:net';
import type { HostPort } from '../../src/common/values.js';
import { UpstreamConnectError } from '../upstream/connect-error.js';

/** What the owner of a byte pipe hears. */
export interface PipeEvents {
  /** Connected: write what must go first (an Upgrade request head, say); then bytes flow both ways. */
  onConnected(upstream: Socket): void;
  /** No connection: nothing was sent. The app's socket is the owner's to answer or close. */
  onConnectFailed(err: UpstreamConnectError): void;
  /** Both sides are done (called once, whether or not it ever connected). */
  onClosed(): void;
}

/**
 * A two-way byte pipe between an app socket and a new connection to `to`: bytes pass unchanged
 * (with the sockets' own backpressure) until either side ends. An upstream that ends ends the app
 * side gracefully; an app that goes away, or an upstream error once connected, tears both down.
 * Returns the upstream socket, so its owner can end the pipe early.
 */
export function openPipe(app: Socket, to: HostPort, key: string, connectTimeoutMs: number, events: PipeEvents): Socket {
  const upstream = net.connect({ host: to.host, port: to.port, timeout: connectTimeoutMs, noDelay: true });
  let connected = false;
  let closed = false;
  const onClosed = () => {
    if (closed) return;
    closed = true;
    events.onClosed();
  };
  upstream.once('timeout', () => {
    if (!connected) upstream.destroy(new Error(`no connection within ${connectTimeoutMs} ms`));
  });
  upstream.once('connect', () => {
    connected = true;
    upstream.setTimeout(0);
    if (app.destroyed) {
      upstream.destroy();
      return;
    }
    events.onConnected(upstream);
    upstream.pipe(app);
    app.pipe(upstream);
  });
  upstream.on('error', (err) => {
    if (connected) app.destroy();
    else events.onConnectFailed(new UpstreamConnectError(key, err));
  });
  app.on('error', () => upstream.destroy());
  upstream.once('close', () => {
    onClosed();
    if (!app.destroyed) app.end();
  });
  app.once('close', () => {
    onClosed();
    upstream.destroy();
  });
  return upstream;
}
