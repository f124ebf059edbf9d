// Imported, not the globals: in Node 20 globalThis.performance and .Buffer are getters run on every use.
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { EndpointStats } from '../balance/endpoint-stats.js';
import type { PickResult } from '../balance/policy.js';
import { OUTCOME, type Outcome, type TargetBalancer } from '../balance/target-balancer.js';
import { H1AppConnection, hasRequestBody, type H1AppExchange, type H1RequestHandler } from '../wire/h1/app-connection.js';
import { FRAMING, type H1Head, type H1RawHead } from '../wire/h1/parser.js';
import {
  CLOSE_HEAD_END,
  CLOSE_LINES,
  chunkSizeLine,
  forwardRequestHead,
  forwardResponseHead,
  keepAliveLines,
  serializeInterimHead,
  serializeLastChunk,
  serializeReply,
  serializeRequestHead,
  serializeResponseHead,
  serializeUpgradeHead,
} from '../wire/h1/serializer.js';
import type { H1UpstreamConnection, UpstreamUser } from '../wire/h1/upstream-connection.js';
import type { ConnectionContext } from '../accept/connection-context.js';
import { isEndpointFailure } from '../request/grpc-status.js';
import { FAILURE, type FailureRule } from '../request/failures.js';
import { RETRY_REASON, RequestLifecycle } from '../request/lifecycle.js';
import { keepForReplay } from '../request/replay.js';
import { openPipe, type PipeEvents } from '../wire/pipe.js';
import type { UpstreamConnectError } from '../upstream/connect-error.js';
import type { ProtocolHandler, RelayDeps } from './handler.js';

/**
 * A request head (request line and headers) must be complete this long after its first byte, or it
 * is answered 408 and the connection closed: a slowloris client otherwise holds a connection and
 * its parser forever. 10 s, like HAProxy's usual `timeout http-request`, and shorter than Node's
 * own 60 s headersTimeout: the apps in the Pod write a head in one go over loopback, so only a
 * stuck or hostile client comes near it, and each such connection costs memory until it ends.
 */
export const DEFAULT_HTTP1_HEADER_TIMEOUT_MS = 10_000;
/**
 * An app's kept-alive connection with no request in flight is closed after this long. Longer than
 * the idle timeout of common client pools (Node's agent and Go's net/http: 60 s or less), so the
 * client, not the proxy, closes first and never sends a request on a connection being closed.
 */
export const DEFAULT_HTTP1_IDLE_TIMEOUT_MS = 65_000;
/** The timeouts are checked by one sweep over the connections, at most this often... */
const MIN_SWEEP_INTERVAL_MS = 25;
/** ...and at least this often. */
const MAX_SWEEP_INTERVAL_MS = 1_000;
/** RFC 9112 §3.2.2 absolute-form with the http scheme; the authority ends at the path, query or end. */
const ABSOLUTE_FORM = /^http:\/\/([^/?#]*)([/?][^#]*)?$/i;
/** host[:port] of RFC 3986 §3.2.2: a reg-name, IPv4 address or [IPv6] literal, and an optional port. */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::\d{1,5})?$/;
const REQUEST_TARGET_ALLOWED = 'origin-form "/path?query" or absolute-form "http://host[:port]/path?query" (RFC 9112 section 3.2)';
const SLASH = 0x2f;
const CRLF = '\r\n';
/** A response body up to this size that arrives with its head is copied behind it and written once. */
const MAX_JOINED_BODY_BYTES = 16 * 1024;
/** Set by the upstream connection on a response it could not parse (RFC 9112 framing broken). */
const MALFORMED_RESPONSE_CODE = 'MESHLET_MALFORMED_RESPONSE';

export interface Http1Options {
  headerTimeoutMs: number;
  idleTimeoutMs: number;
}

/** How the response body goes to the app. */
const OUT = { none: 0, asIs: 1, chunked: 2, untilClose: 3 } as const;
type Out = (typeof OUT)[keyof typeof OUT];

/**
 * One app request while it is relayed, on the request lifecycle: a pooled upstream connection is
 * acquired for each attempt, the request body streams through as it arrives, and what is needed
 * for a retry is kept until the endpoint answers.
 */
class H1Exchange extends RequestLifecycle implements H1AppExchange, UpstreamUser {
  conn: H1UpstreamConnection | undefined = undefined;
  reqEnded = false;
  reqTrailers: string[] | undefined = undefined;
  /** The response head went to the app: from here on a failure can only cut the connection. */
  headSent = false;
  out: Out = OUT.none;
  /** The response head, not yet written: it goes out with the first body bytes. */
  pendingHead: string | Buffer | undefined = undefined;
  /** The app is gone, or the exchange is over. */
  done = false;
  /** Decoded chunk data of the read being parsed, sent upstream as one chunk once it is parsed. */
  private readonly upStage: Buffer[] = [];
  /** The same for the response: the endpoint's chunks of one read go to the app as one chunk. */
  private readonly downStage: Buffer[] = [];
  readonly chunkedUp: boolean;

  constructor(
    readonly relay: Http1Relay,
    readonly app: H1AppConnection,
    readonly head: H1Head,
    /** The origin-form target sent upstream (an absolute-form target is rewritten to it). */
    readonly path: string,
    /** Host sent upstream in place of the app's, for absolute-form; else undefined. */
    readonly host: string | undefined,
    /** The head as the endpoint gets it, copied from the app's bytes; undefined: written anew from `head`. */
    readonly headBytes: Buffer | undefined,
  ) {
    super(relay.deps, 'http1');
    this.chunkedUp = head.framing === FRAMING.chunked;
  }

  // ------------------------------------------------ lifecycle hooks

  isLive(): boolean {
    return !this.done;
  }

  protected get authorityName(): string {
    return 'host';
  }

  protected override waitForRoute(): void {
    this.app.pauseInput();
  }

  protected acquire(stats: EndpointStats): void {
    const acquired = stats.upstream.h1.acquire();
    if (acquired instanceof Promise) {
      this.app.pauseInput();
      acquired
        .then(
          (conn) => this.send(stats, conn),
          (err: Error) => this.connectFailed(stats, err),
        )
        .catch((err: unknown) => this.internalError(err));
    } else {
      this.send(stats, acquired);
    }
  }

  /** The head, then whatever body is kept, then the rest of the body as it arrives. */
  private send(stats: EndpointStats, conn: H1UpstreamConnection): void {
    if (this.done) {
      conn.finish(true);
      return;
    }
    this.conn = conn;
    this.markSent(stats);
    conn.begin(this, this.head.method);
    const socket = conn.socket;
    const app = this.app;
    // With a body, corked until the read being parsed (or the left-over input fed below) is done:
    // the head and the body that came with it go out in one write, and a body found malformed in
    // that read destroys the connection before any of it left. A head alone is one write anyway.
    const isOwnCork = app.corked === undefined && hasRequestBody(this.head);
    if (isOwnCork) {
      socket.cork();
      app.corked = socket;
    }
    const headBytes = this.headBytes;
    if (headBytes !== undefined) socket.write(headBytes);
    else socket.write(serializeRequestHead(this.head, this.path, this.host, this.chunkedUp), 'latin1');
    const replay = this.retried ? this.replay : null;
    if (replay !== null) for (const chunk of replay) writeBody(socket, chunk, this.chunkedUp);
    if (this.reqEnded && this.chunkedUp && this.retried) socket.write(serializeLastChunk(this.reqTrailers), 'latin1');
    if (!this.reqEnded) app.resumeInput();
    if (isOwnCork) app.uncorkUnlessParsing();
  }

  protected abandonAttempt(): void {
    const conn = this.conn;
    this.conn = undefined;
    conn?.destroy();
  }

  protected destroyConnection(): void {
    this.app.socket.destroy();
  }

  protected render(rule: FailureRule, message: string): void {
    this.answer(rule.httpStatus, message);
  }

  /** Ends the request with a reply of the proxy's own (or cuts the connection if a response began). */
  answer(status: number, message: string): void {
    this.done = true;
    const app = this.app;
    if (this.headSent || app.isClosed) {
      app.socket.destroy();
      return;
    }
    if (!this.reqEnded && hasRequestBody(this.head)) {
      // The rest of the body is not wanted, and may never come: answer, then close.
      app.replyAndClose(status, message);
      return;
    }
    const relay = this.relay;
    const keepAlive = !app.closeAfterResponse && !relay.closing;
    if (!keepAlive) app.closeAfterResponse = true;
    app.socket.write(serializeReply(status, message, keepAlive ? relay.keepAliveLines : CLOSE_LINES));
    // A bodiless request's end is reported just after its head: the next request waits for it.
    if (this.reqEnded) app.exchangeDone();
    else app.resumeInput();
  }

  /** The upstream connection failed or closed before the response was complete. */
  upstreamFailed(reason: string, code: string | undefined, deadPooled: boolean): void {
    const conn = this.conn;
    this.conn = undefined;
    conn?.destroy();
    const stats = this.stats;
    this.settle(OUTCOME.failure);
    if (deadPooled && stats !== undefined && !this.headSent) {
      // A kept-alive connection the endpoint had closed: the request never reached it.
      this.app.pauseInput();
      if (this.retry(stats, RETRY_REASON.deadConnection)) return;
    }
    this.deps.log.debug({ endpoint: stats?.key, reason, code }, 'HTTP/1 upstream failed');
    this.fail(code === MALFORMED_RESPONSE_CODE ? FAILURE.upstreamMalformed : FAILURE.upstreamReset, `meshlet: endpoint ${stats?.key ?? '?'} failed: ${reason}`);
  }

  // ------------------------------------------------ app side

  onRequestBody(data: Buffer): void {
    if (this.done) return;
    keepForReplay(this, data);
    const conn = this.conn;
    if (conn === undefined) return;
    if (this.chunkedUp) {
      // Many tiny chunks in one read would each become a write: they leave as one chunk instead.
      this.upStage.push(data);
      return;
    }
    if (!writeBody(this.app.corkWhileParsing(conn.socket), data, false)) this.app.pauseInput();
  }

  onReadParsed(): void {
    const conn = this.conn;
    if (this.upStage.length === 0 || conn === undefined) return;
    if (!writeStaged(this.app.corkWhileParsing(conn.socket), this.upStage)) this.app.pauseInput();
  }

  onRequestEnd(trailers: string[] | undefined): void {
    this.reqEnded = true;
    this.reqTrailers = trailers;
    if (this.done) {
      this.app.exchangeDone();
      return;
    }
    const conn = this.conn;
    if (conn !== undefined && this.chunkedUp) {
      const socket = this.app.corkWhileParsing(conn.socket);
      if (this.upStage.length > 0) writeStaged(socket, this.upStage);
      socket.write(serializeLastChunk(trailers), 'latin1');
    }
  }

  onRequestError(): void {
    // The head went (or is going) upstream and the body turned out malformed: cut the upstream
    // request off so the endpoint never sees a complete one, and tell the app if it can still hear.
    const conn = this.conn;
    this.conn = undefined;
    conn?.destroy();
    this.settle(OUTCOME.cancelled);
    this.done = true;
    if (this.headSent) this.app.socket.destroy();
    else this.app.replyAndClose(400, 'meshlet: malformed HTTP/1.1 request body (chunk framing)');
  }

  onAppDrain(): void {
    this.conn?.socket.resume();
  }

  onAppClosed(): void {
    if (this.done) return;
    // The app went away before the response finished: stop the upstream request too.
    this.done = true;
    const conn = this.conn;
    this.conn = undefined;
    conn?.destroy();
    this.settle(OUTCOME.cancelled);
  }

  // ------------------------------------------------ upstream side

  onUpstreamData(conn: H1UpstreamConnection, chunk: Buffer): void {
    const parser = conn.parser;
    parser.resume();
    const consumed = parser.execute(chunk);
    // A head whose body did not come in the same read goes out on its own.
    if (this.pendingHead !== undefined) this.flushHead();
    if (this.downStage.length > 0 && !this.done && !writeStaged(this.app.socket, this.downStage, true)) conn.socket.pause();
    if (consumed < chunk.length && !parser.isDone) conn.destroy();
  }

  /** Writes the response head held back to go out together with the start of the body. */
  private flushHead(): void {
    const head = this.pendingHead!;
    this.pendingHead = undefined;
    this.app.socket.write(head, 'latin1');
  }

  onUpstreamDrain(): void {
    // Only a body still coming is waiting for this; a pipelined request waits for the response.
    if (!this.reqEnded && !this.done) this.app.resumeInput();
  }

  onResponseHead(head: H1Head, raw: H1RawHead): void {
    if (this.done) return;
    const app = this.app;
    if (head.status < 200) {
      if (head.status === 101) {
        this.upstreamFailed('a 101 Switching Protocols answer to a request that asked for no upgrade', MALFORMED_RESPONSE_CODE, false);
        return;
      }
      // 100 Continue and other interim answers pass through; the endpoint has seen the request.
      this.replay = null;
      if (this.head.minor !== 0 && !app.socket.write(serializeInterimHead(head), 'latin1')) this.conn?.socket.pause();
      return;
    }
    this.respondedAt = performance.now();
    this.status = head.status;
    this.replay = null;
    this.headSent = true;
    const toOld = this.head.minor === 0;
    let te: string | undefined;
    let keepAlive = !app.closeAfterResponse && !this.relay.closing;
    switch (head.framing) {
      case FRAMING.none:
        this.out = OUT.none;
        break;
      case FRAMING.length:
        this.out = OUT.asIs;
        break;
      case FRAMING.chunked:
        if (toOld) {
          this.out = OUT.untilClose;
          keepAlive = false;
        } else {
          this.out = OUT.chunked;
          te = head.transferEncoding;
        }
        break;
      default:
        if (toOld) {
          this.out = OUT.untilClose;
          keepAlive = false;
        } else {
          this.out = OUT.chunked;
          te = head.transferEncoding === '' ? 'chunked' : `${head.transferEncoding}, chunked`;
        }
    }
    if (!keepAlive) app.closeAfterResponse = true;
    // Held until the body's first bytes (usually in the same read): one write carries both. The
    // endpoint's own bytes when only hop-by-hop lines need to go, else a head written anew.
    this.pendingHead =
      (te === undefined ? forwardResponseHead(head, raw, keepAlive ? this.relay.keepAliveHeadEnd : CLOSE_HEAD_END) : undefined) ??
      serializeResponseHead(head, te, keepAlive ? this.relay.keepAliveLines : CLOSE_LINES);
  }

  onResponseBody(data: Buffer): void {
    if (this.done || data.length === 0) return;
    const head = this.pendingHead;
    if (head !== undefined && this.out !== OUT.chunked && data.length <= MAX_JOINED_BODY_BYTES) {
      // A small body is copied behind the head: one write (and one syscall) instead of a writev.
      this.pendingHead = undefined;
      const joined = Buffer.allocUnsafe(head.length + data.length);
      if (typeof head === 'string') joined.write(head, 0, 'latin1');
      else head.copy(joined, 0);
      data.copy(joined, head.length);
      if (!this.app.socket.write(joined)) this.conn?.socket.pause();
      return;
    }
    if (head !== undefined) this.flushHead();
    if (this.out === OUT.chunked) {
      this.downStage.push(data);
      return;
    }
    if (!writeBody(this.app.socket, copyOfRead(data), false)) this.conn?.socket.pause();
  }

  onResponseEnd(trailers: string[] | undefined): void {
    if (this.done) return;
    this.done = true;
    const app = this.app;
    if (this.pendingHead !== undefined) this.flushHead();
    if (this.out === OUT.chunked) {
      if (this.downStage.length > 0) writeStaged(app.socket, this.downStage, true);
      app.socket.write(serializeLastChunk(trailers), 'latin1');
    }
    this.settle(isEndpointFailure(this.status, '') ? OUTCOME.failure : OUTCOME.success);
    const conn = this.conn!;
    this.conn = undefined;
    // A connection whose request was not sent in full cannot carry another one.
    conn.finish(this.reqEnded);
    if (this.reqEnded) {
      app.exchangeDone();
    } else {
      // Answered before the app finished sending (a 413, say): the rest of the body is not wanted.
      app.closeAfterResponse = true;
      app.socket.end();
    }
  }

  onUpstreamFailed(conn: H1UpstreamConnection, reason: string, code: string | undefined): void {
    if (this.conn !== conn || this.done) return;
    this.conn = undefined;
    this.upstreamFailed(reason, code, conn.reused && !conn.responded);
  }
}

/**
 * Writes the staged pieces of one read as one chunk (one copy when there are several, or when they
 * are views of the shared read buffer) and empties the stage: at most three writes per
 * read, however finely the sender chunked it.
 */
function writeStaged(socket: Socket, stage: Buffer[], isBorrowed = false): boolean {
  const data = stage.length === 1 && !isBorrowed ? stage[0]! : Buffer.concat(stage);
  stage.length = 0;
  return writeBody(socket, data, true);
}

/**
 * A copy of response bytes read from an endpoint (a view of the read buffer every HTTP/1.1 socket
 * shares, sidecar/wire/h1/read-buffer.ts), for a write that may keep it queued past the read.
 */
function copyOfRead(data: Buffer): Buffer {
  return Buffer.from(data);
}

/** Writes body bytes, framed as a chunk when `chunked`; false when the socket is backed up. */
function writeBody(socket: Socket, data: Buffer, chunked: boolean): boolean {
  if (!chunked) return socket.write(data);
  socket.cork();
  socket.write(chunkSizeLine(data.length), 'latin1');
  socket.write(data);
  const ok = socket.write(CRLF, 'latin1');
  socket.uncork();
  return ok;
}

/**
 * HTTP/1.1 at the byte level: parses the app's requests itself, balances each request of a
 * kept-alive connection on its own, and relays it over pooled kept-alive upstream connections
 * (sidecar/upstream/h1-pool.ts). Bodies pass through as the Buffers read, unparsed beyond their
 * framing. `Upgrade` requests (WebSocket) go to the endpoint with the fewest open pipes and then
 * become a two-way byte pipe.
 */
export class Http1Relay implements ProtocolHandler, H1RequestHandler {
  private readonly connections = new Set<H1AppConnection>();
  private sweep: NodeJS.Timeout | undefined = undefined;
  private readonly sweepIntervalMs: number;
  readonly keepAliveLines: string;
  /** keepAliveLines and the empty line that ends a head, for a head forwarded as the endpoint sent it. */
  readonly keepAliveHeadEnd: Buffer;
  closing = false;

  constructor(
    readonly deps: RelayDeps,
    readonly options: Http1Options = { headerTimeoutMs: DEFAULT_HTTP1_HEADER_TIMEOUT_MS, idleTimeoutMs: DEFAULT_HTTP1_IDLE_TIMEOUT_MS },
  ) {
    this.keepAliveLines = keepAliveLines(options.idleTimeoutMs);
    this.keepAliveHeadEnd = Buffer.from(`${this.keepAliveLines}\r\n`, 'latin1');
    this.sweepIntervalMs = Math.max(MIN_SWEEP_INTERVAL_MS, Math.min(MAX_SWEEP_INTERVAL_MS, Math.floor(Math.min(options.headerTimeoutMs, options.idleTimeoutMs) / 4)));
  }

  handle(socket: Socket, ctx: ConnectionContext): void {
    const conn = new H1AppConnection(socket, ctx, this);
    this.connections.add(conn);
    this.sweep ??= setInterval(() => this.checkTimeouts(), this.sweepIntervalMs).unref();
    conn.start();
  }

  close(): void {
    // Idle connections close now, busy ones once their response is complete.
    this.closing = true;
    for (const conn of this.connections) {
      if (conn.isIdle) conn.socket.end();
      else conn.closeAfterResponse = true;
    }
    clearInterval(this.sweep);
    this.sweep = undefined;
  }

  connectionClosed(conn: H1AppConnection): void {
    this.connections.delete(conn);
    if (this.connections.size === 0 && this.sweep !== undefined) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }

  /** Heads not complete in time get 408 and are closed; kept-alive connections idle too long are closed. */
  private checkTimeouts(): void {
    const now = performance.now();
    const { headerTimeoutMs, idleTimeoutMs } = this.options;
    for (const conn of this.connections) {
      if (conn.isClosed) continue;
      if (conn.headStartedAt > 0 && conn.exchange === undefined) {
        if (now - conn.headStartedAt >= headerTimeoutMs) {
          this.deps.log.debug({ connId: conn.ctx.connId, timeoutMs: headerTimeoutMs }, 'HTTP/1 request head timed out');
          conn.headStartedAt = 0;
          conn.replyAndClose(408, `meshlet: the request head was not complete within ${headerTimeoutMs} ms (--http1-header-timeout-ms)`);
        }
      } else if (conn.isIdle && now - conn.idleSince >= idleTimeoutMs) {
        conn.socket.destroy();
      }
    }
  }

  // ------------------------------------------------------------------ a new request

  startRequest(app: H1AppConnection, head: H1Head, raw: H1RawHead): void {
    const target = head.target;
    let authority = head.host;
    let path = target;
    let host: string | undefined;
    if (target.charCodeAt(0) !== SLASH && target !== '*') {
      const parsed = parseAbsoluteForm(target);
      if (typeof parsed === 'string') {
        this.rejectRequest(app, head, 400, parsed);
        return;
      }
      // RFC 9112 §3.2.2: the authority of an absolute-form target wins over Host, for routing
      // and upstream alike; upstream gets origin-form with Host set to that authority.
      authority = parsed.authority;
      path = parsed.path;
      host = parsed.authority;
    }
    // An origin-form request needs no new request line or Host: its own bytes go, less hop-by-hop lines.
    const ex = new H1Exchange(this, app, head, path, host, host === undefined ? forwardRequestHead(head, raw) : undefined);
    app.exchange = ex;
    ex.route(app.ctx, authority);
  }

  /** A request refused before an exchange began: answered, the connection kept when it can be. */
  private rejectRequest(app: H1AppConnection, head: H1Head, status: number, message: string): void {
    const ex = new H1Exchange(this, app, head, head.target, undefined, undefined);
    app.exchange = ex;
    ex.answer(status, message);
  }

  // ------------------------------------------------------------------ Upgrade: a byte pipe

  startUpgrade(app: H1AppConnection, head: H1Head, rest: Buffer): void {
    if (head.method === 'CONNECT') {
      app.replyAndClose(405, 'meshlet: CONNECT is not supported; allowed: requests in origin-form or absolute-form, and Upgrade');
      return;
    }
    let target: AbsoluteTarget | undefined;
    if (head.target.charCodeAt(0) !== SLASH) {
      const parsed = parseAbsoluteForm(head.target);
      if (typeof parsed === 'string') {
        app.replyAndClose(400, parsed);
        return;
      }
      target = parsed;
    }
    app.socket.pause();
    new UpgradeRequest(this.deps, app, head, rest, target).route(app.ctx, target?.authority ?? head.host);
  }
}

/**
 * An `Upgrade` request (WebSocket) on the request lifecycle: routed and picked like any request
 * (the endpoint with the fewest open pipes), failures answered from the same table, then a two-way
 * byte pipe (wire/pipe.ts) for as long as both sides keep it open. A pipe is never retried: the
 * endpoint may have acted on the upgrade.
 */
class UpgradeRequest extends RequestLifecycle implements PipeEvents {
  private upstream: Socket | undefined = undefined;
  private answered = false;

  constructor(
    deps: RelayDeps,
    readonly app: H1AppConnection,
    readonly head: H1Head,
    /** What the app sent after the head: it goes upstream right after it. */
    readonly rest: Buffer,
    readonly target: AbsoluteTarget | undefined,
  ) {
    super(deps, 'http1');
    this.replay = null;
  }

  isLive(): boolean {
    return !this.answered && !this.app.socket.destroyed;
  }

  protected get authorityName(): string {
    return 'host';
  }

  protected override pickEndpoint(balancer: TargetBalancer, now: number): PickResult {
    return balancer.pickFewestConnections(now);
  }

  protected acquire(stats: EndpointStats): void {
    this.markSent(stats);
    this.upstream = openPipe(this.app.socket, stats.endpoint, stats.key, this.deps.connectTimeoutMs, this);
  }

  onConnected(upstream: Socket): void {
    upstream.write(serializeUpgradeHead(this.head, this.target?.path ?? this.head.target, this.target?.authority), 'latin1');
    if (this.rest.length > 0) upstream.write(this.rest);
  }

  onConnectFailed(err: UpstreamConnectError): void {
    if (this.stats !== undefined) this.connectFailed(this.stats, err);
  }

  onClosed(): void {
    this.settle(OUTCOME.success);
  }

  /** A pipe counts as an open connection on its endpoint, not as a request in flight. */
  override settle(_outcome: Outcome): void {
    const stats = this.stats;
    if (stats === undefined) return;
    this.stats = undefined;
    this.balancer!.finishConnection(stats);
  }

  protected render(rule: FailureRule, message: string): void {
    this.answered = true;
    this.app.replyAndClose(rule.httpStatus, message);
  }

  protected abandonAttempt(): void {
    this.upstream?.destroy();
  }

  protected destroyConnection(): void {
    this.app.socket.destroy();
  }
}

interface AbsoluteTarget {
  authority: string;
  /** Origin-form: the path (at least "/") and query of the URI. */
  path: string;
}

/** An absolute-form request target, or why it is refused (an expected outcome, not a throw). */
function parseAbsoluteForm(url: string): AbsoluteTarget | string {
  const match = ABSOLUTE_FORM.exec(url);
  const authority = match?.[1];
  if (match === null || authority === undefined || !AUTHORITY.test(authority)) {
    // userinfo ("user@host") is refused too: RFC 9110 §4.2.4, it disguises the real authority.
    return `meshlet: request target "${url.slice(0, 200)}" is not valid; allowed: ${REQUEST_TARGET_ALLOWED}`;
  }
  const rest = match[2] ?? '';
  return { authority, path: rest === '' ? '/' : rest.charCodeAt(0) === SLASH ? rest : `/${rest}` };
}
