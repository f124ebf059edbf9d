import type { Socket } from 'node:net';
import type { EndpointStats } from '../balance/endpoint-stats.js';
import { OUTCOME } from '../balance/target-balancer.js';
import { H2Connection, H2ProtocolError, MAX_HEADER_LIST_BYTES, type StreamEvents } from '../wire/h2/connection.js';
import { requestProblem, responseProblem, trailersProblem } from '../wire/h2/fields.js';
import { ERROR_CODE, MAX_WINDOW_BYTES, errorCodeName } from '../wire/h2/frame.js';
import { H2_CONNECTION_WINDOW_BYTES, H2_STREAM_WINDOW_BYTES, type UpstreamConnection, type UpstreamLink } from '../upstream/h2-pool.js';
import type { ConnectionContext } from '../accept/connection-context.js';
import { encodeGrpcMessage, isEndpointFailure, parseGrpcTimeoutMs } from '../request/grpc-status.js';
import { FAILURE, type FailureRule } from '../request/failures.js';
import { RETRY_REASON, RequestLifecycle } from '../request/lifecycle.js';
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
 * One app request while it is relayed: the request lifecycle, plus the client's stream on the app
 * connection, the stream of the current attempt on an upstream connection, and a leg per
 * direction. Frames are relayed with their stream ids remapped; no stream object exists on either
 * side.
 */
class Exchange extends RequestLifecycle implements LegOwner {
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
    super(relay.deps, isGrpc ? 'grpc' : 'http2');
    this.req = new H2Leg(this);
    this.req.from = down;
    this.req.fromId = downId;
    this.res = new H2Leg(this);
    this.res.sendWindow = down.peerInitialWindow;
  }

  legEnded(leg: H2Leg): void {
    if (leg === this.req) this.closeUpIfDone();
    else this.closeDownIfDone();
  }

  // ------------------------------------------------------------------ lifecycle hooks

  isLive(): boolean {
    return this.downOpen && !this.cancelled;
  }

  protected get authorityName(): string {
    return 'authority';
  }

  /**
   * Requests picked while their app connection's read is being handled go upstream once the whole
   * read is handled, so one reset in the same read stops them before they reach an endpoint.
   */
  protected acquire(stats: EndpointStats): void {
    if (this.down.isReading) this.relay.defer(this);
    else this.acquireNow(stats);
  }

  acquireNow(stats: EndpointStats): void {
    const acquired = stats.upstream.h2.acquire(this.relay.upstreamEvents);
    if (acquired instanceof Promise) {
      acquired
        .then(
          () => this.acquireNow(stats),
          (err: Error) => this.connectFailed(stats, err),
        )
        .catch((err: unknown) => this.internalError(err));
    } else {
      this.start(stats, acquired);
    }
  }

  /** Opens the attempt's stream on `up`: HEADERS, then whatever body arrived meanwhile. */
  private start(stats: EndpointStats, up: Upstream): void {
    if (this.cancelled || !this.downOpen) {
      this.settle(OUTCOME.cancelled);
      return;
    }
    const upId = up.context.pool.open(up, this);
    this.up = up;
    this.upId = upId;
    this.upOpen = true;
    const req = this.req;
    const replay = this.retried ? this.replay : null;
    req.attach(up, upId, up.peerInitialWindow, replay ?? undefined, this.replayBytes);
    const res = this.res;
    res.from = up;
    res.fromId = upId;
    const endNow = req.endReceived && req.queued === 0 && req.trailers === undefined;
    up.writeHeaders(upId, this.fields, endNow, this.neverIndexed);
    this.markSent(stats);
    if (endNow) {
      req.endSent = true;
    } else {
      req.flush();
    }
  }

  protected abandonAttempt(): void {
    this.closeUp(ERROR_CODE.INTERNAL_ERROR);
  }

  protected destroyConnection(err: unknown): void {
    this.down.destroy(err as Error);
  }

  /** gRPC: a trailers-only answer (or trailers after a begun body); else an HTTP status, or a reset once the response began. */
  protected render(rule: FailureRule, message: string): void {
    const down = this.down;
    const res = this.res;
    if (res.to === undefined) {
      res.to = down;
      res.toId = this.downId;
      res.from = undefined;
      if (this.isGrpc) {
        down.writeHeaders(this.downId, [':status', '200', 'content-type', 'application/grpc', 'grpc-status', rule.grpcStatus, 'grpc-message', encodeGrpcMessage(message)], true);
        res.endReceived = true;
        res.endSent = true;
        this.closeDownIfDone();
      } else {
        down.writeHeaders(this.downId, [':status', String(rule.httpStatus), 'content-type', 'text/plain; charset=utf-8'], false);
        res.push(Buffer.from(`${message}\n`, 'utf8'), 0, true, true);
      }
    } else if (this.isGrpc && !res.endSent && res.queued === 0) {
      res.trailers = ['grpc-status', rule.grpcStatus, 'grpc-message', encodeGrpcMessage(message)];
      res.endReceived = true;
      res.flush();
    } else {
      this.closeDown(rule.resetCode);
    }
  }

  // ------------------------------------------------------------------ streams on both sides

  /** Gives the attempt's upstream stream slot back, resetting the stream with `resetCode` when given. */
  closeUp(resetCode?: number): void {
    if (!this.upOpen) return;
    this.upOpen = false;
    this.req.close();
    const up = this.up!;
    const isReset = resetCode !== undefined && !up.isClosed;
    if (isReset) up.writeReset(this.upId, resetCode);
    up.context.pool.release(up, this.upId, isReset);
  }

  /** Both directions of the upstream stream are done: free its slot. */
  closeUpIfDone(): void {
    if (this.upOpen && this.req.endSent && this.res.endReceived) this.closeUp();
  }

  /** Ends the app's stream, resetting it with `resetCode` when given. */
  closeDown(resetCode?: number): void {
    if (!this.downOpen) return;
    this.downOpen = false;
    if (this.deadline !== undefined) {
      clearTimeout(this.deadline);
      this.deadline = undefined;
    }
    this.res.close();
    const down = this.down;
    if (resetCode !== undefined && this.res.resetCode === undefined && !down.isClosed) down.writeReset(this.downId, resetCode);
    down.streams.delete(this.downId);
    if (down.streams.size === 0) down.idleSince = performance.now();
    down.endIfIdle();
  }

  /**
   * The app's stream is done once the response ended and the app ended its request. A response
   * that ended while the app is still sending, with no upstream left to take the rest, resets the
   * app's stream with NO_ERROR (RFC 9113 8.1: the response stands).
   */
  closeDownIfDone(): void {
    if (!this.downOpen || !this.res.endSent) return;
    if (this.req.endReceived) this.closeDown();
    else if (!this.upOpen) this.closeDown(ERROR_CODE.NO_ERROR);
  }

  /** The app reset its stream or its connection went: cancel upstream at once. */
  cancel(): void {
    this.cancelled = true;
    this.closeDown();
    this.closeUp(ERROR_CODE.CANCEL);
    this.settle(OUTCOME.cancelled);
  }

  /** The grpc-timeout expired: the upstream call is ended and the app told DEADLINE_EXCEEDED. */
  expire(): void {
    this.deadline = undefined;
    if (!this.isLive()) return;
    try {
      this.closeUp(ERROR_CODE.CANCEL);
      this.settle(OUTCOME.cancelled);
      this.fail(FAILURE.deadline, 'meshlet: deadline exceeded (grpc-timeout)');
      this.cancelled = true;
    } catch (err) {
      this.internalError(err);
    }
  }

  // ------------------------------------------------------------------ upstream outcomes

  /** The upstream response ended (END_STREAM received). */
  responseEnded(): void {
    if (this.deadline !== undefined) {
      clearTimeout(this.deadline);
      this.deadline = undefined;
    }
    this.settle(isEndpointFailure(this.status, this.grpcStatus) ? OUTCOME.failure : OUTCOME.success);
    this.closeUpIfDone();
  }

  /** The upstream reset the attempt's stream. */
  upstreamReset(code: number): void {
    this.closeUp();
    if (this.cancelled) return;
    if (code === ERROR_CODE.NO_ERROR && this.res.endReceived) {
      // The endpoint answered in full and wants no more of the request (RFC 9113 8.1).
      this.closeDownIfDone();
      return;
    }
    if (code === ERROR_CODE.NO_ERROR && this.respondedAt > 0) {
      // Ended with a NO_ERROR reset instead of END_STREAM (node:http2 servers do this when the
      // stream window is exhausted as they end): the same to the app, after the body.
      this.settle(isEndpointFailure(this.status, this.grpcStatus) ? OUTCOME.failure : OUTCOME.success);
      this.res.endWithReset(code);
      return;
    }
    const stats = this.stats;
    this.settle(OUTCOME.failure);
    if (code === ERROR_CODE.REFUSED_STREAM && this.respondedAt === 0 && stats !== undefined && this.retry(stats, RETRY_REASON.refusedStream)) return;
    if (code !== ERROR_CODE.NO_ERROR && !(this.isGrpc && code === ERROR_CODE.REFUSED_STREAM)) {
      // Passed on as it came: the app's stream gets the endpoint's own code.
      this.closeDown(code);
      return;
    }
    this.fail(FAILURE.upstreamReset, `meshlet: endpoint ${stats?.key ?? ''} failed: stream reset with ${errorCodeName(code)}`);
  }

  /** The endpoint's response or trailers broke RFC 9113 8.2-8.3: its stream is reset, the app gets a 502. */
  malformedResponse(problem: string): void {
    this.closeUp(ERROR_CODE.PROTOCOL_ERROR);
    if (this.cancelled) return;
    const key = this.stats?.key ?? '';
    this.settle(OUTCOME.failure);
    this.deps.log.debug({ endpoint: key, error: problem }, 'endpoint response malformed: not forwarded');
    this.fail(FAILURE.upstreamMalformed, `meshlet: endpoint ${key} sent a malformed response: ${problem}`);
  }

  /** The attempt's upstream connection went away under it (GOAWAY excluding it, or closed). */
  upstreamLost(neverProcessed: boolean, reason: string): void {
    this.closeUp();
    if (this.cancelled) return;
    const stats = this.stats;
    if (stats === undefined && this.res.endReceived) {
      this.closeDownIfDone();
      return;
    }
    this.settle(OUTCOME.failure);
    if (neverProcessed && this.respondedAt === 0 && stats !== undefined && this.retry(stats, RETRY_REASON.goaway)) return;
    this.fail(FAILURE.upstreamReset, `meshlet: endpoint ${stats?.key ?? ''} failed: ${reason}`);
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
  /** Requests picked while their app connection's read is being handled: they go upstream once it is. */
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

  defer(ex: Exchange): void {
    this.deferred.push(ex);
  }

  /** The app connection's read is handled: the requests it opened go upstream, unless already reset. */
  startDeferred(): void {
    const deferred = this.deferred;
    for (let i = 0; i < deferred.length; i++) {
      const ex = deferred[i]!;
      const stats = ex.stats;
      if (stats !== undefined && !ex.cancelled && ex.downOpen) ex.acquireNow(stats);
    }
    deferred.length = 0;
  }

  forget(conn: AppConnection): void {
    this.connections.delete(conn);
  }

  /** A new stream from the app: its request begins its lifecycle. */
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
    if (isGrpc && grpcTimeout !== undefined) {
      const timeoutMs = parseGrpcTimeoutMs(grpcTimeout);
      if (timeoutMs !== undefined) ex.deadline = setTimeout(onDeadline, timeoutMs, ex).unref();
    }
    ex.route(down.context, authority);
  }
}

function onDeadline(ex: Exchange): void {
  ex.expire();
}

/** Frames on app connections. */
class AppSide implements StreamEvents<Exchange, ConnectionContext> {
  constructor(private readonly relay: Http2Relay) {}

  headers(conn: AppConnection, streamId: number, fields: string[], endStream: boolean, neverIndexed: number[] | undefined, unchecked: readonly number[]): void {
    const ex = conn.streams.get(streamId);
    if (ex !== undefined) {
      const problem = !endStream || ex.req.endReceived ? 'a second header block that does not end the stream' : trailersProblem(fields, unchecked);
      if (problem !== undefined) {
        this.relay.deps.log.debug({ connId: conn.context.connId, streamId, error: problem }, 'app request trailers malformed: stream reset');
        ex.cancel();
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
    const problem = requestProblem(fields, unchecked);
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
      ex.cancel();
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
    // The chunk kept for a retry is also what the leg holds, if it must wait (a request picked
    // during this read goes upstream at its end).
    const kept = ex.replay === null ? undefined : keepForReplay(ex, payload);
    if (kept === undefined) ex.req.push(payload, flowBytes, endStream, false);
    else ex.req.push(kept, flowBytes, endStream, true);
  }

  reset(conn: AppConnection, streamId: number): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined) {
      checkNotIdle(conn, streamId, 'RST_STREAM');
      return;
    }
    ex.cancel();
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
    if (ex !== undefined) ex.cancel();
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
    for (const ex of [...conn.streams.values()]) ex.cancel();
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

  headers(conn: Upstream, streamId: number, fields: string[], endStream: boolean, neverIndexed: number[] | undefined, unchecked: readonly number[]): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined) return;
    const res = ex.res;
    if (ex.respondedAt === 0) {
      const problem = responseProblem(fields, unchecked);
      if (problem !== undefined) {
        ex.malformedResponse(problem);
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
        ex.responseEnded();
        ex.closeDownIfDone();
      }
      return;
    }
    if (!endStream || res.endReceived) {
      ex.closeUp(ERROR_CODE.PROTOCOL_ERROR);
      ex.upstreamReset(ERROR_CODE.PROTOCOL_ERROR);
      return;
    }
    const problem = trailersProblem(fields, unchecked);
    if (problem !== undefined) {
      ex.malformedResponse(problem);
      return;
    }
    ex.grpcStatus = grpcStatusOf(fields);
    res.pushTrailers(fields, neverIndexed);
    ex.responseEnded();
  }

  oversizedHeaders(conn: Upstream, streamId: number, _endStream: boolean, message: string): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined) return;
    ex.closeUp(ERROR_CODE.CANCEL);
    ex.upstreamLost(false, `its response ${message}`);
  }

  data(conn: Upstream, streamId: number, payload: Buffer, flowBytes: number, endStream: boolean): void {
    const ex = conn.streams.get(streamId);
    if (ex === undefined) checkOpenedByUs(conn, streamId, 'DATA');
    if (ex === undefined || ex.res.endReceived || !ex.downOpen) {
      conn.credit(flowBytes);
      if (ex !== undefined && !ex.downOpen) ex.closeUp(ERROR_CODE.CANCEL);
      return;
    }
    if (ex.respondedAt === 0) {
      conn.credit(flowBytes);
      ex.closeUp(ERROR_CODE.PROTOCOL_ERROR);
      ex.upstreamReset(ERROR_CODE.PROTOCOL_ERROR);
      return;
    }
    ex.res.push(payload, flowBytes, endStream, false);
    if (endStream) ex.responseEnded();
  }

  reset(conn: Upstream, streamId: number, code: number): void {
    const ex = conn.streams.get(streamId);
    if (ex !== undefined) ex.upstreamReset(code);
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
    ex.closeUp(code);
    ex.upstreamReset(code);
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
      if (id > lastStreamId) ex.upstreamLost(true, `the endpoint went away before processing the request (GOAWAY ${errorCodeName(code)}: ${message})`);
    }
  }

  closed(conn: Upstream, error: Error | undefined): void {
    const reason = error === undefined ? 'its connection closed' : `its connection failed: ${error.message}`;
    for (const ex of [...conn.streams.values()]) ex.upstreamLost(false, reason);
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
