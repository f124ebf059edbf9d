/**
 * Facts shared by the injector, `meshlet init` and `meshlet proxy`: they must agree, so they are
 * declared once here.
 */

/** The non-root UID (and GID) the proxy runs as; `meshlet init` exempts its traffic from redirection. */
export const PROXY_UID = 2102;
/** Where redirected outbound connections arrive inside the Pod. */
export const PROXY_OUTBOUND_PORT = 15001;
/** The proxy's admin server: /ready, /live, /metrics. */
export const PROXY_ADMIN_PORT = 15090;
/** Where `meshlet discovery`, the shared watcher, serves sidecars' subscriptions. */
export const DISCOVERY_PORT = 15010;
/** The audience of the projected token a sidecar shows the shared watcher (checked there by TokenReview). */
export const DISCOVERY_TOKEN_AUDIENCE = 'meshlet-discovery';
/** The namespace meshlet itself is installed into; never meshed. */
export const MESHLET_NAMESPACE = 'meshlet-system';
/** Names of what the injector adds to a Pod. */
export const INIT_CONTAINER_NAME = 'meshlet-init';
export const PROXY_CONTAINER_NAME = 'meshlet-proxy';
/** The default image for both containers; the tag follows the package version at release. */
export const DEFAULT_PROXY_IMAGE = 'ghcr.io/meshlet/meshlet:0.1.0';

/** The longest slow start the proxy (--slow-start-ms) and the injector (meshlet.dev/slow-start-ms) accept: ten minutes. */
export const MAX_SLOW_START_MS = 600_000;

/** Environment variables of the proxy container, set by the injector (declared once, here). */
export const ENV = {
  podName: 'MESHLET_POD_NAME',
  podNamespace: 'MESHLET_POD_NAMESPACE',
  podIp: 'MESHLET_POD_IP',
  serviceAccount: 'MESHLET_SERVICE_ACCOUNT',
  lbPolicy: 'MESHLET_LB_POLICY',
  slowStartMs: 'MESHLET_SLOW_START_MS',
  logLevel: 'MESHLET_LOG_LEVEL',
  admin: 'MESHLET_ADMIN',
  listen: 'MESHLET_LISTEN',
  clusterDomain: 'MESHLET_CLUSTER_DOMAIN',
  tokenFile: 'MESHLET_TOKEN_FILE',
  kubeconfig: 'MESHLET_KUBECONFIG',
  discoveryServer: 'MESHLET_DISCOVERY_SERVER',
  discoveryTokenFile: 'MESHLET_DISCOVERY_TOKEN_FILE',
  discoveryFallbackMs: 'MESHLET_DISCOVERY_FALLBACK_MS',
} as const;

/**
 * V8 flags for the proxy process. A 1 MiB semi-space (default 16 MiB) keeps the young generation
 * small: with 16 MiB, peak RSS at 1,000 req/s was 97 MiB and after saturation 113-117 MiB; 2 MiB
 * brought them to 79 and 86 MiB; 1 MiB takes about 2 MiB off the peak at 1,000 req/s (60.6 to
 * 58.4-58.7 MiB) and 0-1.3 MiB off the settled idle RSS, with CPU per request unchanged within
 * noise for HTTP/2 and HTTP/1.1 (npm run bench, BENCH_PROXY_NODE_ARGS, two runs each; README
 * "Where the memory goes").
 */
export const PROXY_NODE_OPTIONS = '--max-semi-space-size=1';

/** Where the injector mounts the proxy's own projected service-account token. */
export const PROXY_TOKEN_DIR = '/var/run/secrets/meshlet/serviceaccount';
/** The projected token for the audience meshlet-discovery, beside the proxy's API token (same volume). */
export const DISCOVERY_TOKEN_FILE_NAME = 'discovery-token';
export const DEFAULT_DISCOVERY_TOKEN_FILE = `${PROXY_TOKEN_DIR}/${DISCOVERY_TOKEN_FILE_NAME}`;
