import type { Socket } from 'node:net';
import { NoEndpointsError } from '../../src/common/errors.js';
import { PROTOCOL_INDEX } from '../admin/metrics.js';
import type { EndpointStats } from '../balance/endpoint-stats.js';
import { OUTCOME, type Outcome, type TargetBalancer } from '../balance/target-balancer.js';
import type { RouteResult } from '../route/target-registry.js';
import { H2Connection, H2ProtocolError, MAX_HEADER_LIST_BYTES, type StreamEvents } from '../wire/h2/connection.js';
import { requestProblem, responseProblem, trailersProblem } from '../wire/h2/fields.js';
import { ERROR_CODE, MAX_WINDOW_BYTES, errorCodeName } from '../wire/h2/frame.js';
import { H2_CONNECTION_WINDOW_BYTES, H2_STREAM_WINDOW_BYTES, type UpstreamConnection, type UpstreamLink } from '../upstream/h2-pool.js';
import type { ConnectionContext } from '../accept/connection-context.js';
import { GRPC_STATUS, encodeGrpcMessage, isEndpointFailure, parseGrpcTimeoutMs } from '../request/grpc-status.js';
import { H2Leg, type LegOwner } from '../wire/h2/leg.js';
import type { ProtocolHandler, RelayDeps } from './handler.js';
import { keepForReplay } from '../request/replay.js';

/** Streams one app connection may have open at once. */
const DOWNSTREAM_MAX_STREAMS = 1000;
/** An app connection with no stream for this long is closed (GOAWAY NO_ERROR): Envoy's default idle_timeout. */
export const DEFAULT_H2_IDLE_TIMEOUT_MS = 3_600_000;
/** Idle app connections are looked for at most this far apart. */
const IDLE_SWEEP_MAX_MS = 5_000;

export interface Http2RelayOptions {
  /** An app connection with no open stream for this long is closed. */
  idleTimeoutMs: number;
}

type AppConnection = H2Connection<Exchange, ConnectionContext>;
type Upstream = UpstreamConnection<Exchange>;

/**
 * One app request while it is relayed: the client's stream on the app connection, the stream of
 * the current attempt on an upstream connection, and a leg per direction. Frames are relayed with
 * their stream ids remapped; no stream object exists on either side.
 */
class Exchange implements LegOwner {
  /** App → endpoint: the request body and trailers. */
  readonly req: H2Leg;
  /** Endpoint → app: the response body and trailers. */
  readonly res: H2Leg;
  up: Upstream | undefined = undefined;
  upId = 0;
  /** A stream slot is held on `up`. */
  upOpen = false;
  /** The app's stream is still open (in down.streams). */
  downOpen = true;
  balancer: TargetBalancer | undefined = undefined;
  stats: EndpointStats | undefined = undefined;
  startedAt = 0;
  /** When this attempt went out on an established upstream connection: latency samples start here. */
  sentAt = 0;
  respondedAt = 0;
  status = 0;
  grpcStatus = '';
  /** Body chunks received so far, while a retry is still possible (null once not). */
  replay: Buffer[] | null = [];
  replayBytes = 0;
  retried = false;
  /** The app gave up (reset, connection gone, deadline): the upstream call is being ended. */
  cancelled = false;
  deadline: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly relay: Http2Relay,
    readonly down: AppConnection,
    readonly downId: number,
    /** Request fields, kept for a retry. */
    readonly fields: string[],
    readonly neverIndexed: number[] | undefined,
    readonly isGrpc: boolean,
  ) {
    this.req = new H2Leg(this);
    this.req.from = down;
    this.req.fromId = downId;
    this.res = new H2Leg(this);
    this.res.sendWindow = down.peerInitialWindow;
  }

  legEnded(leg: H2Leg): void {
    if (leg === this.req) this.relay.closeUpIfDone(this);
    else this.relay.closeDownIfDone(this);
  }
}

/**
 * HTTP/2 and gRPC at the frame level: terminates the app's connection, and for each stream picks
 * an endpoint, opens a stream on a pooled upstream connection and relays HEADERS, DATA, trailers
 * and resets with the stream id remapped. Headers are decoded (HPACK state is per connection) and
 * encoded again; bodies pass through untouched. Flow control holds on both sides: credit goes back
 * only for bytes passed on.
 */
export class Http2Relay implements ProtocolHandler {
  private readonly connections = new Set<AppConnection>();
  private readonly appEvents: StreamEvents<Exchange, ConnectionContext>;
  readonly upstreamEvents: StreamEvents<Exchange, UpstreamLink>;
  /**
   * Requests picked while their app connection's read is being handled: they go upstream once the
   * whole read is handled, so one reset in the same read stops them before they reach an endpoint.
   */
  private readonly deferred: Exchange[] = [];
  private readonly idleSweep: NodeJS.Timeout;

  constructor(
    readonly deps: RelayDeps,
    private readonly options: Http2RelayOptions = { idleTimeoutMs: DEFAULT_H2_IDLE_TIMEOUT_MS },
  ) {
    this.appEvents = new AppSide(this);
    this.upstreamEvents = new UpstreamSide(this);
    const sweepMs = Math.min(Math.max(options.idleTimeoutMs >>> 2, 10), IDLE_SWEEP_MAX_MS);
    this.idleSweep = setInterval(() => this.closeIdle(), sweepMs).unref();
  }

  handle(socket: Socket, ctx: ConnectionContext): void {
    const conn: AppConnection = new H2Connection(
      socket,
      this.appEvents,
      { role: 'server', initialWindowBytes: H2_STREAM_WINDOW_BYTES, connectionWindowBytes: H2_CONNECTION_WINDOW_BYTES, maxConcurrentStreams: DOWNSTREAM_MAX_STREAMS },
      ctx,
    );
    this.connections.add(conn);
  }

  close(): void {
    clearInterval(this.idleSweep);
    for (const conn of this.connections) conn.shutdown();
  }

  /** Closes app connections that have had no stream for the idle timeout. */
  private closeIdle(): void {
    const now = performance.now();
    const timeoutMs = this.options.idleTimeoutMs;
    for (const conn of this.connections) {
      if (conn.streams.size > 0 || conn.goingAway || now - conn.idleSince < timeoutMs) continue;
      this.deps.log.debug({ connId: conn.context.connId, idleTimeoutMs: timeoutMs }, 'app connection idle: closing it');
      // An app that does not even read what we sent would never see GOAWAY: it is dropped.
      if (conn.isCongested) conn.destroy();
      else conn.shutdown();
    }
  }

  /** The app connection's read is handled: the requests it opened go upstream, unless already reset. */
  startDeferred(): void {
    const deferred = this.deferred;
    for (let i = 0; i < deferred.length; i++) {
      const ex = deferred[i]!;
      const stats = ex.stats;
      if (stats !== undefined && !ex.cancelled && ex.downOpen) this.acquire(ex, stats);
    }
    deferred.length = 0;
  }

  forget(conn: AppConnection): void {
    this.connections.delete(conn);
  }

  // ------------------------------------------------------------------ a new request

  open(down: AppConnection, downId: number, fields: string[], neverIndexed: number[] | undefined, endStream: boolean): void {
    let authority: string | undefined;
    let host: string | undefined;
    let contentType: string | undefined;
    let grpcTimeout: string | undefined;
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i]!;
      if (name === ':authority') authority = fields[i + 1];
      else if (name === 'content-type') contentType = fields[i + 1];
      else if (name === 'host') host = fields[i + 1];
      else if (name === 'grpc-timeout') grpcTimeout = fields[i + 1];
    }
    authority ??= host;
    const isGrpc = contentType !== undefined && contentType.startsWith('application/grpc');
    const ex = new Exchange(this, down, downId, fields, neverIndexed, isGrpc);
    down.streams.set(downId, ex);
    if (endStream) ex.req.endReceived = true;
    ex.startedAt = performance.now();
    if (isGrpc && grpcTimeout !== undefined) {
      const timeoutMs = parseGrpcTimeoutMs(grpcTimeout);
      if (timeoutMs !== undefined) ex.deadline = setTimeout(onDeadline, timeoutMs, ex).unref();
    }
    const route = this.deps.registry.route(down.context, authority);
    if (route instanceof Promise) {
      route
        .then(
          (resolved) => this.begin(ex, authority, resolved),
          (err: Error) => {
            this.deps.log.error({ err, authority }, 'route lookup failed');
            this.fail(ex, 502, `meshlet: cannot route "${authority ?? ''}": ${err.message}`);
          },
        )
        .catch((err: unknown) => this.internalError(ex, err));
    } else {
      this.begin(ex, authority, route);
    }
  }

  private begin(ex: Exchange, authority: string | undefined, balancer: RouteResult): void {
    if (!ex.downOpen) return;
    if (balancer === null) {
      this.deps.metrics.proxyError('unknown', 'unknown-target');
      this.fail(ex, 502, `meshlet: no target known for authority "${authority ?? ''}" and the connection has no original destination`);
      return;
    }
    if (balancer.isPassthrough) this.deps.metrics.passthrough(ex.isGrpc ? 'grpc' : 'http2', 'unknown-target');
    ex.balancer = balancer;
    const pick = balancer.pick(ex.startedAt);
    if (pick.kind === 'unavailable') {
      this.deps.metrics.proxyError(balancer.id, 'no-endpoints');
      this.fail(ex, 503, new NoEndpointsError(balancer.id, pick.reason).message);
      return;
    }
    this.dispatch(ex, pick.endpoint);
  }

  private dispatch(ex: Exchange, stats: EndpointStats): void {
    ex.stats = stats;
    if (ex.down.isReading) this.deferred.push(ex);
    else this.acquire(ex, stats);
  }

  private acquire(ex: Exchange, stats: EndpointStats): void {
    const acquired = stats.upstream.h2.acquire(this.upstreamEvents);
    if (acquired instanceof Promise) {
      acquired
        .then(
          () => this.acquire(ex, stats),
          (err: Error) => this.connectFailed(ex, stats, err),
        )
        .catch((err: unknown) => this.internalError(ex, err));
    } else {
      this.start(ex, acquired);
    }
  }

  /** Opens the attempt's stream on `up`: HEADERS, then whatever body arrived meanwhile. */
  private start(ex: Exchange, up: Upstream): void {
    if (ex.cancelled || !ex.downOpen) {
      this.settle(ex, OUTCOME.cancelled);
      return;
    }
    ex.stats!.metrics.request(ex.isGrpc ? PROTOCOL_INDEX.grpc : PROTOCOL_INDEX.http2);
    const upId = up.context.pool.open(up, ex);
    ex.up = up;
    ex.upId = upId;
    ex.upOpen = true;
    const req = ex.req;
    const replay = ex.retried ? ex.replay : null;
    req.attach(up, upId, up.peerInitialWindow, replay ?? undefined, ex.replayBytes);
    const res = ex.res;
    res.from = up;
    res.fromId = upId;
    const endNow = req.endReceived && req.queued === 0 && req.trailers === undefined;
    up.writeHeaders(upId, ex.fields, endNow, ex.neverIndexed);
    ex.sentAt = performance.now();
    if (endNow) {
      req.endSent = true;
    } else {
      req.flush();
    }
  }

  private connectFailed(ex: Exchange, stats: EndpointStats, err: Error): void {
    this.settle(ex, OUTCOME.connectFailure);
    if (this.retry(ex, stats, 'connect-failure')) return;
    this.deps.metrics.proxyError(ex.balancer!.id, 'connect-failure');
    this.fail(ex, 502, `meshlet: ${err.message}`);
  }

  /** Retries once on another endpoint, when the budget allows; true when a retry is under way. */
  retry(ex: Exchange, failed: EndpointStats, reason: string): boolean {
    const balancer = ex.balancer!;
    if (ex.retried || ex.cancelled || ex.replay === null || !ex.downOpen) return false;
    const now = performance.now();
    if (!balancer.retryBudget.tryWithdraw(now)) return false;
    const pick = balancer.pickOther(failed, now);
    if (pick.kind === 'unavailable') return false;
    ex.retried = true;
    this.deps.metrics.retry(balancer.id, reason);
    this.dispatch(ex, pick.endpoint);
    return true;
  }

  // ------------------------------------------------------------------ endings

  /** Ends the current attempt's accounting on its endpoint (exactly once per attempt). */
  settle(ex: Exchange, outcome: Outcome): void {
    const stats = ex.stats;
    if (stats === undefined) return;
    ex.stats = undefined;
    const now = performance.now();
    const latency = (ex.respondedAt > 0 ? ex.respondedAt : now) - (ex.sentAt > 0 ? ex.sentAt : ex.startedAt);
    ex.sentAt = 0;
    if (ex.respondedAt > 0) stats.metrics.response(ex.status, ex.grpcStatus, (now - ex.startedAt) / 1000);
    ex.balancer!.finish(stats, latency, outcome, now);
  }

  /** Gives the attempt's upstream stream slot back, resetting the stream with `resetCode` when given. */
  closeUp(ex: Exchange, resetCode?: number): void {
    if (!ex.upOpen) return;
    ex.upOpen = false;
    ex.req.close();
    const up = ex.up!;
    const isReset = resetCode !== undefined && !up.isClosed;
    if (isReset) up.writeReset(ex.upId, resetCode);
    up.context.pool.release(up, ex.upId, isReset);
  }

  /** Both directions of the upstream stream are done: free its slot. */
  closeUpIfDone(ex: Exchange): void {
    if (ex.upOpen && ex.req.endSent && ex.res.endReceived) this.closeUp(ex);
  }

  /** Ends the app's stream, resetting it with `resetCode` when given. */
  closeDown(ex: Exchange, resetCode?: number): void {
    if (!ex.downOpen) return;
    ex.downOpen = false;
    if (ex.deadline !== undefined) {
      clearTimeout(ex.deadline);
      ex.deadline = undefined;
    }
    ex.res.close();
    const down = ex.down;
    if (resetCode !== undefined && ex.res.resetCode === undefined && !down.isClosed) down.writeReset(ex.downId, resetCode);
    down.streams.delete(ex.downId);
    if (down.streams.size === 0) down.idleSince = performance.now();
    down.endIfIdle();
  }

  /**
   * The app's stream is done once the response ended and the app ended its request. A response
   * that ended while the app is still sending, with no upstream left to take the rest, resets the
   * app's stream with NO_ERROR (RFC 9113 8.1: the response stands).
   */
  closeDownIfDone(ex: Exchange): void {
    if (!ex.downOpen || !ex.res.endSent) return;
    if (ex.req.endReceived) this.closeDown(ex);
    else if (!ex.upOpen) this.closeDown(ex, ERROR_CODE.NO_ERROR);
  }

  /** The app reset its stream or its connection went: cancel upstream at once. */
  cancel(ex: Exchange): void {
    ex.cancelled = true;
    this.closeDown(ex);
    this.closeUp(ex, ERROR_CODE.CANCEL);
    this.settle(ex, OUTCOME.cancelled);
  }

  /** Tells the app its request failed in the proxy: gRPC status 14 (or 4), else an HTTP status or a reset. */
  fail(ex: Exchange, httpStatus: number, message: string, grpcStatus: string = GRPC_STATUS.UNAVAILABLE): void {
    if (!ex.downOpen) return;
    const down = ex.down;
    const res = ex.res;
    if (res.to === undefined) {
      res.to = down;
      res.toId = ex.downId;
      res.from = undefined;
      if (ex.isGrpc) {
        down.writeHeaders(ex.downId, [':status', '200', 'content-type', 'application/grpc', 'grpc-status', grpcStatus, 'grpc-message', encodeGrpcMessage(message)], true);
        res.endReceived = true;
        res.endSent = true;
        this.closeDownIfDone(ex);
      } else {
        down.writeHeaders(ex.downId, [':status', String(httpStatus), 'content-type', 'text/plain; charset=utf-8'], false);
        res.push(Buffer.from(`${message}\n`, 'utf8'), 0, true, true);
      }
    } else if (ex.isGrpc && !res.endSent && res.queued === 0) {
      res.trailers = ['grpc-status', grpcStatus, 'grpc-message', encodeGrpcMessage(message)];
      res.endReceived = true;
      res.flush();
    } else {
      this.closeDown(ex, ERROR_CODE.INTERNAL_ERROR);
    }
  }

  /** A bug of ours surfaced outside a connection's frame handling: this request fails, nothing else. */
  internalError(ex: Exchange, err: unknown): void {
    this.deps.log.error({ err }, 'HTTP/2 relay internal error: the request fails, the proxy goes on');
    try {
      this.closeUp(ex, ERROR_CODE.INTERNAL_ERROR);
      this.settle(ex, OUTCOME.failure);
      this.fail(ex, 502, `meshlet internal error: ${(err as Error)?.message ?? String(err)}`);
    } catch {
      ex.down.destroy(err as Error);
    }
  }

  // ------------------------------------------------------------------ upstream outcomes

  /** The upstream response ended (END_STREAM received). */
  responseEnded(ex: Exchange): void {
    if (ex.deadline !== undefined) {
      clearTimeout(ex.deadline);
      ex.deadline = undefined;
    }
    this.settle(ex, isEndpointFailure(ex.status, ex.grpcStatus) ? OUTCOME.failure : OUTCOME.success);
    this.closeUpIfDone(ex);
  }

  /** The upstream reset the attempt's stream. */
  upstreamReset(ex: Exchange, code: number): void {
    this.closeUp(ex);
    if (ex.cancelled) return;
    if (code === ERROR_CODE.NO_ERROR && ex.res.endReceived) {
      // The endpoint answered in full and wants no more of the request (RFC 9113 8.1).
      this.closeDownIfDone(ex);
      return;
    }
    if (code === ERROR_CODE.NO_ERROR && ex.respondedAt > 0) {
      // Ended with a NO_ERROR reset instead of END_STREAM (node:http2 servers do this when the
      // stream window is exhausted as they end): the same to the app, after the body.
      this.settle(ex, isEndpointFailure(ex.status, ex.grpcStatus) ? OUTCOME.failure : OUTCOME.success);
      ex.res.endWithReset(code);
      return;
    }
    const stats = ex.stats;
    this.settle(ex, OUTCOME.failure);
    if (code === ERROR_CODE.REFUSED_STREAM && ex.respondedAt === 0 && stats !== undefined && this.retry(ex, stats, 'refused-stream')) return;
    if (code !== ERROR_CODE.NO_ERROR && !(ex.isGrpc && code === ERROR_CODE.REFUSED_STREAM)) {
      this.closeDown(ex, code);
      return;
    }
    this.deps.metrics.proxyError(ex.balancer!.id, 'upstream-reset');
    this.fail(ex, 502, `meshlet: endpoint ${stats?.key ?? ''} failed: stream reset with ${errorCodeName(code)}`);
  }

  /** The endpoint's response or trailers broke RFC 9113 8.2-8.3: its stream is reset, the app gets a 502. */
  malformedResponse(ex: Exchange, problem: string): void {
    this.closeUp(ex, ERROR_CODE.PROTOCOL_ERROR);
    if (ex.cancelled) return;
    const key = ex.stats?.key ?? '';
    this.settle(ex, OUTCOME.failure);
    this.deps.metrics.proxyError(ex.balancer!.id, 'upstream-malformed');
    this.deps.log.debug({ endpoint: key, error: problem }, 'endpoint response malformed: not forwarded');
    this.fail(ex, 502, `meshlet: endpoint ${key} sent a malformed response: ${problem}`);
  }

  /** The attempt's upstream connection went away under it (GOAWAY excluding it, or closed). */
  upstreamLost(ex: Exchange, neverProcessed: boolean, reason: string): void {
    this.closeUp(ex);
    if (ex.cancelled) return;
    const stats = ex.stats;
    if (stats === undefined && ex.res.endReceived) {
      this.closeDownIfDone(ex);
      return;
    }
    this.settle(ex, OUTCOME.failure);
    if (neverProcessed && ex.respondedAt === 0 && stats !== undefined && this.retry(ex, stats, 'goaway')) return;
    this.deps.metrics.proxyError(ex.balancer!.id, 'upstream-reset');
    this.fail(ex, 502, `meshlet: endpoint ${stats?.key ?? ''} failed: ${reason}`);
  }
}

function onDeadline(ex: Exchange): void {
  ex.deadline = undefined;
  if (!ex.downOpen) return;
  const relay = ex.relay;
  ex.cancelled = true;
  try {
    relay.closeUp(ex, ERROR_CODE.CANCEL);
    relay.settle(ex, OUTCOME.cancelled);
    relay.fail(ex, 504, 'meshlet: deadline exceeded (grpc-timeout)', GRPC_STATUS.DEADLINE_EXCEEDED);
  } catch (err) {
    relay.internalError(ex, err);
  }
}

/** Frames on app connections. */
class AppSide implements StreamEvents<Exchange, ConnectionContext> {
  constructor(private readonly relay: Http2Relay) {}

  headers(conn: AppConnection, streamId: number, fields: string[], endStream: boolean, neverIndexed: number[] | undefined): void {
    const ex = conn.streams.get(streamId);
    if (ex !== undefined) {
      const problem = !endStream || ex.req.endReceived ? 'a second header block that does not end the stream' : trailersProblem(fields);
      if (problem !== undefined) {
        this.relay.deps.log.debug({ connId: conn.context.connId, streamId, error: problem }, 'app request trailers malformed: stream reset');
        ex.relay.cancel(ex);
        conn.writeReset(streamId, ERROR_CODE.PROTOCOL_ERROR);
        return;
      }
      ex.req.pushTrailers(fields, neverIndexed);
      return;
    }
    if ((streamId & 1) === 0) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, `the app opened stream ${streamId}; client streams have odd ids`);
    if (streamId <= conn.lastPeerStreamId) {
      // Closed, by us or implicitly by a higher id the app used first (RFC 9113 5.1.1).
      conn.writeReset(streamId, ERROR_CODE.STREAM_CLOSED);
      return;
    }
    conn.lastPeerStreamId = streamId;
    if (conn.goingAway || conn.streams.size >= DOWNSTREAM_MAX_STREAMS) {
      conn.writeReset(streamId, ERROR_CODE.REFUSED_STREAM);
      return;
    }
    const problem = requestProblem(fields);
    if (problem !== undefined) {
      // Malformed (RFC 9113 8.1.1): never forwarded; the stream can still answer, so a 400 says why.
      this.relay.deps.log.debug({ connId: conn.context.connId, streamId, error: problem }, 'app request malformed: answered 400');
      refuse(conn, streamId, endStream, '400', `meshlet: malformed HTTP/2 request: ${problem}\n`);
      return;
    }
    this.relay.open(conn, streamId, fields, neverIndexed, endStream);
  }

  oversizedHeaders(conn: AppConnection, streamId: number, endStream: boolean, message: string): void {
    const ex = conn.streams.get(streamId);
    if (ex !== undefined) {
      ex.relay.cancel(ex);
      conn.writeReset(streamId, ERROR_CODE.PROTOCOL_ERROR);
      return;
    }
    if ((streamId & 1) === 0 || streamId <= conn.lastPeerStreamId) {
      conn.writeReset(streamId, ERROR_CODE.STREAM_CLOSED);
      return;
    }
    conn.lastPeerStreamId = streamId;
    refuse(conn, streamId, endStream, '431', `meshlet: request ${message}; the limit is ${MAX_HEADER_LIST_BYTES} bytes of header fields\n`);
    this.relay.deps.log.warn({ connId: conn.context.connId, streamId, error: message }, 'app request refused: header fields too large');
  }

  data(conn: AppConnection, streamId: number, payload: Buffer, flowBytes: number, endStream: boolean): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined || ex.req.endReceived) {
      if (ex === undefined) checkNotIdle(conn, streamId, 'DATA');
      conn.credit(flowBytes);
      return;
    }
    if (ex.replay === null) {
      ex.req.push(payload, flowBytes, endStream, false);
      return;
    }
    // The copy kept for a retry is also what the leg queues (a request picked during this read waits).
    const kept = keepForReplay(ex, payload);
    ex.req.push(kept, flowBytes, endStream, kept !== payload);
  }

  reset(conn: AppConnection, streamId: number): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined) {
      checkNotIdle(conn, streamId, 'RST_STREAM');
      return;
    }
    ex.relay.cancel(ex);
    // The response had not ended: one token of the Rapid Reset budget (CVE-2023-44487).
    conn.chargePrematureReset();
  }

  windowUpdate(conn: AppConnection, streamId: number, increment: number): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined) {
      checkNotIdle(conn, streamId, 'WINDOW_UPDATE');
      return;
    }
    if (ex.res.sendWindow + increment > MAX_WINDOW_BYTES) {
      this.streamError(conn, streamId, ERROR_CODE.FLOW_CONTROL_ERROR, `WINDOW_UPDATE on stream ${streamId} takes its window above 2^31-1`);
      return;
    }
    ex.res.grant(increment);
  }

  streamError(conn: AppConnection, streamId: number, code: number, message: string): void {
    const ex = conn.streams.get(streamId);
    if (ex !== undefined) ex.relay.cancel(ex);
    conn.writeReset(streamId, code);
    this.relay.deps.log.debug({ connId: conn.context.connId, streamId, error: message }, 'app stream error: stream reset');
    // A stream the app made us reset costs like one it reset itself: a flood of them ends the connection.
    conn.chargePrematureReset();
  }

  readEnd(): void {
    this.relay.startDeferred();
  }

  initialWindowChanged(conn: AppConnection, delta: number): void {
    for (const ex of conn.streams.values()) {
      ex.res.grant(delta);
    }
  }

  goaway(): void {
    // The app will open no more streams; the ones open finish, then the connection closes.
  }

  closed(conn: AppConnection, error: Error | undefined): void {
    const relay = this.relay;
    relay.forget(conn);
    for (const ex of [...conn.streams.values()]) relay.cancel(ex);
    if (error instanceof H2ProtocolError) {
      relay.deps.log.warn({ connId: conn.context.connId, error: error.message }, 'app connection closed: it broke the HTTP/2 protocol');
    } else if (error !== undefined) {
      relay.deps.log.debug({ connId: conn.context.connId, err: error }, 'app connection error');
    }
  }
}

/** Frames on upstream connections. */
class UpstreamSide implements StreamEvents<Exchange, UpstreamLink> {
  constructor(private readonly relay: Http2Relay) {}

  headers(conn: Upstream, streamId: number, fields: string[], endStream: boolean, neverIndexed: number[] | undefined): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined) return;
    const relay = this.relay;
    const res = ex.res;
    if (ex.respondedAt === 0) {
      const problem = responseProblem(fields);
      if (problem !== undefined) {
        relay.malformedResponse(ex, problem);
        return;
      }
      const status = Number(fields[1]);
      if (status < 200 && !endStream) {
        // Informational (1xx): passed on; the final response follows.
        if (ex.downOpen) ex.down.writeHeaders(ex.downId, fields, false, neverIndexed);
        return;
      }
      ex.respondedAt = performance.now();
      ex.status = status;
      ex.replay = null;
      if (endStream) ex.grpcStatus = grpcStatusOf(fields);
      if (ex.downOpen && !ex.cancelled) {
        res.to = ex.down;
        res.toId = ex.downId;
        ex.down.writeHeaders(ex.downId, fields, endStream, neverIndexed);
        if (endStream) res.endSent = true;
      }
      if (endStream) {
        res.endReceived = true;
        relay.responseEnded(ex);
        relay.closeDownIfDone(ex);
      }
      return;
    }
    if (!endStream || res.endReceived) {
      relay.closeUp(ex, ERROR_CODE.PROTOCOL_ERROR);
      relay.upstreamReset(ex, ERROR_CODE.PROTOCOL_ERROR);
      return;
    }
    const problem = trailersProblem(fields);
    if (problem !== undefined) {
      relay.malformedResponse(ex, problem);
      return;
    }
    ex.grpcStatus = grpcStatusOf(fields);
    res.pushTrailers(fields, neverIndexed);
    relay.responseEnded(ex);
  }

  oversizedHeaders(conn: Upstream, streamId: number, _endStream: boolean, message: string): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined) return;
    this.relay.closeUp(ex, ERROR_CODE.CANCEL);
    this.relay.upstreamLost(ex, false, `its response ${message}`);
  }

  data(conn: Upstream, streamId: number, payload: Buffer, flowBytes: number, endStream: boolean): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined) checkOpenedByUs(conn, streamId, 'DATA');
    if (ex === undefined || ex.res.endReceived || !ex.downOpen) {
      conn.credit(flowBytes);
      if (ex !== undefined && !ex.downOpen) this.relay.closeUp(ex, ERROR_CODE.CANCEL);
      return;
    }
    if (ex.respondedAt === 0) {
      conn.credit(flowBytes);
      this.relay.closeUp(ex, ERROR_CODE.PROTOCOL_ERROR);
      this.relay.upstreamReset(ex, ERROR_CODE.PROTOCOL_ERROR);
      return;
    }
    ex.res.push(payload, flowBytes, endStream, false);
    if (endStream) this.relay.responseEnded(ex);
  }

  reset(conn: Upstream, streamId: number, code: number): void {
    const ex = conn.streams.get(streamId);
    if (ex !== undefined) this.relay.upstreamReset(ex, code);
    else checkOpenedByUs(conn, streamId, 'RST_STREAM');
  }

  windowUpdate(conn: Upstream, streamId: number, increment: number): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined) {
      checkOpenedByUs(conn, streamId, 'WINDOW_UPDATE');
      return;
    }
    if (ex.req.sendWindow + increment > MAX_WINDOW_BYTES) {
      this.streamError(conn, streamId, ERROR_CODE.FLOW_CONTROL_ERROR, `WINDOW_UPDATE on stream ${streamId} takes its window above 2^31-1`);
      return;
    }
    ex.req.grant(increment);
  }

  streamError(conn: Upstream, streamId: number, code: number, message: string): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined) {
      if (!conn.isClosed) conn.writeReset(streamId, code);
      return;
    }
    this.relay.closeUp(ex, code);
    this.relay.upstreamReset(ex, code);
    this.relay.deps.log.debug({ endpoint: ex.stats?.key, streamId, error: message }, 'endpoint stream error: stream reset');
  }

  readEnd(): void {
    // Nothing waits for the end of an upstream read.
  }

  initialWindowChanged(conn: Upstream, delta: number): void {
    for (const ex of conn.streams.values()) {
      ex.req.grant(delta);
    }
  }

  goaway(conn: Upstream, lastStreamId: number, code: number, message: string): void {
    for (const [id, ex] of [...conn.streams]) {
      if (id > lastStreamId) this.relay.upstreamLost(ex, true, `the endpoint went away before processing the request (GOAWAY ${errorCodeName(code)}: ${message})`);
    }
  }

  closed(conn: Upstream, error: Error | undefined): void {
    const reason = error === undefined ? 'its connection closed' : `its connection failed: ${error.message}`;
    for (const ex of [...conn.streams.values()]) this.relay.upstreamLost(ex, false, reason);
    this.relay.deps.log.debug({ err: error }, 'upstream connection closed');
  }
}

/**
 * Answers a request that will not be forwarded with `status` and `body` (when the windows allow it
 * in one frame); a request still being sent is then reset with NO_ERROR: the rest is not wanted.
 */
function refuse(conn: AppConnection, streamId: number, endStream: boolean, status: string, message: string): void {
  const body = Buffer.from(message, 'utf8');
  const fitsWindow = body.length <= conn.peerInitialWindow && body.length <= conn.sendWindow && body.length <= conn.peerMaxFrame;
  conn.writeHeaders(streamId, [':status', status, 'content-type', 'text/plain; charset=utf-8'], !fitsWindow);
  if (fitsWindow) conn.writeData(streamId, body, true);
  if (!endStream) conn.writeReset(streamId, ERROR_CODE.NO_ERROR);
}

/** A frame other than HEADERS or PRIORITY on a stream the app never opened (RFC 9113 5.1: idle) ends its connection. */
function checkNotIdle(conn: AppConnection, streamId: number, what: string): void {
  if ((streamId & 1) === 0 || streamId > conn.lastPeerStreamId) {
    throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, `${what} on stream ${streamId}, which was never opened (idle, RFC 9113 5.1)`);
  }
}

/** The same on an upstream connection: only streams we opened exist there (push is disabled). */
function checkOpenedByUs(conn: Upstream, streamId: number, what: string): void {
  if ((streamId & 1) === 0 || streamId >= conn.context.nextStreamId) {
    throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, `${what} on stream ${streamId}, which we never opened (idle, RFC 9113 5.1)`);
  }
}

function grpcStatusOf(fields: readonly string[]): string {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === 'grpc-status') return fields[i + 1]!;
  return '';
}
