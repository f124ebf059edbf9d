import type { Socket } from 'node:net';
import { H1Parser, type H1Head, type H1ParserEvents, type H1RawHead } from './parser.js';

/** The request currently using an upstream connection: it gets the response as it is parsed. */
export interface UpstreamUser {
  /** `raw`: where the head's bytes are, valid only during this call. */
  onResponseHead(head: H1Head, raw: H1RawHead): void;
  onResponseBody(data: Buffer): void;
  onResponseEnd(trailers: string[] | undefined): void;
  /**
   * Bytes arrived: the user parses them (so it can batch its writes to the app around the parse).
   * `chunk` is a view of the shared read buffer, valid until this returns.
   */
  onUpstreamData(conn: H1UpstreamConnection, chunk: Buffer): void;
  /** The connection failed or closed before the response was complete. */
  onUpstreamFailed(conn: H1UpstreamConnection, reason: string, code: string | undefined): void;
  /** The socket's write buffer emptied after a write returned false. */
  onUpstreamDrain(): void;
}

/** Hands a finished connection back: kept for the next request, or closed. */
export interface UpstreamOwner {
  release(conn: H1UpstreamConnection): void;
  forget(conn: H1UpstreamConnection): void;
}

/**
 * One kept-alive HTTP/1.1 connection to an endpoint: a socket and a response parser. It serves one
 * request at a time for whichever user holds it; between requests it sits idle in its pool.
 */
export class H1UpstreamConnection implements H1ParserEvents {
  readonly parser: H1Parser;
  user: UpstreamUser | undefined = undefined;
  /** It served a request before this one: a close with no reply may be the peer's idle timeout. */
  reused = false;
  /** Bytes of the current response arrived. */
  responded = false;
  /** The peer keeps the connection open after this response. */
  keepAlive = true;
  /** Whether the socket is gone. */
  closed = false;
  /** When it last went back to its pool idle. */
  idleSince = 0;
  private lastError: NodeJS.ErrnoException | undefined = undefined;

  constructor(
    readonly socket: Socket,
    readonly owner: UpstreamOwner,
  ) {
    this.parser = new H1Parser('response', this);
    socket.on('drain', () => this.user?.onUpstreamDrain());
    socket.on('error', (err: NodeJS.ErrnoException) => (this.lastError = err));
    socket.on('close', () => this.onClose());
  }

  /** Starts a request: the response parser learns its method (HEAD responses have no body). */
  begin(user: UpstreamUser, method: string): void {
    this.user = user;
    this.responded = false;
    this.parser.requestMethod = method;
  }

  /** The request is over; the connection goes back to its pool when it can carry another. */
  finish(reusable: boolean): void {
    this.user = undefined;
    this.reused = true;
    if (reusable && this.keepAlive && !this.closed && this.parser.isIdle) {
      // Reading may have been paused for a slow app as the response's last bytes went out: an idle
      // connection reads again (to see the endpoint close it, and the next response).
      if (this.socket.isPaused()) this.socket.resume();
      this.owner.release(this);
    } else {
      this.destroy();
    }
  }

  destroy(): void {
    this.user = undefined;
    this.socket.destroy();
  }

  onHead(head: H1Head, raw: H1RawHead): void {
    if (head.status >= 200 && !head.keepAlive) this.keepAlive = false;
    this.user?.onResponseHead(head, raw);
  }

  onBody(data: Buffer): void {
    this.user?.onResponseBody(data);
  }

  onEnd(trailers: string[] | undefined): void {
    // Nothing may follow a response until the next request: bytes after it end the connection.
    this.parser.pause();
    this.user?.onResponseEnd(trailers);
  }

  onError(_status: number, reason: string): void {
    this.keepAlive = false;
    const user = this.user;
    this.destroy();
    user?.onUpstreamFailed(this, `malformed response: ${reason}`, 'MESHLET_MALFORMED_RESPONSE');
  }

  /** A read from the socket (opened with sharedReadOptions, ./read-buffer.ts): a view valid until this returns. */
  onRead(chunk: Buffer): void {
    const user = this.user;
    if (user === undefined) {
      // Bytes nobody asked for (a response to no request): the connection cannot be trusted.
      this.destroy();
      return;
    }
    this.responded = true;
    user.onUpstreamData(this, chunk);
  }

  private onClose(): void {
    this.closed = true;
    this.owner.forget(this);
    const user = this.user;
    if (user === undefined) return;
    if (this.responded && this.parser.inBody && this.parser.finishOnClose()) return;
    this.user = undefined;
    const err = this.lastError;
    user.onUpstreamFailed(this, err?.message ?? 'the endpoint closed the connection', err?.code);
  }
}
