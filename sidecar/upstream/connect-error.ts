import { MeshletError } from '../../src/common/errors.js';

/**
 * Connecting to an endpoint (or an original destination) failed, so nothing was sent: safe to
 * retry elsewhere. The one connect failure every protocol sees, from the HTTP/2 and HTTP/1.1 pools
 * and the byte pipe alike.
 */
export class UpstreamConnectError extends MeshletError {
  constructor(
    readonly endpoint: string,
    cause: unknown,
  ) {
    super('MESHLET_UPSTREAM_CONNECT', `cannot connect to ${endpoint}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}
