import http2, {
  type ClientHttp2Stream,
  type Http2Server,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import { NoEndpointsError } from '../../src/common/errors.js';
import { PROTOCOL_INDEX } from '../admin/metrics.js';
import type { EndpointStats } from '../balancer/endpoint-stats.js';
import { OUTCOME, type Outcome, type TargetBalancer } from '../balancer/target-balancer.js';
import type { RouteResult } from '../balancer/target-registry.js';
import { H2_WINDOW_BYTES, type PooledSession } from '../upstream/h2-pool.js';
import type { ConnectionContext } from './connection-context.js';
import { GRPC_STATUS, encodeGrpcMessage, isEndpointFailure, parseGrpcTimeoutMs } from './grpc-status.js';
import type { ProtocolHandler, RelayDeps } from './handler.js';
import { keepForReplay } from './replay.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** Streams one app connection may have open at once. */
const DOWNSTREAM_MAX_STREAMS = 1000;

const CONTEXT = Symbol('meshlet.connectionContext');
const FORWARD = Symbol('meshlet.forward');

type DownSession = ServerHttp2Session & { [CONTEXT]?: ConnectionContext };
type DownStream = ServerHttp2Stream & { [FORWARD]?: Forward };
type UpStream = ClientHttp2Stream & { [FORWARD]?: Forward };

/**
 * The state of one app request while it is relayed. Listeners are module-level functions reading
 * this object from the stream they fire on, so a request allocates this and its streams, no closures.
 */
class Forward {
  up: UpStream | undefined = undefined;
  stats: EndpointStats | undefined = undefined;
  startedAt = 0;
  /** When this attempt went out on an established upstream session: the balancer's latency sample starts here. */
  sentAt = 0;
  respondedAt = 0;
  status = 0;
  grpcStatus = '';
  trailers: IncomingHttpHeaders | undefined = undefined;
  /** The app finished sending its request body. */
  downEnded: boolean;
  /** Body chunks forwarded so far, while a retry is still possible (null once not). */
  replay: Buffer[] | null = [];
  replayBytes = 0;
  pumping = false;
  retried = false;
  upEnded = false;
  upError: Error | undefined = undefined;
  /** The proxy ended the upstream call itself (client cancel or deadline). */
  abandoned = false;
  deadline: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly relay: Http2Relay,
    readonly down: DownStream,
    readonly headers: IncomingHttpHeaders,
    readonly authority: string | undefined,
    readonly isGrpc: boolean,
    readonly balancer: TargetBalancer | undefined,
    endStream: boolean,
  ) {
    this.downEnded = endStream;
  }
}

/**
 * HTTP/2 and gRPC: terminates the app's connection and forwards each stream to the endpoint picked
 * for it, over pooled upstream sessions. Headers, -bin metadata, bodies, trailers and resets pass
 * through; flow control is respected both ways (a stream is paused while the other side is full).
 */
export class Http2Relay implements ProtocolHandler {
  private readonly server: Http2Server;
  private pendingContext: ConnectionContext | undefined;
  private readonly sessions = new Set<ServerHttp2Session>();

  constructor(readonly deps: RelayDeps) {
    this.server = http2.createServer({
      settings: { maxConcurrentStreams: DOWNSTREAM_MAX_STREAMS, initialWindowSize: H2_WINDOW_BYTES, enablePush: false },
      maxSessionMemory: 64,
    });
    this.server.on('session', (session: DownSession) => {
      session[CONTEXT] = this.pendingContext;
      this.sessions.add(session);
      session.on('error', (err) => this.deps.log.debug({ err, connId: session[CONTEXT]?.connId }, 'app session error'));
      session.once('close', () => this.sessions.delete(session));
      session.once('connect', () => session.setLocalWindowSize(H2_WINDOW_BYTES * 4));
    });
    this.server.on('stream', (stream: DownStream, headers: IncomingHttpHeaders, flags: number) => this.onStream(stream, headers, flags));
  }

  handle(socket: Socket, ctx: ConnectionContext): void {
    this.pendingContext = ctx;
    this.server.emit('connection', socket);
    this.pendingContext = undefined;
  }

  close(): void {
    for (const session of this.sessions) session.close();
  }

  private onStream(down: DownStream, headers: IncomingHttpHeaders, flags: number): void {
    down.on('error', ignoreError);
    const ctx = (down.session as DownSession)[CONTEXT]!;
    const authority = headers[':authority'] ?? headers.host;
    const contentType = headers['content-type'];
    const isGrpc = typeof contentType === 'string' && contentType.startsWith('application/grpc');
    const route = this.deps.registry.route(ctx, authority);
    if (route instanceof Promise) {
      route.then(
        (resolved) => this.begin(down, headers, flags, authority, isGrpc, resolved),
        (err) => this.deps.log.error({ err }, 'route lookup failed'),
      );
    } else {
      this.begin(down, headers, flags, authority, isGrpc, route);
    }
  }

  private begin(down: DownStream, headers: IncomingHttpHeaders, flags: number, authority: string | undefined, isGrpc: boolean, balancer: RouteResult): void {
    if (balancer === null) {
      this.deps.metrics.proxyError('unknown', 'unknown-target');
      replyError(down, isGrpc, 502, `meshlet: no target known for authority "${authority ?? ''}" and the connection has no original destination`);
      return;
    }
    if (balancer.isPassthrough) this.deps.metrics.passthrough(isGrpc ? 'grpc' : 'http2', 'unknown-target');
    if (down.closed || down.destroyed) return;
    const fwd = new Forward(this, down, headers, authority, isGrpc, balancer, (flags & NGHTTP2_FLAG_END_STREAM) !== 0);
    down[FORWARD] = fwd;
    down.on('close', onDownClose);
    down.on('wantTrailers', onDownWantTrailers);
    fwd.startedAt = performance.now();
    const timeoutMs = isGrpc ? parseGrpcTimeoutMs(headers['grpc-timeout']) : undefined;
    if (timeoutMs !== undefined) fwd.deadline = setTimeout(onDeadline, timeoutMs, fwd).unref();
    const pick = balancer.pick(fwd.startedAt);
    if (pick.kind === 'unavailable') {
      this.deps.metrics.proxyError(balancer.id, 'no-endpoints');
      this.fail(fwd, 503, new NoEndpointsError(balancer.id, pick.reason).message);
      return;
    }
    this.dispatch(fwd, pick.endpoint);
  }

  dispatch(fwd: Forward, stats: EndpointStats): void {
    fwd.stats = stats;
    stats.metrics.request(fwd.isGrpc ? PROTOCOL_INDEX.grpc : PROTOCOL_INDEX.http2);
    this.acquire(fwd, stats);
  }

  private acquire(fwd: Forward, stats: EndpointStats): void {
    const acquired = stats.upstream.h2.acquire();
    if (acquired instanceof Promise) {
      acquired.then(
        () => this.acquire(fwd, stats),
        (err: Error) => this.connectFailed(fwd, stats, err),
      );
    } else {
      this.start(fwd, stats, acquired);
    }
  }

  private start(fwd: Forward, stats: EndpointStats, pooled: PooledSession): void {
    const down = fwd.down;
    if (down.closed || down.destroyed || fwd.abandoned) {
      this.settle(fwd, OUTCOME.cancelled);
      return;
    }
    const replay = fwd.replay;
    const hasReplay = replay !== null && replay.length > 0;
    let up: UpStream;
    try {
      up = stats.upstream.h2.request(pooled, fwd.headers, fwd.downEnded && !hasReplay);
    } catch (err) {
      this.connectFailed(fwd, stats, err as Error);
      return;
    }
    fwd.up = up;
    fwd.sentAt = performance.now();
    fwd.upEnded = false;
    fwd.upError = undefined;
    up[FORWARD] = fwd;
    up.on('response', onUpResponse);
    up.on('trailers', onUpTrailers);
    up.on('data', onUpData);
    up.on('end', onUpEnd);
    up.on('error', onUpError);
    up.on('close', onUpClose);
    if (hasReplay) {
      for (const chunk of replay!) up.write(chunk);
      if (fwd.downEnded) up.end();
    }
    if (!fwd.pumping && !fwd.downEnded) {
      fwd.pumping = true;
      down.on('data', onDownData);
      down.on('end', onDownEnd);
    } else if (fwd.pumping && !fwd.downEnded) {
      down.resume();
    }
  }

  private connectFailed(fwd: Forward, stats: EndpointStats, err: Error): void {
    this.settle(fwd, OUTCOME.connectFailure);
    if (this.retry(fwd, stats, 'connect-failure')) return;
    this.deps.metrics.proxyError(fwd.balancer!.id, 'connect-failure');
    this.fail(fwd, 502, `meshlet: ${err.message}`);
  }

  /** Retries once on another endpoint, when the budget allows; true when a retry is under way. */
  retry(fwd: Forward, failed: EndpointStats, reason: string): boolean {
    const balancer = fwd.balancer!;
    if (fwd.retried || fwd.abandoned || fwd.replay === null || fwd.down.closed || fwd.down.destroyed) return false;
    const now = performance.now();
    if (!balancer.retryBudget.tryWithdraw(now)) return false;
    const pick = balancer.pickOther(failed, now);
    if (pick.kind === 'unavailable') return false;
    fwd.retried = true;
    this.deps.metrics.retry(balancer.id, reason);
    this.dispatch(fwd, pick.endpoint);
    return true;
  }

  /** Ends the current attempt's accounting on its endpoint (exactly once per attempt). */
  settle(fwd: Forward, outcome: Outcome): void {
    const stats = fwd.stats;
    if (stats === undefined) return;
    fwd.stats = undefined;
    const now = performance.now();
    const latency = (fwd.respondedAt > 0 ? fwd.respondedAt : now) - (fwd.sentAt > 0 ? fwd.sentAt : fwd.startedAt);
    fwd.sentAt = 0;
    if (fwd.respondedAt > 0) stats.metrics.response(fwd.status, fwd.grpcStatus, (now - fwd.startedAt) / 1000);
    fwd.balancer!.finish(stats, latency, outcome, now);
  }

  /** Tells the app its request failed in the proxy: gRPC status 14 (or 4), else an HTTP status or a reset. */
  fail(fwd: Forward, httpStatus: number, message: string, grpcStatus: string = GRPC_STATUS.UNAVAILABLE): void {
    if (fwd.deadline !== undefined) clearTimeout(fwd.deadline);
    const down = fwd.down;
    if (down.closed || down.destroyed) return;
    if (!down.headersSent) {
      replyError(down, fwd.isGrpc, httpStatus, message, grpcStatus);
    } else if (fwd.isGrpc && !down.writableEnded) {
      fwd.trailers = { 'grpc-status': grpcStatus, 'grpc-message': encodeGrpcMessage(message) } as IncomingHttpHeaders;
      down.end();
    } else {
      down.close(NGHTTP2_INTERNAL_ERROR);
    }
  }
}

function ignoreError(): void {}

function replyError(down: ServerHttp2Stream, isGrpc: boolean, httpStatus: number, message: string, grpcStatus: string = GRPC_STATUS.UNAVAILABLE): void {
  if (down.closed || down.destroyed || down.headersSent) return;
  try {
    if (isGrpc) {
      down.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': grpcStatus, 'grpc-message': encodeGrpcMessage(message) }, { endStream: true });
    } else {
      down.respond({ ':status': httpStatus, 'content-type': 'text/plain; charset=utf-8' });
      down.end(`${message}\n`);
    }
  } catch {
    down.close(NGHTTP2_INTERNAL_ERROR);
  }
}

function onDownData(this: DownStream, chunk: Buffer): void {
  const fwd = this[FORWARD]!;
  keepForReplay(fwd, chunk);
  const up = fwd.up;
  if (up === undefined || up.closed || up.destroyed) {
    this.pause();
    return;
  }
  if (!up.write(chunk)) {
    // Listen for 'drain' only when actually full: most requests never need it.
    this.pause();
    up.once('drain', onUpDrain);
  }
}

function onDownEnd(this: DownStream): void {
  const fwd = this[FORWARD]!;
  fwd.downEnded = true;
  const up = fwd.up;
  if (up !== undefined && !up.closed && !up.destroyed) up.end();
}

function onDownDrain(this: DownStream): void {
  const up = this[FORWARD]!.up;
  if (up !== undefined && up.isPaused()) up.resume();
}

function onDownClose(this: DownStream): void {
  const fwd = this[FORWARD]!;
  if (fwd.deadline !== undefined) clearTimeout(fwd.deadline);
  const up = fwd.up;
  if (up !== undefined && !up.closed && !up.destroyed) {
    // The app cancelled (or its connection went): cancel upstream at once.
    fwd.abandoned = true;
    up.close(NGHTTP2_CANCEL);
  } else if (up === undefined) {
    fwd.abandoned = true;
  }
}

function onDownWantTrailers(this: DownStream): void {
  const fwd = this[FORWARD]!;
  this.sendTrailers(fwd.trailers ?? {});
}

function onDeadline(fwd: Forward): void {
  fwd.deadline = undefined;
  if (fwd.down.closed || fwd.down.destroyed) return;
  fwd.abandoned = true;
  const up = fwd.up;
  if (up !== undefined && !up.closed && !up.destroyed) up.close(NGHTTP2_CANCEL);
  fwd.relay.fail(fwd, 504, 'meshlet: deadline exceeded (grpc-timeout)', GRPC_STATUS.DEADLINE_EXCEEDED);
}

function onUpResponse(this: UpStream, headers: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number): void {
  const fwd = this[FORWARD]!;
  if (fwd.up !== this) return;
  fwd.respondedAt = performance.now();
  fwd.status = headers[':status'] ?? 0;
  fwd.replay = null;
  const down = fwd.down;
  if (down.closed || down.destroyed || fwd.abandoned) return;
  if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
    const grpcStatus = headers['grpc-status'];
    if (typeof grpcStatus === 'string') fwd.grpcStatus = grpcStatus;
    if (fwd.deadline !== undefined) clearTimeout(fwd.deadline);
    down.respond(headers, { endStream: true });
  } else {
    down.respond(headers, { waitForTrailers: true });
  }
}

function onUpData(this: UpStream, chunk: Buffer): void {
  const fwd = this[FORWARD]!;
  const down = fwd.down;
  if (down.closed || down.destroyed || !down.headersSent) return;
  if (!down.write(chunk)) {
    this.pause();
    down.once('drain', onDownDrain);
  }
}

function onUpDrain(this: UpStream): void {
  const down = this[FORWARD]!.down;
  if (down.isPaused()) down.resume();
}

function onUpTrailers(this: UpStream, trailers: IncomingHttpHeaders): void {
  const fwd = this[FORWARD]!;
  fwd.trailers = trailers;
  const grpcStatus = trailers['grpc-status'];
  if (typeof grpcStatus === 'string') fwd.grpcStatus = grpcStatus;
}

function onUpEnd(this: UpStream): void {
  const fwd = this[FORWARD]!;
  fwd.upEnded = true;
  if (fwd.deadline !== undefined) clearTimeout(fwd.deadline);
  const down = fwd.down;
  if (!fwd.abandoned && down.headersSent && !down.writableEnded && !down.closed && !down.destroyed) down.end();
}

function onUpError(this: UpStream, err: Error): void {
  this[FORWARD]!.upError = err;
}

function onUpClose(this: UpStream): void {
  const fwd = this[FORWARD]!;
  if (fwd.up !== this) return;
  const relay = fwd.relay;
  const stats = fwd.stats!;
  if (fwd.abandoned) {
    relay.settle(fwd, OUTCOME.cancelled);
    return;
  }
  const rstCode = this.rstCode ?? 0;
  if (fwd.upEnded && rstCode === 0) {
    relay.settle(fwd, isEndpointFailure(fwd.status, fwd.grpcStatus) ? OUTCOME.failure : OUTCOME.success);
    return;
  }
  // Upstream ended abnormally: a reset, a GOAWAY, or the connection went away.
  const peerReset = (fwd.upError as NodeJS.ErrnoException | undefined)?.code === 'ERR_HTTP2_STREAM_ERROR';
  const neverProcessed = fwd.respondedAt === 0 && (rstCode === NGHTTP2_REFUSED_STREAM || this.id === undefined || isGoawayExcluded(fwd.upError));
  relay.settle(fwd, OUTCOME.failure);
  if (neverProcessed) {
    fwd.down.pause();
    if (relay.retry(fwd, stats, rstCode === NGHTTP2_REFUSED_STREAM ? 'refused-stream' : 'goaway')) return;
  }
  const down = fwd.down;
  if (down.closed || down.destroyed) return;
  if (peerReset && rstCode !== 0 && !(fwd.isGrpc && rstCode === NGHTTP2_REFUSED_STREAM)) {
    down.close(rstCode);
    return;
  }
  relay.deps.metrics.proxyError(fwd.balancer!.id, 'upstream-reset');
  const reason = fwd.upError?.message ?? `stream reset with code ${rstCode}`;
  relay.fail(fwd, 502, `meshlet: endpoint ${stats.key} failed: ${reason}`);
}

function isGoawayExcluded(err: Error | undefined): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION';
}
