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

/** Idle keep-alive connections from the app stay open this long (longer than common client pools). */
const APP_KEEP_ALIVE_MS = 65_000;
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
  ) {}
}

/**
 * HTTP/1.1: balances each request of a kept-alive app connection on its own, over keep-alive
 * pools per endpoint. `Upgrade` requests (WebSocket) go to the endpoint with the fewest open pipes
 * and then become a two-way byte pipe.
 */
export class Http1Relay implements ProtocolHandler {
  private readonly server: http.Server;

  constructor(readonly deps: RelayDeps) {
    this.server = http.createServer({ keepAliveTimeout: APP_KEEP_ALIVE_MS, requestTimeout: 0 }, (req, res) => this.onRequest(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      this.deps.log.debug({ err }, 'bad HTTP/1 request from app');
      if (socket.writable && !socket.destroyed) socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nmeshlet: malformed HTTP/1.1 request: ${err.code ?? err.message}\n`);
      else socket.destroy();
    });
  }

  handle(socket: AppSocket, ctx: ConnectionContext): void {
    socket[CONTEXT] = ctx;
    this.server.emit('connection', socket);
    socket.resume();
  }

  close(): void {
    this.server.closeIdleConnections();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const ctx = (req.socket as AppSocket)[CONTEXT]!;
    const route = this.deps.registry.route(ctx, req.headers.host);
    if (route instanceof Promise) {
      route.then(
        (resolved) => this.begin(req, res, resolved),
        (err) => this.deps.log.error({ err }, 'route lookup failed'),
      );
    } else {
      this.begin(req, res, route);
    }
  }

  private begin(req: Tagged<IncomingMessage>, res: Tagged<ServerResponse>, balancer: RouteResult): void {
    if (balancer === null) {
      this.deps.metrics.proxyError('unknown', 'unknown-target');
      replyError(res, 502, `meshlet: no target known for host "${req.headers.host ?? ''}" and the connection has no original destination`);
      return;
    }
    if (balancer.isPassthrough) this.deps.metrics.passthrough('http1', 'unknown-target');
    const fwd = new H1Forward(this, req, res, balancer, forwardHeaders(req.headers));
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
      path: req.url,
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
    const route = this.deps.registry.route(ctx, req.headers.host);
    if (route instanceof Promise) {
      route.then(
        (resolved) => this.pipeUpgrade(req, socket, head, resolved),
        (err) => this.deps.log.error({ err }, 'route lookup failed'),
      );
    } else {
      this.pipeUpgrade(req, socket, head, route);
    }
  }

  private pipeUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, balancer: RouteResult): void {
    if (balancer === null) {
      rejectUpgrade(socket, 502, `meshlet: no target known for host "${req.headers.host ?? ''}" and the connection has no original destination`);
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
      upstream.write(requestHead(req));
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

function requestHead(req: IncomingMessage): string {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
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
  const body = `${message}\n`;
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
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
