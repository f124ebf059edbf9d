/**
 * Every metric the sidecar exports, named once. `meshlet diagnose`, the Grafana dashboard and the
 * alerting rules in manifests/ use these names; a test checks they stay in step.
 *
 * Labels: `target` (e.g. "demo/web:8080"), `endpoint` ("ip:port", capped: values past the cap fold
 * into "other"), `protocol` ("http2" | "grpc" | "http1"), `code` (HTTP status), `grpc_status`.
 */
export const METRICS = {
  /** counter {target, endpoint, protocol}: requests sent to an endpoint. */
  requests: 'meshlet_requests_total',
  /** counter {target, endpoint, code, grpc_status}: responses received. */
  responses: 'meshlet_responses_total',
  /** histogram {target, endpoint}: seconds from request start to response end. */
  requestDuration: 'meshlet_request_duration_seconds',
  /** gauge {target, endpoint}: requests in flight. */
  inFlight: 'meshlet_requests_in_flight',
  /** gauge {target, endpoint}: open upstream connections (HTTP/2 sessions or HTTP/1 sockets). */
  upstreamConnections: 'meshlet_upstream_connections',
  /** gauge {protocol}: open connections from the app. */
  downstreamConnections: 'meshlet_downstream_connections',
  /** counter {target, reason}: requests retried once on another endpoint. */
  retries: 'meshlet_retries_total',
  /** counter {target, endpoint}: times an endpoint was ejected. */
  ejections: 'meshlet_ejections_total',
  /** counter {target, reason}: requests that failed inside the proxy (no endpoints, connect failure, timeout). */
  proxyErrors: 'meshlet_proxy_errors_total',
  /** counter {protocol, reason}: connections or requests passed through unbalanced ("opaque", "unknown-target"). */
  passthrough: 'meshlet_passthrough_total',
  /** gauge {target, state}: endpoints known per state ("ready", "draining", "ejected"). */
  endpoints: 'meshlet_endpoints',
  /** gauge {target}: seconds since discovery last confirmed the endpoint set (0 while fresh). */
  discoveryStaleness: 'meshlet_discovery_staleness_seconds',
} as const;

export type MetricName = (typeof METRICS)[keyof typeof METRICS];
