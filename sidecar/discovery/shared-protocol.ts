import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';

/**
 * The wire protocol between `meshlet discovery` (the shared watcher, src/discovery/) and the sidecars
 * (./shared-watcher-source.ts). Both sides import it; nothing else defines these names or limits.
 *
 * One long-lived HTTP/1.1 exchange per sidecar, full duplex, JSON lines both ways:
 *
 *   POST /v1/subscriptions
 *   Authorization: Bearer <projected service-account token, audience "meshlet-discovery">
 *   Content-Type: application/x-ndjson            (chunked; the body stays open)
 *
 * The server checks the token with a TokenReview first: no token or a token the API server does not
 * authenticate for the audience gets 401 with a text/plain message; a TokenReview that cannot be
 * made gets 503 (the sidecar retries). Then it answers 200 and streams. The request body carries
 * the sidecar's interest, one ClientCommand per line:
 *
 *   {"op":"watch","kind":"service","key":"demo/web"}       a Service's state, now and on every change
 *   {"op":"watch","kind":"address","key":"10.96.0.10"}     who owns an address, now and on every change
 *   {"op":"unwatch","kind":"service","key":"demo/web"}     no longer needed
 *
 * The response carries ServerMessages, one per line:
 *
 *   {"type":"service","key":"demo/web","service":{...}|null,"slices":[...]}   the whole current state
 *       (the Service slimmed to name, type, ClusterIPs and ports; its EndpointSlices slimmed to
 *       addressType, ports and endpoints); `service: null` when no such Service exists
 *   {"type":"address","key":"10.96.0.10","service":"demo/web"|null}   the Service whose ClusterIP
 *       (v4 or v6) this is, else the one Service whose EndpointSlices hold it as a Pod IP; null when
 *       none or several do
 *   {"type":"ping","synced":true}   every PING_INTERVAL_MS: the stream is alive; `synced: false`
 *       while the server itself has lost the API (sidecars then report their sets as stale)
 *   {"type":"error","message":"...","key":"..."}   a command refused (bad line, over a limit, a
 *       state over MAX_MESSAGE_BYTES); the stream goes on
 *   {"type":"reconnect","reason":"..."}   RECONNECT_LEAD_MS before the token the stream was opened
 *       with expires (when the server ends it): the sidecar opens a new stream with the token now in
 *       its file, then closes this one, so the hand-over is neither an outage nor stale sets
 *
 * States are sent once the server has listed everything, then whenever they change. Limits: at most
 * MAX_SUBSCRIPTIONS_PER_CONNECTION watches per connection, command lines of at most
 * MAX_COMMAND_LINE_BYTES (a longer one ends the connection), messages of at most MAX_MESSAGE_BYTES,
 * and a reader that has left more than MAX_BUFFERED_BYTES unread when the next message is due is
 * disconnected, not buffered for.
 */

export const SUBSCRIPTIONS_PATH = '/v1/subscriptions';
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

export const PING_INTERVAL_MS = 5_000;
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 1024;
export const MAX_COMMAND_LINE_BYTES = 1024;
export const MAX_MESSAGE_BYTES = 1024 * 1024;
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/**
 * How long before a stream's token expires the server asks for a new stream. kubelet writes a new
 * projected token at 80% of the old one's life (12 minutes early for an hour-long token, 2 for the
 * shortest, 10 minutes), so by then the file holds one.
 */
export const RECONNECT_LEAD_MS = 60_000;

export type SubscriptionKind = 'service' | 'address';

export interface ClientCommand {
  op: 'watch' | 'unwatch';
  kind: SubscriptionKind;
  /** `namespace/name` for a service, an IPv4 or IPv6 address for an address. */
  key: string;
}

export type ServerMessage =
  | { type: 'service'; key: string; service: V1Service | null; slices: V1EndpointSlice[] }
  | { type: 'address'; key: string; service: string | null }
  | { type: 'ping'; synced: boolean }
  | { type: 'error'; message: string; key?: string }
  | { type: 'reconnect'; reason: string };
