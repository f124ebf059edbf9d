import type { Logger } from '../../src/common/log-format.js';
import type { Endpoint } from '../discovery/endpoint-set.js';
import { H1Pool } from './h1-pool.js';
import { H2Pool } from './h2-pool.js';

export interface UpstreamOptions {
  connectTimeoutMs: number;
  /** HTTP/1.1 sockets per endpoint at most (requests beyond wait for a free one). */
  h1MaxSockets: number;
  /** An HTTP/2 connection silent this long is pinged; one that does not answer within as long again is closed. */
  pingMs: number;
}

export const DEFAULT_UPSTREAM: UpstreamOptions = { connectTimeoutMs: 3_000, h1MaxSockets: 256, pingMs: 10_000 };

/** The connection pools to one endpoint, opened on first use and closed when the endpoint goes. */
export class EndpointUpstream {
  private h2Pool: H2Pool | undefined;
  private h1Pool: H1Pool | undefined;
  private closed = false;

  constructor(
    readonly endpoint: Endpoint,
    private readonly options: UpstreamOptions,
    private readonly log: Logger,
  ) {}

  get h2(): H2Pool {
    this.h2Pool ??= new H2Pool(this.endpoint, this.options.connectTimeoutMs, this.options.pingMs, this.log);
    if (this.closed) this.h2Pool.close();
    return this.h2Pool;
  }

  get h1(): H1Pool {
    this.h1Pool ??= new H1Pool(this.endpoint, this.options.h1MaxSockets, this.options.connectTimeoutMs);
    return this.h1Pool;
  }

  get connections(): number {
    return (this.h2Pool?.size ?? 0) + (this.h1Pool?.connections ?? 0);
  }

  close(): void {
    this.closed = true;
    this.h2Pool?.close();
    this.h1Pool?.close();
  }
}
