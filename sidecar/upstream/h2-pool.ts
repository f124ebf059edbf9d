import http2, { type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import net from 'node:net';
import type { Logger } from '../../src/common/logger.js';
import { MeshletError } from '../../src/common/errors.js';
import type { Endpoint } from '../discovery/endpoint-set.js';

/** Streams assumed per session until the endpoint's SETTINGS say otherwise. */
const ASSUMED_MAX_STREAMS = 100;
/** Never put more than this many streams on one upstream session, whatever the peer allows. */
const MAX_STREAMS_PER_SESSION = 1000;
/** An upstream session with no streams for this long is closed. */
export const H2_IDLE_TIMEOUT_MS = 120_000;
/** Flow-control window we grant upstream sessions and streams (bounded buffering per stream). */
export const H2_WINDOW_BYTES = 1 << 20;

/** Connecting to an endpoint failed, so nothing was sent: safe to retry elsewhere. */
export class UpstreamConnectError extends MeshletError {
  constructor(readonly endpoint: string, cause: unknown) {
    super('MESHLET_UPSTREAM_CONNECT', `cannot connect to ${endpoint}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

export interface PooledSession {
  readonly session: ClientHttp2Session;
  active: number;
  maxStreams: number;
  /** False once the peer sent GOAWAY or the session failed: no new streams. */
  usable: boolean;
}

const POOLED = Symbol('meshlet.pooledSession');
type PooledStream = ClientHttp2Stream & { [POOLED]?: PooledSession };

function onPooledStreamClose(this: PooledStream): void {
  const pooled = this[POOLED];
  if (pooled) pooled.active--;
}

/**
 * HTTP/2 sessions to one endpoint. A request takes the first usable session with a free stream
 * slot; when every session is at the peer's max-concurrent-streams another is opened. Sessions that
 * received GOAWAY take no new streams and leave the pool when closed.
 */
export class H2Pool {
  private sessions: PooledSession[] = [];
  private connecting: Promise<PooledSession> | undefined;
  private closed = false;
  private readonly authority: string;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly connectTimeoutMs: number,
    private readonly log: Logger,
  ) {
    this.authority = `http://${endpoint.key}`;
  }

  get connections(): number {
    return this.sessions.length;
  }

  /**
   * A session with room for one more stream: at once when pooled, else a promise that settles when
   * a new session is ready. Waiters should call acquire() again then: the new session may already be
   * full (its max-concurrent-streams is known only once connected), and then another one opens.
   */
  acquire(): PooledSession | Promise<PooledSession> {
    const sessions = this.sessions;
    for (let i = 0; i < sessions.length; i++) {
      const pooled = sessions[i]!;
      if (pooled.usable && pooled.active < pooled.maxStreams) {
        if (!pooled.session.destroyed && !pooled.session.closed) return pooled;
        this.retire(pooled);
      }
    }
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** Opens one stream on `pooled`; its slot is given back when the stream closes. */
  request(pooled: PooledSession, headers: OutgoingHttpHeaders, endStream: boolean): ClientHttp2Stream {
    const stream = pooled.session.request(headers, { endStream }) as PooledStream;
    pooled.active++;
    stream[POOLED] = pooled;
    stream.once('close', onPooledStreamClose);
    return stream;
  }

  /** Closes every session gracefully: streams in flight finish first. */
  close(): void {
    this.closed = true;
    for (const pooled of this.sessions) {
      pooled.usable = false;
      pooled.session.close();
    }
  }

  private connect(): Promise<PooledSession> {
    if (this.closed) return Promise.reject(new UpstreamConnectError(this.endpoint.key, new Error('endpoint removed')));
    return new Promise((resolve, reject) => {
      const { host, port } = this.endpoint;
      const session = http2.connect(this.authority, {
        settings: { initialWindowSize: H2_WINDOW_BYTES, enablePush: false },
        maxSessionMemory: 64,
        createConnection: () => net.connect({ host, port, noDelay: true }),
      });
      const pooled: PooledSession = { session, active: 0, maxStreams: ASSUMED_MAX_STREAMS, usable: true };
      let connected = false;
      let settled = false;
      const timer = setTimeout(() => session.destroy(new Error(`no connection within ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
      timer.unref();
      // Ready once connected AND the peer's SETTINGS are known, so max-concurrent-streams is real.
      const settle = () => {
        if (settled || !connected || session.remoteSettings === undefined || !receivedSettings) return;
        settled = true;
        clearTimeout(timer);
        if (this.closed) {
          session.close();
          reject(new UpstreamConnectError(this.endpoint.key, new Error('endpoint removed')));
          return;
        }
        this.sessions.push(pooled);
        this.log.debug({ endpoint: this.endpoint.key, sessions: this.sessions.length, maxStreams: pooled.maxStreams }, 'upstream session open');
        resolve(pooled);
      };
      let receivedSettings = false;
      session.on('connect', () => {
        connected = true;
        session.setLocalWindowSize(H2_WINDOW_BYTES * 4);
        settle();
      });
      session.on('remoteSettings', (settings) => {
        const max = settings.maxConcurrentStreams ?? ASSUMED_MAX_STREAMS;
        pooled.maxStreams = max > MAX_STREAMS_PER_SESSION ? MAX_STREAMS_PER_SESSION : max;
        receivedSettings = true;
        settle();
      });
      session.on('goaway', () => this.retire(pooled));
      session.on('error', (err) => {
        if (!settled) {
          clearTimeout(timer);
          reject(new UpstreamConnectError(this.endpoint.key, err));
        }
        this.log.debug({ endpoint: this.endpoint.key, err }, 'upstream session error');
      });
      session.on('close', () => {
        clearTimeout(timer);
        if (!settled) reject(new UpstreamConnectError(this.endpoint.key, new Error('connection closed')));
        this.retire(pooled);
      });
      session.setTimeout(H2_IDLE_TIMEOUT_MS, () => {
        if (pooled.active === 0) {
          this.retire(pooled);
          session.close();
        }
      });
    });
  }

  private retire(pooled: PooledSession): void {
    pooled.usable = false;
    const index = this.sessions.indexOf(pooled);
    if (index >= 0) this.sessions.splice(index, 1);
  }
}
