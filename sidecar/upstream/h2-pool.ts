import net from 'node:net';
import type { Logger } from '../../src/common/log-format.js';
import { UpstreamConnectError } from './connect-error.js';
import type { Endpoint } from '../discovery/endpoint-set.js';
import { H2Connection, type StreamEvents } from '../wire/h2/connection.js';
import { MAX_STREAM_ID } from '../wire/h2/frame.js';

/** Never put more than this many streams on one upstream connection, whatever the peer allows. */
const MAX_STREAMS_PER_CONNECTION = 1000;
/** An upstream connection with no streams for this long is closed. */
export const H2_IDLE_TIMEOUT_MS = 120_000;
/** Flow-control window we grant per stream, on both sides of the relay (bounded buffering per stream). */
export const H2_STREAM_WINDOW_BYTES = 1 << 20;
/** Flow-control window we grant per connection: all streams' unforwarded bytes together stay below it. */
export const H2_CONNECTION_WINDOW_BYTES = 8 << 20;
/**
 * A connection holding more unforwarded bytes than this (responses the apps are slow to read)
 * takes no new streams: they would wait behind the ones filling its window.
 */
const BACKLOGGED_BYTES = H2_CONNECTION_WINDOW_BYTES >>> 1;
/**
 * Streams we reset on one upstream connection (apps cancelling) before it takes no new streams and
 * closes once idle: half of nghttp2's default Rapid Reset burst (1000), so an endpoint guarding
 * itself with it never sees our connection as an attacker and drops the streams still on it.
 */
const MAX_RESETS_PER_CONNECTION = 500;

/** What the pool keeps per upstream connection. */
export interface UpstreamLink {
  readonly pool: H2Pool;
  /** Streams open on it. */
  active: number;
  /** The peer's max-concurrent-streams, capped. */
  maxStreams: number;
  /** False once the peer sent GOAWAY, ids ran out, or the pool closed: no new streams. */
  usable: boolean;
  nextStreamId: number;
  /** Streams we reset on it. */
  resetsSent: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the pool is agnostic of what the relay keeps per stream
export type UpstreamConnection<S = any> = H2Connection<S, UpstreamLink>;

/**
 * HTTP/2 connections to one endpoint, spoken at the frame level by the relay. A stream takes the
 * first usable connection with a free slot and a window not filled by slow readers; when there is
 * none another is opened. Connections that received GOAWAY take no new streams and close once idle.
 */
export class H2Pool {
  private connections: UpstreamConnection[] = [];
  private connecting: Promise<UpstreamConnection> | undefined;
  private closed = false;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly connectTimeoutMs: number,
    /** A connection silent this long is pinged; one whose PING goes unanswered as long is closed. */
    private readonly pingMs: number,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.connections.length;
  }

  /**
   * A connection with room for one more stream: at once when pooled, else a promise that settles
   * when a new one is ready. Waiters should call acquire() again then: the new connection may
   * already be full (its limit is known only once its SETTINGS arrive), and then another opens.
   */
  acquire<S>(events: StreamEvents<S, UpstreamLink>): UpstreamConnection<S> | Promise<UpstreamConnection<S>> {
    const connections = this.connections;
    for (let i = 0; i < connections.length; i++) {
      const conn = connections[i]!;
      const link = conn.context;
      if (link.usable && link.active < link.maxStreams && !conn.isClosed && conn.unforwardedBytes < BACKLOGGED_BYTES) return conn;
    }
    this.connecting ??= this.connect(events).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** Takes a stream slot on `conn` for `stream`; returns the new stream's id. */
  open<S>(conn: UpstreamConnection<S>, stream: S): number {
    const link = conn.context;
    const id = link.nextStreamId;
    link.nextStreamId += 2;
    link.active++;
    conn.streams.set(id, stream);
    if (link.nextStreamId > MAX_STREAM_ID) this.retire(conn);
    return id;
  }

  /** Gives a stream's slot back (`wasReset`: we reset it); a retired connection closes with its last stream. */
  release(conn: UpstreamConnection, id: number, wasReset = false): void {
    if (!conn.streams.delete(id)) return;
    const link = conn.context;
    link.active--;
    if (wasReset && ++link.resetsSent === MAX_RESETS_PER_CONNECTION && link.usable) {
      this.log.debug({ endpoint: this.endpoint.key, resets: link.resetsSent }, 'upstream connection retired after many cancelled streams');
      this.retire(conn);
      return;
    }
    if (!link.usable && link.active === 0) conn.shutdown();
  }

  /** Closes every connection gracefully: streams in flight finish first. */
  close(): void {
    this.closed = true;
    for (const conn of [...this.connections]) this.retire(conn);
  }

  private connect<S>(events: StreamEvents<S, UpstreamLink>): Promise<UpstreamConnection<S>> {
    if (this.closed) return Promise.reject(new UpstreamConnectError(this.endpoint.key, new Error('endpoint removed')));
    return new Promise((resolve, reject) => {
      const { host, port } = this.endpoint;
      const socket = net.connect({ host, port, noDelay: true });
      let conn: UpstreamConnection<S> | undefined;
      let settled = false;
      const settle = (error: Error | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.off('error', onConnectError);
        if (error !== undefined || conn === undefined) {
          socket.destroy();
          reject(new UpstreamConnectError(this.endpoint.key, error ?? new Error('connection closed')));
          return;
        }
        if (this.closed) {
          conn.shutdown();
          reject(new UpstreamConnectError(this.endpoint.key, new Error('endpoint removed')));
          return;
        }
        this.connections.push(conn);
        this.log.debug({ endpoint: this.endpoint.key, connections: this.connections.length, maxStreams: conn.context.maxStreams }, 'upstream connection open');
        resolve(conn);
      };
      const onConnectError = (err: Error) => settle(err);
      const timer = setTimeout(() => settle(new Error(`no connection within ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
      timer.unref();
      socket.once('error', onConnectError);
      socket.once('connect', () => {
        const link: UpstreamLink = { pool: this, active: 0, maxStreams: MAX_STREAMS_PER_CONNECTION, usable: true, nextStreamId: 1, resetsSent: 0 };
        const opened = new H2Connection<S, UpstreamLink>(
          socket,
          events,
          { role: 'client', initialWindowBytes: H2_STREAM_WINDOW_BYTES, connectionWindowBytes: H2_CONNECTION_WINDOW_BYTES },
          link,
        );
        conn = opened;
        // Ready once the peer's SETTINGS are known, so max-concurrent-streams is real.
        // A connection can die without a FIN (a partition, a vanished node): its streams would wait
        // for ever. A silent connection gets a PING; one that does not answer is closed, which
        // fails its streams and takes it out of the pool.
        const keepalive = setInterval(() => {
          if (opened.isClosed) return clearInterval(keepalive);
          if (opened.unansweredPingMs > this.pingMs) {
            this.log.warn({ endpoint: this.endpoint.key, streams: link.active, pingMs: this.pingMs }, 'upstream connection did not answer PING: closing it');
            opened.destroy(new Error(`no answer to a PING within ${this.pingMs} ms`));
            return;
          }
          if (performance.now() - opened.lastReadAt >= this.pingMs) opened.ping();
        }, this.pingMs);
        keepalive.unref();
        opened.onStateChange = (c) => {
          if (c.isClosed) clearInterval(keepalive);
          if (c.isClosed || c.peerGoingAway) {
            this.retire(c);
            settle(new Error(c.isClosed ? 'connection closed before its SETTINGS arrived' : 'GOAWAY before its SETTINGS arrived'));
            return;
          }
          const max = c.peerMaxStreams;
          link.maxStreams = max > MAX_STREAMS_PER_CONNECTION ? MAX_STREAMS_PER_CONNECTION : max;
          if (max === 0 && !settled) {
            // Opening more connections would not help: fail like a refused connection.
            this.retire(c);
            settle(new Error('the endpoint allows no streams (SETTINGS_MAX_CONCURRENT_STREAMS 0)'));
            return;
          }
          settle(undefined);
        };
        socket.setTimeout(H2_IDLE_TIMEOUT_MS, () => {
          if (link.active === 0) this.retire(opened);
        });
      });
    });
  }

  /** No new streams on `conn`; it closes once its last stream is done. */
  private retire(conn: UpstreamConnection): void {
    conn.context.usable = false;
    const index = this.connections.indexOf(conn);
    if (index >= 0) this.connections.splice(index, 1);
    if (conn.context.active === 0) conn.shutdown();
  }
}
