import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { collectProblems, type CommandSpec, type FlagValue } from '../src/common/config.js';
import {
  ADMIN_PATH,
  DEFAULT_LB_POLICY,
  DEFAULT_LOG_LEVEL,
  ENV,
  LB_POLICIES,
  LB_POLICY,
  LOG_LEVELS,
  MAX_SLOW_START_MS,
  PROXY_ADMIN_PORT,
  PROXY_DEBUG_PORT,
  PROXY_OUTBOUND_PORT,
  PROXY_TOKEN_DIR,
  DEFAULT_DISCOVERY_TOKEN_FILE,
  type LbPolicyName,
  type LogLevel,
} from '../src/common/contract.js';
import { HOST_PORT_ALLOWED, parseHostPort, type HostPort } from '../src/common/values.js';
import { isPolicyName, policyNames } from './balance/policy.js';
import { DEFAULT_SLOW_START_MS, registerBuiltinPolicies } from './balance/setup.js';
import { DEFAULT_DNS_INTERVAL_MS } from './discovery/dns.js';
import { DEFAULT_DISCOVERY_FALLBACK_MS, type DiscoveryOptions } from './discovery/options.js';
import { DETECT_TIMEOUT_MS } from './accept/detect.js';
import { DEFAULT_MAX_APP_CONNECTIONS } from './accept/listener.js';
import { DEFAULT_ENDPOINT_LABEL_CAP } from './admin/metrics.js';
import { DEFAULT_HTTP1_HEADER_TIMEOUT_MS, DEFAULT_HTTP1_IDLE_TIMEOUT_MS } from './protocols/http1.js';
import { DEFAULT_H2_IDLE_TIMEOUT_MS } from './protocols/http2.js';

/** Where the debug endpoint table listens unless told otherwise: loopback only, always. */
export const DEFAULT_DEBUG_ADMIN = `127.0.0.1:${PROXY_DEBUG_PORT}`;
export const DEFAULT_SHUTDOWN_GRACE_SECONDS = 30;
export const DEFAULT_SHUTDOWN_QUIET_MS = 1_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 3_000;
export const DEFAULT_UPSTREAM_PING_MS = 10_000;

export const PROXY_COMMAND: CommandSpec = {
  name: 'proxy',
  summary: 'Run the sidecar proxy: balance every HTTP/2, gRPC and HTTP/1.1 request over the Pods of its target.',
  flags: {
    listen: { type: 'string', placeholder: 'HOST:PORT', env: ENV.listen, description: `Standalone mode: accept connections here (without it: in-Pod mode on 127.0.0.1:${PROXY_OUTBOUND_PORT})` },
    upstream: { type: 'string', placeholder: 'FILE|LIST', env: 'MESHLET_UPSTREAM', description: 'Standalone endpoints: a watched JSON file of "host:port" strings, or an inline host:port,host:port list' },
    'upstream-dns': { type: 'string', placeholder: 'NAME:PORT', env: 'MESHLET_UPSTREAM_DNS', description: "Standalone endpoints: a headless Service's DNS name, re-resolved" },
    services: { type: 'string', placeholder: 'FILE', env: 'MESHLET_SERVICES', description: 'A watched JSON file mapping "name:port" or "vip:port" to endpoint lists' },
    'dns-server': { type: 'string', multiple: true, placeholder: 'IP[:PORT]', env: 'MESHLET_DNS_SERVERS', description: "DNS server for --upstream-dns and the in-Pod DNS fallback (default: the system's resolvers)" },
    'dns-interval-ms': { type: 'string', placeholder: 'MS', env: 'MESHLET_DNS_INTERVAL_MS', default: String(DEFAULT_DNS_INTERVAL_MS), description: 'How often DNS names are resolved again' },
    kubeconfig: { type: 'string', placeholder: 'FILE', env: ENV.kubeconfig, description: 'Discover endpoints from this cluster (outside a Pod)' },
    'token-file': { type: 'string', placeholder: 'FILE', env: ENV.tokenFile, description: `The proxy's projected service-account token (in-cluster mode when it exists; default ${PROXY_TOKEN_DIR}/token)` },
    'discovery-server': { type: 'string', placeholder: 'HOST:PORT', env: ENV.discoveryServer, description: 'Endpoints from `meshlet discovery`, the shared watcher, instead of watching the API from this proxy' },
    'discovery-token-file': { type: 'string', placeholder: 'FILE', env: ENV.discoveryTokenFile, description: `The token (audience meshlet-discovery) shown to --discovery-server (default ${DEFAULT_DISCOVERY_TOKEN_FILE})` },
    'discovery-fallback-ms': {
      type: 'string',
      placeholder: 'MS',
      env: ENV.discoveryFallbackMs,
      default: String(DEFAULT_DISCOVERY_FALLBACK_MS),
      description: 'With --discovery-server: once it has been unreachable this long, watch the API directly until it is back (needs API credentials)',
    },
    namespace: { type: 'string', placeholder: 'NS', env: ENV.podNamespace, default: 'default', description: 'Namespace short Service names resolve in' },
    'cluster-domain': { type: 'string', placeholder: 'DOMAIN', env: ENV.clusterDomain, default: 'cluster.local', description: 'The cluster DNS domain' },
    'lb-policy': { type: 'string', placeholder: 'POLICY', env: ENV.lbPolicy, default: DEFAULT_LB_POLICY, description: LB_POLICIES.join(', ') },
    'slow-start-ms': {
      type: 'string',
      placeholder: 'MS',
      env: ENV.slowStartMs,
      default: String(DEFAULT_SLOW_START_MS),
      description: `${LB_POLICY.peakEwma}: an endpoint that joins a target in use ramps up to its full share over this long (ended early once as fast as its peers); 0 turns slow start off`,
    },
    admin: { type: 'string', placeholder: 'HOST:PORT', env: ENV.admin, default: `0.0.0.0:${PROXY_ADMIN_PORT}`, description: Object.values(ADMIN_PATH).join(', ') },
    'debug-admin': { type: 'string', placeholder: 'HOST:PORT|off', env: 'MESHLET_DEBUG_ADMIN', default: DEFAULT_DEBUG_ADMIN, description: 'The debug endpoint table (/debug/endpoints); loopback addresses only' },
    'opaque-to': { type: 'string', placeholder: 'HOST:PORT', env: 'MESHLET_OPAQUE_TO', description: 'Standalone mode: forward non-HTTP connections here (they have no original destination; without it they are closed)' },
    'log-level': { type: 'string', placeholder: 'LEVEL', env: ENV.logLevel, default: DEFAULT_LOG_LEVEL, description: LOG_LEVELS.join(', ') },
    'detect-timeout-ms': { type: 'string', placeholder: 'MS', env: 'MESHLET_DETECT_TIMEOUT_MS', default: String(DETECT_TIMEOUT_MS), description: 'A client silent this long is treated as opaque (server-speaks-first protocols)' },
    'connect-timeout-ms': { type: 'string', placeholder: 'MS', env: 'MESHLET_CONNECT_TIMEOUT_MS', default: String(DEFAULT_CONNECT_TIMEOUT_MS), description: 'Give up connecting to an endpoint after this long' },
    'upstream-ping-ms': {
      type: 'string',
      placeholder: 'MS',
      env: 'MESHLET_UPSTREAM_PING_MS',
      default: String(DEFAULT_UPSTREAM_PING_MS),
      description: 'PING an HTTP/2 endpoint connection silent this long; one that does not answer within as long again is closed and its requests fail',
    },
    'http1-header-timeout-ms': {
      type: 'string',
      placeholder: 'MS',
      env: 'MESHLET_HTTP1_HEADER_TIMEOUT_MS',
      default: String(DEFAULT_HTTP1_HEADER_TIMEOUT_MS),
      description: 'An HTTP/1.1 request head not complete this long after its first byte is answered 408 and its connection closed',
    },
    'http1-idle-timeout-ms': {
      type: 'string',
      placeholder: 'MS',
      env: 'MESHLET_HTTP1_IDLE_TIMEOUT_MS',
      default: String(DEFAULT_HTTP1_IDLE_TIMEOUT_MS),
      description: "An app's kept-alive HTTP/1.1 connection with no request for this long is closed",
    },
    'max-app-connections': {
      type: 'string',
      placeholder: 'N',
      env: 'MESHLET_MAX_APP_CONNECTIONS',
      default: String(DEFAULT_MAX_APP_CONNECTIONS),
      description: "App connections open at once, at most; one more is closed at accept (counted in meshlet_app_connections_refused_total)",
    },
    'h2-idle-timeout-ms': { type: 'string', placeholder: 'MS', env: 'MESHLET_H2_IDLE_TIMEOUT_MS', default: String(DEFAULT_H2_IDLE_TIMEOUT_MS), description: 'Close an HTTP/2 app connection that has had no open stream for this long (GOAWAY NO_ERROR)' },
    'shutdown-grace-seconds': { type: 'string', placeholder: 'S', env: 'MESHLET_SHUTDOWN_GRACE_SECONDS', default: String(DEFAULT_SHUTDOWN_GRACE_SECONDS), description: "After SIGTERM, keep serving until the app's connections close or this long has passed" },
    'shutdown-quiet-ms': { type: 'string', placeholder: 'MS', env: 'MESHLET_SHUTDOWN_QUIET_MS', default: String(DEFAULT_SHUTDOWN_QUIET_MS), description: 'After SIGTERM, exit once the app has had no open connection for this long (within the grace period)' },
    'max-endpoint-labels': { type: 'string', placeholder: 'N', env: 'MESHLET_MAX_ENDPOINT_LABELS', default: String(DEFAULT_ENDPOINT_LABEL_CAP), description: 'Distinct endpoint label values in metrics; later endpoints fold into "other"' },
  },
  details: `
Standalone: meshlet proxy --listen 127.0.0.1:8080 --upstream endpoints.json
  Every request on the listener is balanced over the endpoints; the file is watched.
In a Pod (what the injector starts): no --listen; redirected connections arrive on 127.0.0.1:${PROXY_OUTBOUND_PORT},
  the target comes from :authority/Host and the original destination, endpoints from the Kubernetes API.
Non-HTTP traffic passes through to its original destination; in standalone mode it has none, so it goes
  to --opaque-to, or the connection is closed.
SIGTERM: the proxy keeps serving (new connections and requests too) until the app has had no open connection
  for --shutdown-quiet-ms, or the grace period ends.`,
};

export interface ProxyConfig {
  mode: 'standalone' | 'pod';
  listen: HostPort;
  admin: HostPort;
  /** undefined: debug table disabled ("off"). */
  debugAdmin: HostPort | undefined;
  lbPolicy: LbPolicyName;
  slowStartMs: number;
  logLevel: LogLevel;
  opaqueTo: HostPort | undefined;
  detectTimeoutMs: number;
  connectTimeoutMs: number;
  upstreamPingMs: number;
  http1HeaderTimeoutMs: number;
  http1IdleTimeoutMs: number;
  h2IdleTimeoutMs: number;
  maxAppConnections: number;
  shutdownGraceMs: number;
  shutdownQuietMs: number;
  maxEndpointLabels: number;
  discovery: DiscoveryOptions;
}

/** HOST:PORT where port 0 is allowed too (the kernel picks one; tests read it from the `listening` log line). */
function parseListenAddress(raw: string): ReturnType<typeof parseHostPort> {
  if (!/:0$/.test(raw)) return parseHostPort(raw);
  const parsed = parseHostPort(raw.replace(/:0$/, ':1'));
  return parsed.ok ? { ok: true, value: { ...parsed.value, port: 0 } } : parsed;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);
const HOST_PORT_ITEM = /^(?:\[[^\]]+\]|[^:[\],\s]+):\d{1,5}$/;

/**
 * Flags and MESHLET_* variables (already merged by parseCommand) → ProxyConfig. Every bad value is
 * reported, once, in one InvalidConfigError.
 */
export function parseProxyConfig(values: Record<string, FlagValue>, fileExists: (path: string) => boolean = existsSync): ProxyConfig {
  registerBuiltinPolicies();
  const text = (name: string): string | undefined => {
    const v = values[name];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  };
  const problems: Array<() => string | undefined> = [];
  const hostPort = (name: string, fallback?: string): HostPort | undefined => {
    const raw = text(name) ?? fallback;
    if (raw === undefined) return undefined;
    const parsed = parseListenAddress(raw);
    if (parsed.ok) return parsed.value;
    problems.push(() => `--${name}: "${raw}" is not valid; allowed: ${HOST_PORT_ALLOWED}`);
    return undefined;
  };
  const integer = (name: string, min: number, max: number): number => {
    const fallback = PROXY_COMMAND.flags[name]?.default;
    const raw = text(name) ?? (typeof fallback === 'string' ? fallback : '');
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (Number.isInteger(n) && n >= min && n <= max) return n;
    problems.push(() => `--${name}: "${raw}" is not valid; allowed: a whole number from ${min} to ${max}`);
    return min;
  };

  const listen = hostPort('listen');
  const mode: ProxyConfig['mode'] = text('listen') !== undefined ? 'standalone' : 'pod';
  const admin = hostPort('admin', `0.0.0.0:${PROXY_ADMIN_PORT}`);
  let debugAdmin: HostPort | undefined;
  const debugRaw = text('debug-admin') ?? DEFAULT_DEBUG_ADMIN;
  if (debugRaw !== 'off') {
    debugAdmin = hostPort('debug-admin', DEFAULT_DEBUG_ADMIN);
    if (debugAdmin && !LOOPBACK_HOSTS.has(debugAdmin.host)) {
      problems.push(() => `--debug-admin: "${debugRaw}" is not valid; allowed: a loopback address (127.0.0.1, ::1 or localhost) with a port, or "off" (the endpoint table reveals internals)`);
    }
  }
  // A bad policy or level is reported below and collectProblems throws: the fallbacks only keep the types.
  const lbPolicyText = text('lb-policy') ?? DEFAULT_LB_POLICY;
  const lbPolicy = isPolicyName(lbPolicyText) ? lbPolicyText : DEFAULT_LB_POLICY;
  if (!isPolicyName(lbPolicyText)) problems.push(() => `--lb-policy: "${lbPolicyText}" is not valid; allowed: ${policyNames().join(', ')}`);
  const slowStartMs = integer('slow-start-ms', 0, MAX_SLOW_START_MS);
  const logLevelText = text('log-level') ?? DEFAULT_LOG_LEVEL;
  const logLevel = LOG_LEVELS.find((level) => level === logLevelText) ?? DEFAULT_LOG_LEVEL;
  if (logLevel !== logLevelText) problems.push(() => `--log-level: "${logLevelText}" is not valid; allowed: ${LOG_LEVELS.join(', ')}`);
  const opaqueTo = hostPort('opaque-to');
  const detectTimeoutMs = integer('detect-timeout-ms', 1, 60_000);
  const connectTimeoutMs = integer('connect-timeout-ms', 1, 120_000);
  const upstreamPingMs = integer('upstream-ping-ms', 100, 600_000);
  const http1HeaderTimeoutMs = integer('http1-header-timeout-ms', 100, 300_000);
  const http1IdleTimeoutMs = integer('http1-idle-timeout-ms', 100, 3_600_000);
  const h2IdleTimeoutMs = integer('h2-idle-timeout-ms', 100, 86_400_000);
  const maxAppConnections = integer('max-app-connections', 1, 1_000_000);
  const shutdownGraceMs = integer('shutdown-grace-seconds', 0, 86_400) * 1000;
  const shutdownQuietMs = integer('shutdown-quiet-ms', 0, 600_000);
  const maxEndpointLabels = integer('max-endpoint-labels', 1, 100_000);

  const discovery: DiscoveryOptions = {
    namespace: text('namespace') ?? 'default',
    clusterDomain: text('cluster-domain') ?? 'cluster.local',
    inCluster: false,
  };
  const upstream = text('upstream');
  if (upstream !== undefined) {
    const items = upstream.split(',').map((s) => s.trim());
    if (!fileExists(upstream) && items.every((item) => HOST_PORT_ITEM.test(item) && parseHostPort(item).ok)) discovery.upstreamList = items;
    else if (fileExists(upstream)) discovery.upstreamFile = upstream;
    else problems.push(() => `--upstream: "${upstream}" is not valid; allowed: an existing JSON file of "host:port" strings, or a comma-separated host:port list (${HOST_PORT_ALLOWED})`);
  }
  const upstreamDns = text('upstream-dns');
  if (upstreamDns !== undefined) {
    if (parseHostPort(upstreamDns).ok) discovery.upstreamDns = upstreamDns;
    else problems.push(() => `--upstream-dns: "${upstreamDns}" is not valid; allowed: NAME:PORT, e.g. web-headless.demo.svc.cluster.local:8080`);
  }
  const dnsServers = values['dns-server'];
  if (Array.isArray(dnsServers) && dnsServers.length > 0) {
    const bad = dnsServers.filter((server) => {
      const hostPort = parseHostPort(server);
      return isIP(server) === 0 && !(hostPort.ok && isIP(hostPort.value.host) !== 0);
    });
    if (bad.length > 0) problems.push(() => `--dns-server: "${bad.join('", "')}" is not valid; allowed: an IP address, optionally with a port (127.0.0.1:5353, [::1]:53)`);
    else discovery.dnsServers = dnsServers;
  }
  discovery.dnsIntervalMs = integer('dns-interval-ms', 100, 3_600_000);
  const fileFlag = (name: string): string | undefined => {
    const path = text(name);
    if (path !== undefined && !fileExists(path)) problems.push(() => `--${name}: "${path}" does not exist; allowed: a path to an existing file`);
    return path;
  };
  const services = fileFlag('services');
  if (services !== undefined) discovery.servicesFile = services;
  const kubeconfig = fileFlag('kubeconfig');
  if (kubeconfig !== undefined) discovery.kubeconfig = kubeconfig;
  const tokenFile = text('token-file') ?? join(PROXY_TOKEN_DIR, 'token');
  if (text('token-file') !== undefined) discovery.tokenFile = tokenFile;
  discovery.inCluster = mode === 'pod' && kubeconfig === undefined && fileExists(tokenFile);
  const discoveryServer = text('discovery-server');
  if (discoveryServer !== undefined) {
    discovery.discoveryServer = hostPort('discovery-server');
    discovery.discoveryTokenFile = fileFlag('discovery-token-file') ?? DEFAULT_DISCOVERY_TOKEN_FILE;
    discovery.discoveryFallbackMs = integer('discovery-fallback-ms', 0, 86_400_000);
  }

  const hasSource = discovery.discoveryServer || discovery.upstreamList || discovery.upstreamFile || discovery.upstreamDns || discovery.servicesFile || discovery.kubeconfig || discovery.inCluster;
  if (mode === 'standalone' && !hasSource) {
    problems.push(() => '--listen given without endpoints; allowed: add --upstream FILE|host:port,..., --upstream-dns NAME:PORT, --services FILE, --kubeconfig FILE or --discovery-server HOST:PORT');
  }
  collectProblems(problems);
  return {
    mode,
    listen: listen ?? { host: '127.0.0.1', port: PROXY_OUTBOUND_PORT },
    admin: admin!,
    debugAdmin,
    lbPolicy,
    slowStartMs,
    logLevel,
    opaqueTo,
    detectTimeoutMs,
    connectTimeoutMs,
    upstreamPingMs,
    http1HeaderTimeoutMs,
    http1IdleTimeoutMs,
    h2IdleTimeoutMs,
    maxAppConnections,
    shutdownGraceMs,
    shutdownQuietMs,
    maxEndpointLabels,
    discovery,
  };
}
