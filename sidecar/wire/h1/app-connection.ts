// Imported, not the globals: in Node 20 globalThis.performance and .Buffer are getters run on every use.
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ConnectionContext } from '../../accept/connection-context.js';
import { FRAMING, H1Parser, type H1Head, type H1ParserEvents, type H1RawHead } from './parser.js';
import { isBorrowed, readIntoSharedBuffer, streamSharedReads } from './read-buffer.js';
import { CLOSE_LINES, serializeReply } from './serializer.js';

/** What an app connection asks of the relay that owns it: one request's life, and bookkeeping. */
export interface H1RequestHandler {
  /**
   * A request head arrived; `conn.exchange` must be set (possibly to a finished one) before this
   * returns. `raw` says where its bytes are, valid only during this call.
   */
  startRequest(conn: H1AppConnection, head: H1Head, raw: H1RawHead): void;
  /** An Upgrade or CONNECT request: the connection stops being HTTP; `rest` is what followed the head. */
  startUpgrade(conn: H1AppConnection, head: H1Head, rest: Buffer): void;
  connectionClosed(conn: H1AppConnection): void;
}

/** One request on an app connection, as the connection sees it (the relay's exchange implements it). */
export interface H1AppExchange {
  onRequestBody(data: Buffer): void;
  /** A read from the app has been parsed: body bytes held back from it go out now. */
  onReadParsed(): void;
  onRequestEnd(trailers: string[] | undefined): void;
  /** The request body was malformed after its head was forwarded. */
  onRequestError(): void;
  /** The app's socket drained after a write returned false. */
  onAppDrain(): void;
  /** The app went away before the response was complete. */
  onAppClosed(): void;
}

/**
 * One app connection speaking HTTP/1.x: parses requests from its bytes and hands each to the
 * relay, one at a time. Pipelined requests wait, unparsed, until the response before them is
 * complete, so responses go back in order and at most one read of input (64 KiB, the socket's read
 * size) is held per connection; reading pauses whenever the request's endpoint is slower than the
 * app (backpressure). Reads go into the buffer all HTTP/1.1 sockets share (./read-buffer.ts).
 */
export class H1AppConnection implements H1ParserEvents {
  readonly parser: H1Parser;
  exchange: H1AppExchange | undefined = undefined;
  /** When the first byte of a request head not yet complete arrived (0: none pending). */
  headStartedAt = 0;
  /** When the last response was complete (or the connection opened), for the idle timeout. */
  idleSince: number;
  /** The connection closes once the current response is complete. */
  closeAfterResponse = false;
  /** The app ended its side: no more requests. */
  private appEnded = false;
  private parsing = false;
  /** Input the parser has not taken yet (it is paused): at most one read. */
  private leftover: Buffer | undefined = undefined;
  /** An upstream socket corked while a read is parsed, uncorked after (one write per read). */
  corked: Socket | undefined = undefined;
  private upgradeHead: H1Head | undefined = undefined;
  private closed = false;

  constructor(
    readonly socket: Socket,
    readonly ctx: ConnectionContext,
    private readonly handler: H1RequestHandler,
  ) {
    this.parser = new H1Parser('request', this);
    this.idleSince = performance.now();
    socket.on('drain', this.onDrain);
    socket.on('end', this.onAppEnd);
    socket.on('close', () => this.onClose());
  }

  /**
   * Starts reading the (paused) socket: the bytes already read (those protocol detection put back)
   * first, then each read as a view of the shared read buffer, or as 'data' events where this Node
   * cannot read into it.
   */
  start(): void {
    const socket = this.socket;
    const early = socket.read() as Buffer | null;
    if (!readIntoSharedBuffer(socket, this.onData)) socket.on('data', this.onData);
    if (early !== null) this.onData(early);
    if (!this.parser.isPaused && !this.parser.isDone && !this.closed && this.leftover === undefined) socket.resume();
  }

  /** Corks `socket` until the read being parsed is done (one write per read); returns it. */
  corkWhileParsing(socket: Socket): Socket {
    if (this.parsing && this.corked === undefined) {
      socket.cork();
      this.corked = socket;
    }
    return socket;
  }

  /** Uncorks what was corked for this read, unless a read is being parsed (which uncorks it after). */
  uncorkUnlessParsing(): void {
    const corked = this.corked;
    if (this.parsing || corked === undefined) return;
    this.corked = undefined;
    corked.uncork();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** No request in flight and no head begun. */
  get isIdle(): boolean {
    return this.exchange === undefined && this.headStartedAt === 0 && this.leftover === undefined;
  }

  // ---------------------------------------------------------------- input

  private readonly onDrain = (): void => this.exchange?.onAppDrain();

  private readonly onData = (chunk: Buffer): void => {
    if (this.leftover !== undefined) {
      // Only possible if data was already queued when reading paused: keep it behind the rest.
      this.leftover = Buffer.concat([this.leftover, chunk]);
      return;
    }
    this.feed(chunk);
  };

  private feed(chunk: Buffer): void {
    if (this.exchange === undefined && this.headStartedAt === 0 && this.parser.isIdle) this.headStartedAt = performance.now();
    this.parsing = true;
    let offset: number;
    try {
      offset = this.parser.execute(chunk);
      this.exchange?.onReadParsed();
    } finally {
      this.parsing = false;
      const corked = this.corked;
      if (corked !== undefined) {
        this.corked = undefined;
        corked.uncork();
      }
    }
    if (this.upgradeHead !== undefined) {
      const head = this.upgradeHead;
      this.upgradeHead = undefined;
      this.socket.off('data', this.onData);
      this.socket.off('drain', this.onDrain);
      this.socket.off('end', this.onAppEnd);
      // From here the socket is a plain stream for the pipe: later reads become 'data' events again.
      streamSharedReads(this.socket);
      this.headStartedAt = 0;
      this.handler.startUpgrade(this, head, offset < chunk.length ? keptOf(chunk.subarray(offset)) : Buffer.alloc(0));
      return;
    }
    if (this.parser.isDone) return;
    if (offset < chunk.length) {
      this.leftover = keptOf(chunk.subarray(offset));
      this.socket.pause();
    }
    if (this.exchange === undefined && this.parser.isIdle) this.headStartedAt = 0;
  }

  /** Stops taking input (the endpoint is not keeping up, or a request waits for an endpoint). */
  pauseInput(): void {
    this.parser.pause();
    this.socket.pause();
  }

  /** Takes input again: what was left over first, then the socket. */
  resumeInput(): void {
    this.parser.resume();
    if (this.parsing || this.closed) return;
    const left = this.leftover;
    if (left !== undefined) {
      this.leftover = undefined;
      this.feed(left);
    }
    if (!this.parser.isPaused && !this.parser.isDone && this.leftover === undefined) {
      if (this.appEnded && this.exchange === undefined) this.socket.end();
      else this.socket.resume();
    }
  }

  // ---------------------------------------------------------------- parser events

  onHead(head: H1Head, raw: H1RawHead): void {
    this.headStartedAt = 0;
    if (head.isUpgrade) {
      this.upgradeHead = head;
      return;
    }
    if (!head.keepAlive) this.closeAfterResponse = true;
    // One request at a time: the next is parsed once this one's response is complete.
    this.handler.startRequest(this, head, raw);
  }

  onBody(data: Buffer): void {
    // Body bytes may wait in a write queue or be kept for a retry: never a view of the shared buffer.
    this.exchange?.onRequestBody(keptOf(data));
  }

  onEnd(trailers: string[] | undefined): void {
    const exchange = this.exchange;
    if (exchange === undefined) return;
    // Pipelined requests wait until this one is answered.
    this.parser.pause();
    exchange.onRequestEnd(trailers);
  }

  onError(status: number, reason: string): void {
    this.headStartedAt = 0;
    const exchange = this.exchange;
    if (exchange !== undefined) {
      exchange.onRequestError();
      return;
    }
    this.replyAndClose(status, `meshlet: malformed HTTP/1.1 request: ${reason}`);
  }

  // ---------------------------------------------------------------- output

  /** A request is over (answered, or failed): the next one may be parsed, or the connection ends. */
  exchangeDone(): void {
    this.exchange = undefined;
    this.idleSince = performance.now();
    if (this.closeAfterResponse || this.parser.isDone) {
      this.socket.end();
      // Reading may be paused (it stops at once when reads go into the shared buffer): read on, and
      // drop what comes, so the app's own close is seen and the socket does not linger half-open.
      this.parser.stop();
      this.leftover = undefined;
      if (!this.appEnded) this.socket.resume();
      return;
    }
    this.resumeInput();
  }

  /** A reply of the proxy's own, then the connection is closed (its input cannot be trusted, or a timeout). */
  replyAndClose(status: number, message: string): void {
    this.parser.stop();
    this.closeAfterResponse = true;
    this.leftover = undefined;
    if (this.socket.writable) {
      this.socket.end(serializeReply(status, message, CLOSE_LINES));
      // Read (and drop) until the app closes too, so the socket is not left half-open.
      this.socket.resume();
    } else {
      this.socket.destroy();
    }
  }

  private readonly onAppEnd = (): void => {
    this.appEnded = true;
    // A request still in flight is answered; then the connection closes.
    if (this.exchange !== undefined || this.parser.inBody) {
      this.closeAfterResponse = true;
      return;
    }
    this.socket.end();
  };

  private onClose(): void {
    this.closed = true;
    this.parser.stop();
    const exchange = this.exchange;
    this.exchange = undefined;
    exchange?.onAppClosed();
    this.handler.connectionClosed(this);
  }
}

/**
 * `chunk` itself, or a copy of it if it is a view of the shared read buffer: for keeping past its
 * read. The copy has memory of its own, exactly its size (not a slice of Node's 8 KiB pool), so what
 * a kept body chunk pins is what request/replay.ts charges for it, as when each read had its own buffer.
 */
function keptOf(chunk: Buffer): Buffer {
  if (!isBorrowed(chunk)) return chunk;
  const copy = Buffer.allocUnsafeSlow(chunk.length);
  chunk.copy(copy);
  return copy;
}

/** Whether a request head has a body to relay. */
export function hasRequestBody(head: H1Head): boolean {
  return head.framing === FRAMING.chunked || (head.framing === FRAMING.length && head.contentLength > 0);
}
