import { METRICS } from '../../src/common/contract.js';

/** Upper bounds (seconds) of the request-duration histogram buckets. */
export const DURATION_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
/** Distinct `endpoint` label values per process by default; later endpoints share "other". */
export const DEFAULT_ENDPOINT_LABEL_CAP = 200;
export const OTHER_ENDPOINT = 'other';

export type ProtocolLabel = 'http1' | 'http2' | 'grpc';
export const PROTOCOL_INDEX: Record<ProtocolLabel, number> = { http1: 0, http2: 1, grpc: 2 };
const PROTOCOL_BY_INDEX: ProtocolLabel[] = ['http1', 'http2', 'grpc'];

export class Histogram {
  readonly counts = new Array<number>(DURATION_BUCKETS_S.length).fill(0);
  count = 0;
  sum = 0;

  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < DURATION_BUCKETS_S.length; i++) {
      if (seconds <= DURATION_BUCKETS_S[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

/** The series of one (target, endpoint label): updated in place, nothing allocated per request. */
export class EndpointMetrics {
  readonly requests = [0, 0, 0];
  /** HTTP status → grpc-status ("" when not gRPC) → count. */
  readonly responses = new Map<number, Map<string, number>>();
  readonly duration = new Histogram();
  inFlight = 0;
  ejections = 0;

  constructor(
    readonly target: string,
    readonly endpoint: string,
  ) {}

  request(protocol: number): void {
    this.requests[protocol]!++;
  }

  response(code: number, grpcStatus: string, seconds: number): void {
    let byGrpc = this.responses.get(code);
    if (byGrpc === undefined) {
      byGrpc = new Map();
      this.responses.set(code, byGrpc);
    }
    byGrpc.set(grpcStatus, (byGrpc.get(grpcStatus) ?? 0) + 1);
    this.duration.observe(seconds);
  }
}

/** Live gauges read at scrape time from whoever holds the state (the target registry). */
export interface GaugeView {
  upstreamConnections(): Iterable<{ target: string; endpoint: string; value: number }>;
  endpointCounts(): Iterable<{ target: string; ready: number; draining: number; ejected: number; stalenessSeconds: number }>;
}

/**
 * The proxy's Prometheus metrics. Endpoint label values are capped per process: the first `cap`
 * distinct endpoints keep their own label, later ones fold into "other", so cardinality stays bounded.
 */
export class ProxyMetrics {
  private readonly endpoints = new Map<string, Map<string, EndpointMetrics>>();
  private readonly labelledEndpoints = new Set<string>();
  private readonly downstream = new Map<string, number>();
  private refusedConnections = 0;
  private readonly passthroughCounts = new Map<string, Map<string, number>>();
  private readonly proxyErrorCounts = new Map<string, Map<string, number>>();
  private readonly retryCounts = new Map<string, Map<string, number>>();

  constructor(private readonly endpointLabelCap: number = DEFAULT_ENDPOINT_LABEL_CAP) {}

  endpoint(target: string, endpoint: string): EndpointMetrics {
    let byEndpoint = this.endpoints.get(target);
    if (byEndpoint === undefined) {
      byEndpoint = new Map();
      this.endpoints.set(target, byEndpoint);
    }
    let label = endpoint;
    if (!this.labelledEndpoints.has(endpoint)) {
      if (this.labelledEndpoints.size < this.endpointLabelCap) this.labelledEndpoints.add(endpoint);
      else label = OTHER_ENDPOINT;
    }
    let metrics = byEndpoint.get(label);
    if (metrics === undefined) {
      metrics = new EndpointMetrics(target, label);
      byEndpoint.set(label, metrics);
    }
    return metrics;
  }

  ejection(metrics: EndpointMetrics): void {
    metrics.ejections++;
  }

  connectionOpened(protocol: string): void {
    this.downstream.set(protocol, (this.downstream.get(protocol) ?? 0) + 1);
  }

  connectionClosed(protocol: string): void {
    this.downstream.set(protocol, (this.downstream.get(protocol) ?? 0) - 1);
  }

  /** An app connection was closed at accept: the connection limit was reached. */
  connectionRefused(): void {
    this.refusedConnections++;
  }

  passthrough(protocol: string, reason: string): void {
    increment(this.passthroughCounts, protocol, reason);
  }

  proxyError(target: string, reason: string): void {
    increment(this.proxyErrorCounts, target, reason);
  }

  retry(target: string, reason: string): void {
    increment(this.retryCounts, target, reason);
  }

  /** Prometheus text exposition format 0.0.4. */
  render(gauges: GaugeView): string {
    const out: string[] = [];
    const all = [...this.endpoints.values()].flatMap((m) => [...m.values()]);

    header(out, METRICS.requests, 'counter', 'Requests sent to an endpoint.');
    for (const m of all) {
      for (let p = 0; p < 3; p++) {
        if (m.requests[p]! > 0) out.push(`${METRICS.requests}${labels({ target: m.target, endpoint: m.endpoint, protocol: PROTOCOL_BY_INDEX[p]! })} ${m.requests[p]}`);
      }
    }
    header(out, METRICS.responses, 'counter', 'Responses received, by HTTP status and gRPC status.');
    for (const m of all) {
      for (const [code, byGrpc] of m.responses) {
        for (const [grpcStatus, count] of byGrpc) {
          out.push(`${METRICS.responses}${labels({ target: m.target, endpoint: m.endpoint, code: String(code), grpc_status: grpcStatus })} ${count}`);
        }
      }
    }
    header(out, METRICS.requestDuration, 'histogram', 'Seconds from request start to response end.');
    for (const m of all) {
      if (m.duration.count === 0) continue;
      let cumulative = 0;
      for (let i = 0; i < DURATION_BUCKETS_S.length; i++) {
        cumulative += m.duration.counts[i]!;
        out.push(`${METRICS.requestDuration}_bucket${labels({ target: m.target, endpoint: m.endpoint, le: String(DURATION_BUCKETS_S[i]) })} ${cumulative}`);
      }
      out.push(`${METRICS.requestDuration}_bucket${labels({ target: m.target, endpoint: m.endpoint, le: '+Inf' })} ${m.duration.count}`);
      out.push(`${METRICS.requestDuration}_sum${labels({ target: m.target, endpoint: m.endpoint })} ${m.duration.sum}`);
      out.push(`${METRICS.requestDuration}_count${labels({ target: m.target, endpoint: m.endpoint })} ${m.duration.count}`);
    }
    header(out, METRICS.inFlight, 'gauge', 'Requests in flight.');
    for (const m of all) out.push(`${METRICS.inFlight}${labels({ target: m.target, endpoint: m.endpoint })} ${m.inFlight}`);
    header(out, METRICS.upstreamConnections, 'gauge', 'Open upstream connections (HTTP/2 sessions or HTTP/1 sockets).');
    const upstream = new Map<string, { target: string; endpoint: string; value: number }>();
    for (const g of gauges.upstreamConnections()) {
      const key = `${g.target}\u0000${g.endpoint}`;
      const seen = upstream.get(key);
      if (seen) seen.value += g.value;
      else upstream.set(key, { ...g });
    }
    for (const g of upstream.values()) out.push(`${METRICS.upstreamConnections}${labels({ target: g.target, endpoint: g.endpoint })} ${g.value}`);
    header(out, METRICS.downstreamConnections, 'gauge', 'Open connections from the app.');
    for (const [protocol, value] of this.downstream) out.push(`${METRICS.downstreamConnections}${labels({ protocol })} ${value}`);
    header(out, METRICS.refusedConnections, 'counter', 'App connections closed at accept: the connection limit was reached.');
    out.push(`${METRICS.refusedConnections} ${this.refusedConnections}`);
    header(out, METRICS.retries, 'counter', 'Requests retried once on another endpoint.');
    renderNested(out, METRICS.retries, this.retryCounts, 'target', 'reason');
    header(out, METRICS.ejections, 'counter', 'Times an endpoint was ejected.');
    for (const m of all) if (m.ejections > 0) out.push(`${METRICS.ejections}${labels({ target: m.target, endpoint: m.endpoint })} ${m.ejections}`);
    header(out, METRICS.proxyErrors, 'counter', 'Requests that failed inside the proxy.');
    renderNested(out, METRICS.proxyErrors, this.proxyErrorCounts, 'target', 'reason');
    header(out, METRICS.passthrough, 'counter', 'Connections or requests passed through unbalanced.');
    renderNested(out, METRICS.passthrough, this.passthroughCounts, 'protocol', 'reason');
    const counts = [...gauges.endpointCounts()];
    header(out, METRICS.endpoints, 'gauge', 'Endpoints known, by state.');
    for (const c of counts) {
      for (const state of ['ready', 'draining', 'ejected'] as const) out.push(`${METRICS.endpoints}${labels({ target: c.target, state })} ${c[state]}`);
    }
    header(out, METRICS.discoveryStaleness, 'gauge', 'Seconds since discovery last confirmed the endpoint set (0 while fresh).');
    for (const c of counts) out.push(`${METRICS.discoveryStaleness}${labels({ target: c.target })} ${c.stalenessSeconds}`);
    return out.join('\n') + '\n';
  }
}

function increment(map: Map<string, Map<string, number>>, a: string, b: string): void {
  let inner = map.get(a);
  if (inner === undefined) {
    inner = new Map();
    map.set(a, inner);
  }
  inner.set(b, (inner.get(b) ?? 0) + 1);
}

function header(out: string[], name: string, type: string, help: string): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
}

function renderNested(out: string[], name: string, map: Map<string, Map<string, number>>, first: string, second: string): void {
  for (const [a, inner] of map) for (const [b, count] of inner) out.push(`${name}${labels({ [first]: a, [second]: b })} ${count}`);
}

function labels(values: Record<string, string>): string {
  return `{${Object.entries(values)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',')}}`;
}
