import { collectProblems, type FlagSpec, type ParsedCommand } from '../common/config.js';
import { HOST_PORT_ALLOWED, parseHostPort } from '../common/values.js';
import {
  ANNOTATION,
  DEFAULT_LB_POLICY,
  DEFAULT_LOG_LEVEL,
  DEFAULT_PROXY_IMAGE,
  INIT_CONTAINER_NAME,
  LB_POLICIES,
  LOG_LEVELS,
  PROXY_CONTAINER_NAME,
  type LbPolicyName,
  type LogLevel,
} from '../common/contract.js';
import { parseImage, parseOneOf, type ProxyOverrides } from './annotations.js';
import { parseQuantity, type Quantity } from './quantity.js';
import { DEFAULT_PROXY_RESOURCES, type ProxySettings } from './sidecar.js';

/** Cluster-wide defaults of the injector (flags of `meshlet webhook` and `meshlet inject`). */
export interface InjectorConfig {
  proxyImage: string;
  nativeSidecar: boolean;
  lbPolicy: LbPolicyName;
  proxyLogLevel: LogLevel;
  /** `meshlet discovery` (HOST:PORT) injected proxies use; undefined: each watches the API itself. */
  discoveryServer?: string;
}

export const DEFAULT_INJECTOR_CONFIG: InjectorConfig = {
  proxyImage: DEFAULT_PROXY_IMAGE,
  nativeSidecar: true,
  lbPolicy: DEFAULT_LB_POLICY,
  proxyLogLevel: DEFAULT_LOG_LEVEL,
};

/** The flags both `meshlet webhook` and `meshlet inject` take. */
export const INJECTOR_FLAGS: Record<string, FlagSpec> = {
  'proxy-image': {
    type: 'string',
    placeholder: 'IMAGE',
    description: `Image of ${INIT_CONTAINER_NAME} and ${PROXY_CONTAINER_NAME} (annotation ${ANNOTATION.proxyImage} overrides)`,
    default: DEFAULT_INJECTOR_CONFIG.proxyImage,
    env: 'MESHLET_PROXY_IMAGE',
  },
  'native-sidecar': {
    type: 'boolean',
    description: 'Add the proxy as a native sidecar (init container with restartPolicy Always, Kubernetes 1.29+); --no-native-sidecar or --native-sidecar=false makes it the first regular container',
    default: true,
    env: 'MESHLET_NATIVE_SIDECAR',
  },
  'lb-policy': {
    type: 'string',
    placeholder: 'POLICY',
    description: `Default balancing policy of injected proxies: ${LB_POLICIES.join(', ')}`,
    default: DEFAULT_INJECTOR_CONFIG.lbPolicy,
    env: 'MESHLET_DEFAULT_LB_POLICY',
  },
  'proxy-log-level': {
    type: 'string',
    placeholder: 'LEVEL',
    description: `Default log level of injected proxies: ${LOG_LEVELS.join(', ')}`,
    default: DEFAULT_INJECTOR_CONFIG.proxyLogLevel,
    env: 'MESHLET_DEFAULT_PROXY_LOG_LEVEL',
  },
  'discovery-server': {
    type: 'string',
    placeholder: 'HOST:PORT',
    description: 'Injected proxies get their endpoints from this `meshlet discovery` (e.g. meshlet-discovery.meshlet-system.svc:15010) instead of watching the API each',
    env: 'MESHLET_PROXY_DISCOVERY_SERVER',
  },
};

/** Validates the injector flags, reporting every bad one at once. */
export function parseInjectorConfig(parsed: ParsedCommand, moreChecks: ReadonlyArray<() => string | undefined> = []): InjectorConfig {
  const v = parsed.values;
  const config = { ...DEFAULT_INJECTOR_CONFIG, nativeSidecar: v['native-sidecar'] !== false };
  collectProblems([
    ...moreChecks,
    () => {
      const r = parseImage(String(v['proxy-image']));
      if (!r.ok) return `--proxy-image: "${v['proxy-image']}" is not valid; allowed: ${r.allowed}`;
      config.proxyImage = r.value;
      return undefined;
    },
    () => {
      const r = parseOneOf(String(v['lb-policy']), LB_POLICIES);
      if (!r.ok) return `--lb-policy: "${v['lb-policy']}" is not valid; allowed: ${r.allowed}`;
      config.lbPolicy = r.value;
      return undefined;
    },
    () => {
      const r = parseOneOf(String(v['proxy-log-level']), LOG_LEVELS);
      if (!r.ok) return `--proxy-log-level: "${v['proxy-log-level']}" is not valid; allowed: ${r.allowed}`;
      config.proxyLogLevel = r.value;
      return undefined;
    },
    () => {
      const raw = v['discovery-server'];
      if (typeof raw !== 'string' || raw.trim() === '') return undefined;
      if (!parseHostPort(raw).ok) return `--discovery-server: "${raw}" is not valid; allowed: ${HOST_PORT_ALLOWED}`;
      config.discoveryServer = raw.trim();
      return undefined;
    },
  ]);
  return config;
}

/** Cluster defaults overlaid with one Pod's annotations. */
export function resolveSettings(config: InjectorConfig, overrides: ProxyOverrides): ProxySettings {
  const defaults = DEFAULT_PROXY_RESOURCES;
  const cpu = pairRequestAndLimit(defaults.requests.cpu, defaults.limits.cpu ?? defaults.requests.cpu, overrides.cpuRequest, overrides.cpuLimit);
  const memory = pairRequestAndLimit(defaults.requests.memory, defaults.limits.memory, overrides.memoryRequest, overrides.memoryLimit);
  return {
    image: overrides.proxyImage ?? config.proxyImage,
    nativeSidecar: overrides.nativeSidecar ?? config.nativeSidecar,
    lbPolicy: overrides.lbPolicy ?? config.lbPolicy,
    slowStartMs: overrides.slowStartMs,
    logLevel: overrides.logLevel ?? config.proxyLogLevel,
    resources: {
      requests: { cpu: cpu.request, memory: memory.request },
      limits: { cpu: cpu.limit, memory: memory.limit },
    },
    outboundPorts: overrides.outboundPorts ?? [],
    skipOutboundPorts: overrides.skipOutboundPorts ?? [],
    skipOutboundCidrs: overrides.skipOutboundCidrs ?? [],
    ...(config.discoveryServer !== undefined ? { discoveryServer: config.discoveryServer } : {}),
  };
}

/**
 * Kubernetes rejects a request above its limit. When only one side is overridden, the default on
 * the other side follows it (a small limit lowers the default request; a big request raises the
 * default limit); when both are overridden, annotations.ts has already checked them.
 */
function pairRequestAndLimit(defaultRequest: string, defaultLimit: string, request?: Quantity, limit?: Quantity): { request: string; limit: string } {
  const value = (text: string) => (parseQuantity(text) as { ok: true; value: Quantity }).value.value;
  if (request && !limit) return { request: request.text, limit: request.value > value(defaultLimit) ? request.text : defaultLimit };
  if (limit && !request) return { request: limit.value < value(defaultRequest) ? limit.text : defaultRequest, limit: limit.text };
  return { request: request?.text ?? defaultRequest, limit: limit?.text ?? defaultLimit };
}
