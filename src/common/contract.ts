/**
 * The contract between the injector (`meshlet webhook`, `meshlet inject`), `meshlet init` and
 * `meshlet proxy`: every fact they must agree on, written once. The injector writes a Pod that the
 * init container and the proxy then run in; the dashboards, alerts and `meshlet diagnose` read what
 * the proxy exports. Anything that names one of these facts imports it from here; parsing and
 * validating the values users write stays with the code that reads them (inject/annotations.ts,
 * sidecar/config.ts). Manifests and the README repeat some of them as literals; test/common/
 * contract.test.ts and test/manifests/manifests.test.ts check that they still agree.
 */

// ---------------------------------------------------------------------------------------------
// Identity, ports and paths inside a meshed Pod

/** The non-root UID (and GID) the proxy runs as, and the image's user; `meshlet init` exempts this UID's traffic from redirection. */
export const PROXY_UID = 2102;
/** TCP port, on 127.0.0.1 and ::1, where `meshlet init` redirects outbound connections and the proxy accepts them. */
export const PROXY_OUTBOUND_PORT = 15001;
/** TCP port of the proxy's admin server (ADMIN_PATH), on every address of the Pod: probes and Prometheus use it. */
export const PROXY_ADMIN_PORT = 15090;
/** TCP port of the proxy's debug endpoint table (/debug/endpoints), on 127.0.0.1 only. */
export const PROXY_DEBUG_PORT = 15091;
/** Paths on PROXY_ADMIN_PORT: the injector's probes use `ready` and `live`, Prometheus and `meshlet diagnose` read `metrics`. */
export const ADMIN_PATH = {
  ready: '/ready',
  live: '/live',
  metrics: '/metrics',
} as const;
/** Where the injector mounts the proxy's own projected service-account token (a directory; the token is its file `token`). */
export const PROXY_TOKEN_DIR = '/var/run/secrets/meshlet/serviceaccount';
/** The projected token for the audience DISCOVERY_TOKEN_AUDIENCE, beside the proxy's API token (same volume). */
export const DISCOVERY_TOKEN_FILE_NAME = 'discovery-token';
export const DEFAULT_DISCOVERY_TOKEN_FILE = `${PROXY_TOKEN_DIR}/${DISCOVERY_TOKEN_FILE_NAME}`;
/** TCP port where `meshlet discovery`, the shared watcher, serves sidecars' subscriptions. */
export const DISCOVERY_PORT = 15010;
/** The audience of the projected token a sidecar shows the shared watcher (checked there by TokenReview). */
export const DISCOVERY_TOKEN_AUDIENCE = 'meshlet-discovery';

/** The webhook's HTTPS port unless --port says otherwise; manifests/webhook-deployment.yaml passes it too. */
export const WEBHOOK_PORT = 8443;
/** The namespace meshlet itself is installed into; never meshed. */
export const MESHLET_NAMESPACE = 'meshlet-system';
/** The container that runs `meshlet init` in a meshed Pod. */
export const INIT_CONTAINER_NAME = 'meshlet-init';
/** The container that runs `meshlet proxy` in a meshed Pod; `meshlet diagnose` recognises meshed Pods by it. */
export const PROXY_CONTAINER_NAME = 'meshlet-proxy';
/** The default image for both containers; the tag follows the package version at release. */
export const DEFAULT_PROXY_IMAGE = 'ghcr.io/meshlet/meshlet:0.1.0';

/**
 * How the image runs meshlet (Dockerfile: ENTRYPOINT ["node", "/app/bin/meshlet.js"]). The injector
 * spells it out in the proxy container's `command` to put PROXY_NODE_FLAGS between the two, so a
 * custom image (meshlet.dev/proxy-image) must keep this layout.
 */
export const IMAGE_ENTRYPOINT = ['node', '/app/bin/meshlet.js'] as const;

/**
 * Node/V8 flags of the proxy process: on node's command line (NODE_OPTIONS refuses
 * --initial-old-space-size), in the proxy container and in the proxies the benchmarks start.
 * Measured with `npm run bench` and README "Where the memory goes":
 * - a 1 MiB semi-space (Node's default grows to 16 MiB) keeps the young generation small: with
 *   16 MiB the peak at 1,000 req/s was 97 MiB and 113-117 MiB after saturation;
 * - a 4 MiB initial old generation makes the first full collections come early instead of after
 *   old space has grown by promoted garbage: 0.5-1 MiB off the peak at 1,000 req/s and about
 *   10 MiB off the peak after saturation (tools/peak-rss.ts).
 * HTTP/2 CPU per request with these flags and PROXY_ENV: 1.00-1.11 times HAProxy's in three runs
 * (0.93-1.16 before); the added p99 at 1,000 req/s did not move (README, Benchmarks).
 */
export const PROXY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--initial-old-space-size=4'];

/**
 * Environment of the proxy process besides meshlet's own variables. One glibc malloc arena: V8's
 * compiler and GC threads otherwise keep an arena each, 0.4-0.7 MiB apiece after traffic
 * (1.3-1.5 MiB off the peak at 1,000 req/s; the image is Debian, so glibc).
 */
export const PROXY_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '1' };

/** The longest slow start, in ms, the proxy (--slow-start-ms) and the injector (meshlet.dev/slow-start-ms) accept: ten minutes. */
export const MAX_SLOW_START_MS = 600_000;

// ---------------------------------------------------------------------------------------------
// Environment variables

/**
 * Environment variables read by more than one command, or set by the injector on the proxy
 * container and read by `meshlet proxy`. A variable only one command reads is declared once, in
 * that command's flag spec.
 */
export const ENV = {
  /** The Pod's name (downward API). */
  podName: 'MESHLET_POD_NAME',
  /** The Pod's namespace (downward API): where short Service names resolve. */
  podNamespace: 'MESHLET_POD_NAMESPACE',
  /** The Pod's IP (downward API). */
  podIp: 'MESHLET_POD_IP',
  /** The Pod's service account (downward API). */
  serviceAccount: 'MESHLET_SERVICE_ACCOUNT',
  /** One of LB_POLICIES. */
  lbPolicy: 'MESHLET_LB_POLICY',
  /** Slow start in ms, 0 to MAX_SLOW_START_MS; unset: the proxy's default. */
  slowStartMs: 'MESHLET_SLOW_START_MS',
  /** One of LOG_LEVELS; read by `meshlet proxy` and `meshlet webhook`. */
  logLevel: 'MESHLET_LOG_LEVEL',
  /** The proxy's admin address, HOST:PORT. */
  admin: 'MESHLET_ADMIN',
  /** Standalone mode: the proxy's listen address, HOST:PORT. */
  listen: 'MESHLET_LISTEN',
  /** The cluster DNS domain, e.g. cluster.local. */
  clusterDomain: 'MESHLET_CLUSTER_DOMAIN',
  /** Path of the proxy's service-account token file (PROXY_TOKEN_DIR/token in a Pod). */
  tokenFile: 'MESHLET_TOKEN_FILE',
  /** Path of a kubeconfig file, for a proxy outside a cluster. */
  kubeconfig: 'MESHLET_KUBECONFIG',
  /** `meshlet discovery` for the proxy to use, HOST:PORT; unset: the proxy watches the API itself. */
  discoveryServer: 'MESHLET_DISCOVERY_SERVER',
  /** Path of the token (audience DISCOVERY_TOKEN_AUDIENCE) the proxy shows the shared watcher. */
  discoveryTokenFile: 'MESHLET_DISCOVERY_TOKEN_FILE',
  /** How long the shared watcher may be unreachable before the proxy watches the API itself, in ms. */
  discoveryFallbackMs: 'MESHLET_DISCOVERY_FALLBACK_MS',
} as const;

// ---------------------------------------------------------------------------------------------
// Labels and annotations

/** Namespace label: `enabled` lets the webhook see the namespace's Pods (manifests/mutatingwebhookconfiguration.yaml selects on it). */
export const NAMESPACE_INJECTION_LABEL = 'meshlet.dev/injection';
/** Every meshlet.dev/* Pod annotation key the injector reads or writes; their values are parsed in src/inject/annotations.ts. */
export const ANNOTATION = {
  /** INJECT_ENABLED or INJECT_DISABLED: the Pod's opt-in. */
  inject: 'meshlet.dev/inject',
  /** Written by the injector: STATUS_INJECTED. */
  status: 'meshlet.dev/status',
  /** Written by the injector: the meshlet version that meshed the Pod. */
  version: 'meshlet.dev/version',
  /** "true" or "false": the proxy as a native sidecar. */
  nativeSidecar: 'meshlet.dev/native-sidecar',
  /** Image of both containers, with a tag or a digest. */
  proxyImage: 'meshlet.dev/proxy-image',
  /** CPU request of the proxy (a Kubernetes quantity, cores). */
  proxyCpuRequest: 'meshlet.dev/proxy-cpu-request',
  /** CPU limit of the proxy (a Kubernetes quantity, cores). */
  proxyCpuLimit: 'meshlet.dev/proxy-cpu-limit',
  /** Memory request of the proxy (a Kubernetes quantity, bytes). */
  proxyMemoryRequest: 'meshlet.dev/proxy-memory-request',
  /** Memory limit of the proxy (a Kubernetes quantity, bytes). */
  proxyMemoryLimit: 'meshlet.dev/proxy-memory-limit',
  /** One of LOG_LEVELS. */
  proxyLogLevel: 'meshlet.dev/proxy-log-level',
  /** One of LB_POLICIES. */
  lbPolicy: 'meshlet.dev/lb-policy',
  /** Slow start in ms, 0 to MAX_SLOW_START_MS. */
  slowStartMs: 'meshlet.dev/slow-start-ms',
  /** Destination ports never redirected, e.g. "5432, 6379". */
  skipOutboundPorts: 'meshlet.dev/skip-outbound-ports',
  /** Destination ports redirected (default: every port). */
  outboundPorts: 'meshlet.dev/outbound-ports',
  /** Destination CIDRs never redirected. */
  skipOutboundCidrs: 'meshlet.dev/skip-outbound-cidrs',
} as const;

/** meshlet.dev/inject and meshlet.dev/injection: mesh this Pod, or the Pods of this namespace. */
export const INJECT_ENABLED = 'enabled';
/** meshlet.dev/inject: never mesh this Pod (the webhook configuration skips it without a call). */
export const INJECT_DISABLED = 'disabled';
/** meshlet.dev/status of a Pod the injector meshed. */
export const STATUS_INJECTED = 'injected';

// ---------------------------------------------------------------------------------------------
// Load-balancing policies

/**
 * The balancing policies, by the names users write in `--lb-policy`, MESHLET_LB_POLICY,
 * `--lb-policy` of the injector and `meshlet.dev/lb-policy`. A policy is one file in
 * sidecar/balance/ plus one line in sidecar/balance/setup.ts, whose table is typed to hold exactly
 * these names; its name is written only here.
 */
export const LB_POLICY = {
  /** Each endpoint in turn. */
  roundRobin: 'round-robin',
  /** Power of two choices on requests in flight. */
  leastRequest: 'least-request',
  /** Weighted by peak latency (EWMA) and failures, with slow start of new endpoints. */
  peakEwma: 'peak-ewma',
} as const;
export type LbPolicyName = (typeof LB_POLICY)[keyof typeof LB_POLICY];
/** Every policy name, in the order messages and help list them. */
export const LB_POLICIES: readonly LbPolicyName[] = Object.values(LB_POLICY);
/** The policy of a proxy (and of a Pod) that names none. */
export const DEFAULT_LB_POLICY: LbPolicyName = LB_POLICY.peakEwma;

// ---------------------------------------------------------------------------------------------
// Log levels

/**
 * The log levels `--log-level` of the proxy and of the webhook, MESHLET_LOG_LEVEL,
 * `--proxy-log-level` of the injector and `meshlet.dev/proxy-log-level` accept (pino's, most severe
 * first). "silent" is not one: a process that cannot say what went wrong helps nobody.
 */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** The level of every meshlet process unless told otherwise. */
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';

// ---------------------------------------------------------------------------------------------
// Metrics

/**
 * Every metric the sidecar exports on ADMIN_PATH.metrics, named once. `meshlet diagnose`, the
 * Grafana dashboard and the alerting rules in manifests/ use these names; a test checks they stay
 * in step.
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
  /** counter: app connections closed at accept because --max-app-connections were already open. */
  refusedConnections: 'meshlet_app_connections_refused_total',
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
