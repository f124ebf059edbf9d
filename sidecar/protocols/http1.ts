import http, { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
import { NoEndpointsError } from '../../src/common/errors.js';
import { PROTOCOL_INDEX } from '../admin/metrics.js';
import type { EndpointStats } from '../balancer/endpoint-stats.js';
import { OUTCOME, type Outcome, type TargetBalancer } from '../balancer/target-balancer.js';
import type { RouteResult } from '../balancer/target-registry.js';
import type { ConnectionContext } from './connection-context.js';
import type { ProtocolHandler, RelayDeps } from './handler.js';
import { isEndpointFailure } from './grpc-status.js';
import { keepForReplay } from './replay.js';

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
/** The most often node:http looks for request heads past their timeout (its default is 30 s). */
const MAX_HEADER_CHECK_INTERVAL_MS = 1_000;
const MIN_HEADER_CHECK_INTERVAL_MS = 25;
/** RFC 9112 §3.2.2 absolute-form with the http scheme; the authority ends at the path, query or end. */
const ABSOLUTE_FORM = /^http:\/\/([^/?#]*)([/?][^#]*)?$/i;
/** host[:port] of RFC 3986 §3.2.2: a reg-name, IPv4 address or [IPv6] literal, and an optional port. */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::\d{1,5})?$/;
const REQUEST_TARGET_ALLOWED = 'origin-form "/path?query" or absolute-form "http://host[:port]/path?query" (RFC 9112 section 3.2)';

export interface Http1Options {
  headerTimeoutMs: number;
  idleTimeoutMs: number;
}

/** Headers that describe one hop, never forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

const CONTEXT = Symbol('meshlet.connectionContext');
const FORWARD = Symbol('meshlet.forward');

type AppSocket = Socket & { [CONTEXT]?: ConnectionContext };
type Tagged<T> = T & { [FORWARD]?: H1Forward };

class H1Forward {
  stats: EndpointStats | undefined = undefined;
  upReq: Tagged<http.ClientRequest> | undefined = undefined;
  startedAt = 0;
  /** When this attempt's upstream socket was connected: the balancer's latency sample starts here. */
  sentAt = 0;
  respondedAt = 0;
  status = 0;
  replay: Buffer[] | null = [];
  replayBytes = 0;
  reqEnded = false;
  pumping = false;
  retried = false;
  done = false;

  constructor(
    readonly relay: Http1Relay,
    readonly req: Tagged<IncomingMessage>,
    readonly res: Tagged<ServerResponse>,
    readonly balancer: TargetBalancer,
    readonly headers: OutgoingHttpHeaders,
    /** The origin-form target sent upstream (the app's absolute-form is rewritten to it). */
    readonly path: string,
  ) {}
}

/**
 * HTTP/1.1: balances each request of a kept-alive app connection on its own, over keep-alive
 * pools per endpoint. `Upgrade` requests (WebSocket) go to the endpoint with the fewest open pipes
 * and then become a two-way byte pipe.
 */
export class Http1Relay implements ProtocolHandler {
  private readonly server: http.Server;

  constructor(
    readonly deps: RelayDeps,
    readonly options: Http1Options = { headerTimeoutMs: DEFAULT_HTTP1_HEADER_TIMEOUT_MS, idleTimeoutMs: DEFAULT_HTTP1_IDLE_TIMEOUT_MS },
  ) {
    this.server = http.createServer(
      {
        keepAliveTimeout: options.idleTimeoutMs,
        headersTimeout: options.headerTimeoutMs,
        // A request may stream for as long as it likes once its head is in; only heads are timed.
        requestTimeout: 0,
        connectionsCheckingInterval: Math.max(MIN_HEADER_CHECK_INTERVAL_MS, Math.min(MAX_HEADER_CHECK_INTERVAL_MS, Math.floor(options.headerTimeoutMs / 4))),
      },
      (req, res) => this.onRequest(req, res),
    );
    // node:http times request heads from a check it starts on 'listening'. This server never
    // listens (the listener hands it sockets), so it is started the same way, or heads are never timed.
    this.server.emit('listening');
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable || socket.destroyed) {
        socket.destroy();
        return;
      }
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        this.deps.log.debug({ timeoutMs: options.headerTimeoutMs }, 'HTTP/1 request head timed out');
        socket.end(closingReply(408, `meshlet: the request head was not complete within ${options.headerTimeoutMs} ms (--http1-header-timeout-ms)`));
        return;
      }
      this.deps.log.debug({ err }, 'bad HTTP/1 request from app');
      socket.end(closingReply(400, `meshlet: malformed HTTP/1.1 request: ${err.code ?? err.message}`));
    });
  }

  handle(socket: AppSocket, ctx: ConnectionContext): void {
    socket[CONTEXT] = ctx;
    this.server.emit('connection', socket);
    socket.resume();
  }

  close(): void {
    // Stops node:http's head-timeout check too; idle connections close now, busy ones after their response.
    this.server.close();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const ctx = (req.socket as AppSocket)[CONTEXT]!;
    const url = req.url ?? '/';
    let authority = req.headers.host;
    let path = url;
    if (url.charCodeAt(0) !== SLASH && url !== '*') {
      const target = parseAbsoluteForm(url);
      if (typeof target === 'string') {
        replyError(res, 400, target);
        return;
      }
      // RFC 9112 §3.2.2: the authority of an absolute-form target wins over Host, for routing
      // and upstream alike; upstream gets origin-form with Host set to that authority.
      authority = target.authority;
      path = target.path;
    }
    const route = this.deps.registry.route(ctx, authority);
    if (route instanceof Promise) {
      route.then(
        (resolved) => this.begin(req, res, resolved, authority, path),
        (err) => this.routeFailed(err, authority, (status, message) => replyError(res, status, message)),
      );
    } else {
      this.begin(req, res, route, authority, path);
    }
  }

  /** Route lookup threw (a bug, not an unknown target): the request is answered 502, never left hanging. */
  private routeFailed(err: unknown, authority: string | undefined, reply: (status: number, message: string) => void): void {
    this.deps.log.error({ err, authority }, 'route lookup failed');
    this.deps.metrics.proxyError('unknown', 'route-failed');
    reply(502, `meshlet: route lookup for host "${authority ?? ''}" failed: ${(err as Error)?.message ?? String(err)}`);
  }

  private begin(req: Tagged<IncomingMessage>, res: Tagged<ServerResponse>, balancer: RouteResult, authority: string | undefined, path: string): void {
    if (balancer === null) {
      this.deps.metrics.proxyError('unknown', 'unknown-target');
      replyError(res, 502, `meshlet: no target known for host "${authority ?? ''}" and the connection has no original destination`);
      return;
    }
    if (balancer.isPassthrough) this.deps.metrics.passthrough('http1', 'unknown-target');
    const headers = forwardHeaders(req.headers);
    // Only absolute-form rewrites the target, and then Host must name the URI's authority.
    if (path !== req.url) headers.host = authority;
    const fwd = new H1Forward(this, req, res, balancer, headers, path);
    req[FORWARD] = fwd;
    res[FORWARD] = fwd;
    res.on('close', onResClose);
    fwd.startedAt = performance.now();
    const pick = balancer.pick(fwd.startedAt);
    if (pick.kind === 'unavailable') {
      this.deps.metrics.proxyError(balancer.id, 'no-endpoints');
      fwd.done = true;
      replyError(res, 503, new NoEndpointsError(balancer.id, pick.reason).message);
      return;
    }
    this.send(fwd, pick.endpoint);
  }

  send(fwd: H1Forward, stats: EndpointStats): void {
    fwd.stats = stats;
    stats.metrics.request(PROTOCOL_INDEX.http1);
    const req = fwd.req;
    const upReq: Tagged<http.ClientRequest> = http.request({
      host: stats.endpoint.host,
      port: stats.endpoint.port,
      method: req.method,
      path: fwd.path,
      headers: fwd.headers,
      agent: stats.upstream.h1.agent,
      setHost: false,
    });
    fwd.upReq = upReq;
    fwd.sentAt = performance.now();
    upReq[FORWARD] = fwd;
    upReq.on('socket', onUpSocket);
    upReq.on('response', onUpResponse);
    upReq.on('error', onUpError);
    const replay = fwd.replay;
    if (replay !== null) for (const chunk of replay) upReq.write(chunk);
    if (fwd.reqEnded) {
      upReq.end();
    } else if (!fwd.pumping) {
      fwd.pumping = true;
      req.on('data', onReqData);
      req.on('end', onReqEnd);
    } else {
      req.resume();
    }
  }

  settle(fwd: H1Forward, outcome: Outcome): void {
    const stats = fwd.stats;
    if (stats === undefined) return;
    fwd.stats = undefined;
    const now = performance.now();
    if (fwd.respondedAt > 0) stats.metrics.response(fwd.status, '', (now - fwd.startedAt) / 1000);
    fwd.balancer.finish(stats, (fwd.respondedAt > 0 ? fwd.respondedAt : now) - fwd.sentAt, outcome, now);
  }

  retry(fwd: H1Forward, failed: EndpointStats, reason: string): boolean {
    if (fwd.retried || fwd.replay === null || fwd.res.destroyed || fwd.res.headersSent) return false;
    const now = performance.now();
    if (!fwd.balancer.retryBudget.tryWithdraw(now)) return false;
    const pick = fwd.balancer.pickOther(failed, now);
    if (pick.kind === 'unavailable') return false;
    fwd.retried = true;
    this.deps.metrics.retry(fwd.balancer.id, reason);
    this.send(fwd, pick.endpoint);
    return true;
  }

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', ignoreError);
    const ctx = (socket as AppSocket)[CONTEXT]!;
    const url = req.url ?? '/';
    let target: AbsoluteTarget | undefined;
    if (url.charCodeAt(0) !== SLASH) {
      const parsed = parseAbsoluteForm(url);
      if (typeof parsed === 'string') {
        rejectUpgrade(socket, 400, parsed);
        return;
      }
      target = parsed;
    }
    const authority = target?.authority ?? req.headers.host;
    const route = this.deps.registry.route(ctx, authority);
    if (route instanceof Promise) {
      route.then(
        (resolved) => this.pipeUpgrade(req, socket, head, resolved, authority, target),
        (err) => this.routeFailed(err, authority, (status, message) => rejectUpgrade(socket, status, message)),
      );
    } else {
      this.pipeUpgrade(req, socket, head, route, authority, target);
    }
  }

  private pipeUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, balancer: RouteResult, authority: string | undefined, target: AbsoluteTarget | undefined): void {
    if (balancer === null) {
      this.deps.metrics.proxyError('unknown', 'unknown-target');
      rejectUpgrade(socket, 502, `meshlet: no target known for host "${authority ?? ''}" and the connection has no original destination`);
      return;
    }
    const pick = balancer.pickFewestConnections(performance.now());
    if (pick.kind === 'unavailable') {
      this.deps.metrics.proxyError(balancer.id, 'no-endpoints');
      rejectUpgrade(socket, 503, new NoEndpointsError(balancer.id, pick.reason).message);
      return;
    }
    const stats = pick.endpoint;
    stats.metrics.request(PROTOCOL_INDEX.http1);
    const upstream = net.connect({ host: stats.endpoint.host, port: stats.endpoint.port, timeout: this.deps.connectTimeoutMs });
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
      upstream.setNoDelay(true);
      upstream.write(requestHead(req, target));
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', (err) => {
      if (!connected) {
        this.deps.metrics.proxyError(balancer.id, 'connect-failure');
        rejectUpgrade(socket, 502, `meshlet: cannot connect to ${stats.key}: ${err.message}`);
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

function ignoreError(): void {}

const SLASH = 0x2f;

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

function closingReply(status: number, message: string): string {
  const body = `${message}\n`;
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** A copy of the app's headers without hop-by-hop ones (and those its Connection header names). */
function forwardHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connection = headers.connection;
  const named = connection ? connection.toLowerCase().split(',').map((s) => s.trim()) : undefined;
  for (const key in headers) {
    if (HOP_BY_HOP.has(key) || (named !== undefined && named.includes(key))) continue;
    out[key] = headers[key];
  }
  return out;
}

/** The Upgrade request as the endpoint gets it: origin-form, and for absolute-form Host set to its authority. */
function requestHead(req: IncomingMessage, target: AbsoluteTarget | undefined): string {
  let head = `${req.method} ${target?.path ?? req.url} HTTP/${req.httpVersion}\r\n`;
  if (target !== undefined) head += `Host: ${target.authority}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (target !== undefined && raw[i]!.toLowerCase() === 'host') continue;
    head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return `${head}\r\n`;
}

function replyError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${message}\n`);
}

function rejectUpgrade(socket: Socket, status: number, message: string): void {
  if (socket.destroyed) return;
  socket.end(closingReply(status, message));
}

function onReqData(this: Tagged<IncomingMessage>, chunk: Buffer): void {
  const fwd = this[FORWARD]!;
  keepForReplay(fwd, chunk);
  const upReq = fwd.upReq!;
  if (!upReq.write(chunk)) {
    this.pause();
    upReq.once('drain', onUpReqDrain);
  }
}

function onUpReqDrain(this: Tagged<http.ClientRequest>): void {
  this[FORWARD]!.req.resume();
}

function onReqEnd(this: Tagged<IncomingMessage>): void {
  const fwd = this[FORWARD]!;
  fwd.reqEnded = true;
  fwd.upReq?.end();
}

function onResClose(this: Tagged<ServerResponse>): void {
  const fwd = this[FORWARD]!;
  if (fwd.done) return;
  // The app went away before the response finished: stop the upstream request too.
  fwd.done = true;
  fwd.upReq?.destroy();
  fwd.relay.settle(fwd, OUTCOME.cancelled);
}

/** A request that had to open a new keep-alive socket: its latency sample starts once connected. */
function onUpSocket(this: Tagged<http.ClientRequest>, socket: Socket): void {
  if (socket.connecting) socket.once('connect', onUpSocketConnect.bind(this));
}

function onUpSocketConnect(this: Tagged<http.ClientRequest>): void {
  const fwd = this[FORWARD];
  if (fwd !== undefined && fwd.upReq === this) fwd.sentAt = performance.now();
}

function onUpResponse(this: Tagged<http.ClientRequest>, upRes: Tagged<IncomingMessage>): void {
  const fwd = this[FORWARD]!;
  if (fwd.upReq !== this) return;
  fwd.respondedAt = performance.now();
  fwd.status = upRes.statusCode ?? 0;
  fwd.replay = null;
  upRes[FORWARD] = fwd;
  const res = fwd.res;
  if (res.destroyed) {
    upRes.destroy();
    return;
  }
  res.writeHead(fwd.status, upRes.statusMessage, forwardHeaders(upRes.headers));
  upRes.on('data', onUpResData);
  upRes.on('end', onUpResEnd);
  upRes.on('error', ignoreError);
  res.on('drain', onResDrain);
}

function onUpResData(this: Tagged<IncomingMessage>, chunk: Buffer): void {
  if (!this[FORWARD]!.res.write(chunk)) this.pause();
}

function onResDrain(this: Tagged<ServerResponse>): void {
  const upReq = this[FORWARD]!.upReq;
  const upRes = (upReq as unknown as { res?: IncomingMessage } | undefined)?.res;
  if (upRes?.isPaused()) upRes.resume();
}

function onUpResEnd(this: Tagged<IncomingMessage>): void {
  const fwd = this[FORWARD]!;
  if (fwd.done) return;
  fwd.done = true;
  const trailers = this.trailers;
  for (const _ in trailers) {
    fwd.res.addTrailers(trailers);
    break;
  }
  fwd.res.end();
  fwd.relay.settle(fwd, isEndpointFailure(fwd.status, '') ? OUTCOME.failure : OUTCOME.success);
}

function onUpError(this: Tagged<http.ClientRequest>, err: NodeJS.ErrnoException): void {
  const fwd = this[FORWARD]!;
  if (fwd.upReq !== this || fwd.done) return;
  const stats = fwd.stats;
  const refused = err.code === 'ECONNREFUSED' || err.code === 'ETIMEDOUT' || err.code === 'EHOSTUNREACH';
  const deadPooled = this.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
  fwd.relay.settle(fwd, refused ? OUTCOME.connectFailure : OUTCOME.failure);
  if (fwd.respondedAt === 0 && (refused || deadPooled) && stats !== undefined) {
    fwd.req.pause();
    if (fwd.relay.retry(fwd, stats, refused ? 'connect-failure' : 'dead-connection')) return;
  }
  fwd.done = true;
  fwd.relay.deps.metrics.proxyError(fwd.balancer.id, refused ? 'connect-failure' : 'upstream-reset');
  replyError(fwd.res, 502, `meshlet: endpoint ${stats?.key ?? '?'} failed: ${err.message}`);
}
