import net, { type Socket } from 'node:net';
import { NoEndpointsError } from '../../src/common/errors.js';
import { PROTOCOL_INDEX } from '../admin/metrics.js';
import type { EndpointStats } from '../balance/endpoint-stats.js';
import { OUTCOME, type Outcome, type TargetBalancer } from '../balance/target-balancer.js';
import type { RouteResult } from '../route/target-registry.js';
import { H1AppConnection, hasRequestBody, type H1AppExchange, type H1RequestHandler } from '../wire/h1/app-connection.js';
import { FRAMING, type H1Head } from '../wire/h1/parser.js';
import {
  CLOSE_LINES,
  chunkSizeLine,
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
import type { ProtocolHandler, RelayDeps } from './handler.js';
import { MAX_REPLAY_BYTES } from '../request/replay.js';

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
/**
 * Body chunks kept for a retry, at most (with at most MAX_REPLAY_BYTES): copies, so a kept chunk
 * never holds on to the whole read it came in.
 */
const MAX_REPLAY_CHUNKS = 64;
/** RFC 9112 §3.2.2 absolute-form with the http scheme; the authority ends at the path, query or end. */
const ABSOLUTE_FORM = /^http:\/\/([^/?#]*)([/?][^#]*)?$/i;
/** host[:port] of RFC 3986 §3.2.2: a reg-name, IPv4 address or [IPv6] literal, and an optional port. */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::\d{1,5})?$/;
const REQUEST_TARGET_ALLOWED = 'origin-form "/path?query" or absolute-form "http://host[:port]/path?query" (RFC 9112 section 3.2)';
const SLASH = 0x2f;
const CRLF = '\r\n';
/** A response body up to this size that arrives with its head is copied behind it and written once. */
const MAX_JOINED_BODY_BYTES = 16 * 1024;

export interface Http1Options {
  headerTimeoutMs: number;
  idleTimeoutMs: number;
}

/** How the response body goes to the app. */
const OUT = { none: 0, asIs: 1, chunked: 2, untilClose: 3 } as const;
type Out = (typeof OUT)[keyof typeof OUT];

/**
 * One app request while it is relayed: route -> pick -> acquire a pooled upstream connection ->
 * send -> settle | retry (only a request the endpoint never processed, once, within the retry
 * budget) | fail. The request body streams through as it arrives; what is needed for a retry is
 * kept until the endpoint answers.
 */
class H1Exchange implements H1AppExchange, UpstreamUser {
  balancer: TargetBalancer | undefined = undefined;
  stats: EndpointStats | undefined = undefined;
  conn: H1UpstreamConnection | undefined = undefined;
  readonly startedAt = performance.now();
  /** When this attempt went out on a connected socket: the balancer's latency sample starts here. */
  sentAt = 0;
  respondedAt = 0;
  status = 0;
  /** Body chunks so far, while a retry is still possible (null once not). */
  replay: Buffer[] | null;
  replayBytes = 0;
  retried = false;
  reqEnded = false;
  reqTrailers: string[] | undefined = undefined;
  /** The response head went to the app: from here on a failure can only cut the connection. */
  headSent = false;
  out: Out = OUT.none;
  /** The response head, not yet written: it goes out with the first body bytes. */
  pendingHead: string | undefined = undefined;
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
  ) {
    this.chunkedUp = head.framing === FRAMING.chunked;
    this.replay = hasRequestBody(head) ? [] : null;
  }

  // ------------------------------------------------ app side

  onRequestBody(data: Buffer): void {
    if (this.done) return;
    const replay = this.replay;
    if (replay !== null) {
      if (this.replayBytes + data.length <= MAX_REPLAY_BYTES && replay.length < MAX_REPLAY_CHUNKS) {
        replay.push(Buffer.from(data));
        this.replayBytes += data.length;
      } else {
        this.replay = null;
      }
    }
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
    this.relay.settle(this, OUTCOME.cancelled);
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
    this.relay.settle(this, OUTCOME.cancelled);
  }

  // ------------------------------------------------ upstream side

  onUpstreamData(conn: H1UpstreamConnection, chunk: Buffer): void {
    const parser = conn.parser;
    parser.resume();
    const consumed = parser.execute(chunk);
    // A head whose body did not come in the same read goes out on its own.
    if (this.pendingHead !== undefined) this.flushHead();
    if (this.downStage.length > 0 && !this.done && !writeStaged(this.app.socket, this.downStage)) conn.socket.pause();
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

  onResponseHead(head: H1Head): void {
    if (this.done) return;
    const app = this.app;
    if (head.status < 200) {
      if (head.status === 101) {
        this.relay.upstreamFailed(this, 'a 101 Switching Protocols answer to a request that asked for no upgrade', undefined);
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
    // Held until the body's first bytes (usually in the same read): one write carries both.
    this.pendingHead = serializeResponseHead(head, te, keepAlive ? this.relay.keepAliveLines : CLOSE_LINES);
  }

  onResponseBody(data: Buffer): void {
    if (this.done || data.length === 0) return;
    const head = this.pendingHead;
    if (head !== undefined && this.out !== OUT.chunked && data.length <= MAX_JOINED_BODY_BYTES) {
      // A small body is copied behind the head: one write (and one syscall) instead of a writev.
      this.pendingHead = undefined;
      const joined = Buffer.allocUnsafe(head.length + data.length);
      joined.write(head, 0, 'latin1');
      data.copy(joined, head.length);
      if (!this.app.socket.write(joined)) this.conn?.socket.pause();
      return;
    }
    if (head !== undefined) this.flushHead();
    if (this.out === OUT.chunked) {
      this.downStage.push(data);
      return;
    }
    if (!writeBody(this.app.socket, data, false)) this.conn?.socket.pause();
  }

  onResponseEnd(trailers: string[] | undefined): void {
    if (this.done) return;
    this.done = true;
    const app = this.app;
    if (this.pendingHead !== undefined) this.flushHead();
    if (this.out === OUT.chunked) {
      if (this.downStage.length > 0) writeStaged(app.socket, this.downStage);
      app.socket.write(serializeLastChunk(trailers), 'latin1');
    }
    this.relay.settle(this, isEndpointFailure(this.status, '') ? OUTCOME.failure : OUTCOME.success);
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
    this.relay.upstreamFailed(this, reason, code, conn.reused && !conn.responded);
  }
}

/**
 * Writes the staged pieces of one read as one chunk (one copy when there are several) and empties
 * the stage: at most three writes per read, however finely the sender chunked it.
 */
function writeStaged(socket: Socket, stage: Buffer[]): boolean {
  const data = stage.length === 1 ? stage[0]! : Buffer.concat(stage);
  stage.length = 0;
  return writeBody(socket, data, true);
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
  closing = false;

  constructor(
    readonly deps: RelayDeps,
    readonly options: Http1Options = { headerTimeoutMs: DEFAULT_HTTP1_HEADER_TIMEOUT_MS, idleTimeoutMs: DEFAULT_HTTP1_IDLE_TIMEOUT_MS },
  ) {
    this.keepAliveLines = keepAliveLines(options.idleTimeoutMs);
    this.sweepIntervalMs = Math.max(MIN_SWEEP_INTERVAL_MS, Math.min(MAX_SWEEP_INTERVAL_MS, Math.floor(Math.min(options.headerTimeoutMs, options.idleTimeoutMs) / 4)));
  }

  handle(socket: Socket, ctx: ConnectionContext): void {
    const conn = new H1AppConnection(socket, ctx, this);
    this.connections.add(conn);
    this.sweep ??= setInterval(() => this.checkTimeouts(), this.sweepIntervalMs).unref();
    socket.resume();
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

  startRequest(app: H1AppConnection, head: H1Head): void {
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
    const ex = new H1Exchange(this, app, head, path, host);
    app.exchange = ex;
    const route = this.deps.registry.route(app.ctx, authority);
    if (route instanceof Promise) {
      app.pauseInput();
      route.then(
        (resolved) => this.begin(ex, resolved, authority),
        (err) => this.routeFailed(err, authority, (status, message) => this.fail(ex, status, message)),
      );
    } else {
      this.begin(ex, route, authority);
    }
  }

  /** Route lookup threw (a bug, not an unknown target): the request is answered 502, never left hanging. */
  private routeFailed(err: unknown, authority: string | undefined, reply: (status: number, message: string) => void): void {
    this.deps.log.error({ err, authority }, 'route lookup failed');
    this.deps.metrics.proxyError('unknown', 'route-failed');
    reply(502, `meshlet: route lookup for host "${authority ?? ''}" failed: ${(err as Error)?.message ?? String(err)}`);
  }

  private begin(ex: H1Exchange, balancer: RouteResult, authority: string | undefined): void {
    if (ex.done) return;
    if (balancer === null) {
      this.deps.metrics.proxyError('unknown', 'unknown-target');
      this.fail(ex, 502, `meshlet: no target known for host "${authority ?? ''}" and the connection has no original destination`);
      return;
    }
    if (balancer.isPassthrough) this.deps.metrics.passthrough('http1', 'unknown-target');
    ex.balancer = balancer;
    const pick = balancer.pick(ex.startedAt);
    if (pick.kind === 'unavailable') {
      this.deps.metrics.proxyError(balancer.id, 'no-endpoints');
      this.fail(ex, 503, new NoEndpointsError(balancer.id, pick.reason).message);
      return;
    }
    this.dispatch(ex, pick.endpoint);
  }

  private dispatch(ex: H1Exchange, stats: EndpointStats): void {
    ex.stats = stats;
    ex.sentAt = performance.now();
    stats.metrics.request(PROTOCOL_INDEX.http1);
    const acquired = stats.upstream.h1.acquire();
    if (acquired instanceof Promise) {
      ex.app.pauseInput();
      acquired.then(
        (conn) => this.send(ex, conn),
        (err: Error) => this.connectFailed(ex, stats, err),
      );
    } else {
      this.send(ex, acquired);
    }
  }

  /** The head, then whatever body is kept, then the rest of the body as it arrives. */
  private send(ex: H1Exchange, conn: H1UpstreamConnection): void {
    if (ex.done) {
      conn.finish(true);
      return;
    }
    ex.conn = conn;
    ex.sentAt = performance.now();
    conn.begin(ex, ex.head.method);
    const socket = conn.socket;
    const app = ex.app;
    // Corked until the read being parsed (or the left-over input fed below) is done: the head and
    // the body that came with it go out in one write, and a body found malformed in that read
    // destroys the connection before any of it left.
    const isOwnCork = app.corked === undefined;
    if (isOwnCork) {
      socket.cork();
      app.corked = socket;
    }
    socket.write(serializeRequestHead(ex.head, ex.path, ex.host, ex.chunkedUp), 'latin1');
    const replay = ex.retried ? ex.replay : null;
    if (replay !== null) for (const chunk of replay) writeBody(socket, chunk, ex.chunkedUp);
    if (ex.reqEnded && ex.chunkedUp && ex.retried) socket.write(serializeLastChunk(ex.reqTrailers), 'latin1');
    if (!ex.reqEnded) app.resumeInput();
    if (isOwnCork) app.uncorkUnlessParsing();
  }

  settle(ex: H1Exchange, outcome: Outcome): void {
    const stats = ex.stats;
    if (stats === undefined) return;
    ex.stats = undefined;
    const now = performance.now();
    if (ex.respondedAt > 0) stats.metrics.response(ex.status, '', (now - ex.startedAt) / 1000);
    ex.balancer!.finish(stats, (ex.respondedAt > 0 ? ex.respondedAt : now) - ex.sentAt, outcome, now);
  }

  private retry(ex: H1Exchange, failed: EndpointStats, reason: string): boolean {
    if (ex.retried || ex.headSent || ex.done) return false;
    // A body that outgrew the replay buffer (or got an interim answer) cannot be sent again.
    if (hasRequestBody(ex.head) && ex.replay === null) return false;
    const now = performance.now();
    if (!ex.balancer!.retryBudget.tryWithdraw(now)) return false;
    const pick = ex.balancer!.pickOther(failed, now);
    if (pick.kind === 'unavailable') return false;
    ex.retried = true;
    this.deps.metrics.retry(ex.balancer!.id, reason);
    this.dispatch(ex, pick.endpoint);
    return true;
  }

  private connectFailed(ex: H1Exchange, stats: EndpointStats, err: Error): void {
    if (ex.done) {
      this.settle(ex, OUTCOME.cancelled);
      return;
    }
    this.settle(ex, OUTCOME.connectFailure);
    if (this.retry(ex, stats, 'connect-failure')) return;
    this.deps.metrics.proxyError(ex.balancer!.id, 'connect-failure');
    this.fail(ex, 502, `meshlet: endpoint ${stats.key} failed: ${err.message}`);
  }

  /** The upstream connection failed or closed before the response was complete. */
  upstreamFailed(ex: H1Exchange, reason: string, code: string | undefined, deadPooled = false): void {
    const conn = ex.conn;
    ex.conn = undefined;
    conn?.destroy();
    const stats = ex.stats;
    this.settle(ex, OUTCOME.failure);
    if (deadPooled && stats !== undefined && !ex.headSent) {
      // A kept-alive connection the endpoint had closed: the request never reached it.
      ex.app.pauseInput();
      if (this.retry(ex, stats, 'dead-connection')) return;
    }
    this.deps.metrics.proxyError(ex.balancer?.id ?? 'unknown', 'upstream-reset');
    this.deps.log.debug({ endpoint: stats?.key, reason, code }, 'HTTP/1 upstream failed');
    this.fail(ex, 502, `meshlet: endpoint ${stats?.key ?? '?'} failed: ${reason}`);
  }

  /** Ends a request with a reply of the proxy's own (or cuts the connection if a response began). */
  private fail(ex: H1Exchange, status: number, message: string): void {
    if (ex.done) return;
    ex.done = true;
    const app = ex.app;
    if (ex.headSent || app.isClosed) {
      app.socket.destroy();
      return;
    }
    if (!ex.reqEnded && hasRequestBody(ex.head)) {
      // The rest of the body is not wanted, and may never come: answer, then close.
      app.replyAndClose(status, message);
      return;
    }
    const keepAlive = !app.closeAfterResponse && !this.closing;
    if (!keepAlive) app.closeAfterResponse = true;
    app.socket.write(serializeReply(status, message, keepAlive ? this.keepAliveLines : CLOSE_LINES));
    // A bodiless request's end is reported just after its head: the next request waits for it.
    if (ex.reqEnded) app.exchangeDone();
    else app.resumeInput();
  }

  /** A request refused before an exchange began: answered, the connection kept when it can be. */
  private rejectRequest(app: H1AppConnection, head: H1Head, status: number, message: string): void {
    const ex = new H1Exchange(this, app, head, head.target, undefined);
    app.exchange = ex;
    this.fail(ex, status, message);
  }

  // ------------------------------------------------------------------ Upgrade: a byte pipe

  startUpgrade(app: H1AppConnection, head: H1Head, rest: Buffer): void {
    const socket = app.socket;
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
    const authority = target?.authority ?? head.host;
    socket.pause();
    const route = this.deps.registry.route(app.ctx, authority);
    if (route instanceof Promise) {
      route.then(
        (resolved) => this.pipeUpgrade(app, head, rest, resolved, authority, target),
        (err) => this.routeFailed(err, authority, (status, message) => app.replyAndClose(status, message)),
      );
    } else {
      this.pipeUpgrade(app, head, rest, route, authority, target);
    }
  }

  private pipeUpgrade(app: H1AppConnection, head: H1Head, rest: Buffer, balancer: RouteResult, authority: string | undefined, target: AbsoluteTarget | undefined): void {
    const socket = app.socket;
    if (socket.destroyed) return;
    if (balancer === null) {
      this.deps.metrics.proxyError('unknown', 'unknown-target');
      app.replyAndClose(502, `meshlet: no target known for host "${authority ?? ''}" and the connection has no original destination`);
      return;
    }
    if (balancer.isPassthrough) this.deps.metrics.passthrough('http1', 'unknown-target');
    const pick = balancer.pickFewestConnections(performance.now());
    if (pick.kind === 'unavailable') {
      this.deps.metrics.proxyError(balancer.id, 'no-endpoints');
      app.replyAndClose(503, new NoEndpointsError(balancer.id, pick.reason).message);
      return;
    }
    const stats = pick.endpoint;
    stats.metrics.request(PROTOCOL_INDEX.http1);
    const upstream = net.connect({ host: stats.endpoint.host, port: stats.endpoint.port, timeout: this.deps.connectTimeoutMs, noDelay: true });
    let connected = false;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      balancer.finishConnection(stats);
    };
    upstream.once('timeout', () => {
      if (!connected) upstream.destroy(new Error(`no connection within ${this.deps.connectTimeoutMs} ms`));
    });
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      upstream.write(serializeUpgradeHead(head, target?.path ?? head.target, target?.authority), 'latin1');
      if (rest.length > 0) upstream.write(rest);
      upstream.pipe(socket);
      socket.pipe(upstream);
      socket.resume();
    });
    upstream.on('error', (err) => {
      if (!connected) {
        this.deps.metrics.proxyError(balancer.id, 'connect-failure');
        app.replyAndClose(502, `meshlet: cannot connect to ${stats.key}: ${err.message}`);
      } else {
        socket.destroy();
      }
    });
    upstream.once('close', () => {
      finish();
      if (!socket.destroyed) socket.end();
    });
    socket.once('close', () => {
      finish();
      upstream.destroy();
    });
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
