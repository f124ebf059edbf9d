import http from 'node:http';

/** Keep-alive sockets kept open per endpoint when idle. */
const MAX_FREE_SOCKETS = 64;
/** An idle pooled socket is closed after this long. */
export const H1_IDLE_TIMEOUT_MS = 30_000;

/** Keep-alive HTTP/1.1 connections to one endpoint (a node:http Agent of its own). */
export class H1Pool {
  readonly agent: http.Agent;

  constructor(maxSockets: number) {
    // noDelay: node:http writes a request's head and body separately; with Nagle on, the second
    // waited for the endpoint's ACK.
    this.agent = new http.Agent({ keepAlive: true, noDelay: true, maxSockets, maxFreeSockets: MAX_FREE_SOCKETS, scheduling: 'lifo', timeout: H1_IDLE_TIMEOUT_MS });
  }

  get connections(): number {
    let n = 0;
    for (const list of Object.values(this.agent.sockets)) n += list?.length ?? 0;
    for (const list of Object.values(this.agent.freeSockets)) n += list?.length ?? 0;
    return n;
  }

  close(): void {
    this.agent.destroy();
  }
}
