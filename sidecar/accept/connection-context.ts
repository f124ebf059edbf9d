import type { HostPort } from '../../src/common/values.js';
import type { TargetBalancer } from '../balance/target-balancer.js';

/** What the proxy knows about one accepted app connection, shared by all its requests. */
export interface ConnectionContext {
  readonly connId: number;
  /** Where the app's connection was headed (in-Pod mode), when the kernel told us. */
  readonly originalDst: HostPort | undefined;
  /** originalDst as "host:port", or "" without one: part of the route cache key. */
  readonly dstKey: string;
  /** Per-connection route cache by authority: hits cost one Map lookup and no allocation. */
  readonly routes: Map<string, TargetBalancer>;
}
