// Imported, not the global: in Node 20 globalThis.performance is a getter run on every use.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Endpoint } from '../discovery/endpoint-set.js';
import { sharedReadOptions } from '../wire/h1/read-buffer.js';
import { H1UpstreamConnection, type UpstreamOwner } from '../wire/h1/upstream-connection.js';
import { UpstreamConnectError } from './connect-error.js';

/** Idle kept-alive connections kept per endpoint; more are closed when their request ends. */
const MAX_IDLE_CONNECTIONS = 64;
/** An idle pooled connection is closed after it has been idle this long... */
export const H1_IDLE_TIMEOUT_MS = 30_000;
/**
 * ...checked this often by one sweep per pool, rather than a socket timeout: a socket timeout is
 * re-armed on every read and write, that is several timer updates per request.
 */
const IDLE_SWEEP_INTERVAL_MS = 5_000;

interface Waiter {
  resolve(conn: H1UpstreamConnection): void;
  reject(err: Error): void;
}

/**
 * Kept-alive HTTP/1.1 connections to one endpoint, at most `maxConnections` open; a request beyond
 * that waits for one to come free. Idle connections are reused newest first (the oldest ones then
 * reach their idle timeout and close), and one the endpoint closes while idle is dropped at once.
 */
export class H1Pool implements UpstreamOwner {
  private readonly idle: H1UpstreamConnection[] = [];
  private readonly waiters: Waiter[] = [];
  private open = 0;
  private closed = false;
  private sweep: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly endpoint: Endpoint,
    private readonly maxConnections: number,
    private readonly connectTimeoutMs: number,
  ) {}

  get connections(): number {
    return this.open;
  }

  /** An idle connection now, or a new one once connected; rejects with UpstreamConnectError. */
  acquire(): H1UpstreamConnection | Promise<H1UpstreamConnection> {
    const conn = this.idle.pop();
    if (conn !== undefined) return conn;
    if (this.closed) return Promise.reject(new UpstreamConnectError(this.endpoint.key, new Error('endpoint removed')));
    if (this.open < this.maxConnections) return this.connect();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  release(conn: H1UpstreamConnection): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      waiter.resolve(conn);
      return;
    }
    if (this.closed || this.idle.length >= MAX_IDLE_CONNECTIONS) {
      conn.destroy();
      return;
    }
    conn.idleSince = performance.now();
    this.idle.push(conn);
    this.sweep ??= setInterval(() => this.closeIdle(), IDLE_SWEEP_INTERVAL_MS).unref();
  }

  /** Closes the connections idle for H1_IDLE_TIMEOUT_MS or more: the oldest are first in the list. */
  private closeIdle(): void {
    const now = performance.now();
    const idle = this.idle;
    while (idle.length > 0 && now - idle[0]!.idleSince >= H1_IDLE_TIMEOUT_MS) idle.shift()!.destroy();
    if (idle.length === 0) this.stopSweep();
  }

  private stopSweep(): void {
    clearInterval(this.sweep);
    this.sweep = undefined;
  }

  forget(conn: H1UpstreamConnection): void {
    this.open--;
    const at = this.idle.indexOf(conn);
    if (at >= 0) this.idle.splice(at, 1);
    const waiter = this.waiters.shift();
    if (waiter !== undefined) this.connect().then(waiter.resolve, waiter.reject);
  }

  close(): void {
    this.closed = true;
    this.stopSweep();
    for (const conn of this.idle.splice(0)) conn.destroy();
    for (const waiter of this.waiters.splice(0)) waiter.reject(new UpstreamConnectError(this.endpoint.key, new Error('endpoint removed')));
  }

  private connect(): Promise<H1UpstreamConnection> {
    this.open++;
    const { host, port, key } = this.endpoint;
    return new Promise((resolve, reject) => {
      // Reads go straight to the connection, which exists before any byte can arrive.
      let conn: H1UpstreamConnection | undefined;
      const onread = sharedReadOptions((chunk) => conn!.onRead(chunk));
      const socket = net.connect({ host, port, noDelay: true, timeout: this.connectTimeoutMs, onread });
      const onError = (err: Error) => {
        socket.destroy();
        this.open--;
        const waiter = this.waiters.shift();
        if (waiter !== undefined) this.connect().then(waiter.resolve, waiter.reject);
        reject(new UpstreamConnectError(key, err));
      };
      const onTimeout = () => onError(new Error(`no connection within ${this.connectTimeoutMs} ms`));
      socket.once('error', onError);
      socket.once('timeout', onTimeout);
      socket.once('connect', () => {
        socket.off('error', onError);
        socket.off('timeout', onTimeout);
        // The connect timeout ends here: an idle connection is closed by the pool's sweep.
        socket.setTimeout(0);
        conn = new H1UpstreamConnection(socket, this);
        if (this.closed) {
          conn.destroy();
          reject(new UpstreamConnectError(key, new Error('endpoint removed')));
          return;
        }
        resolve(conn);
      });
    });
  }
}
