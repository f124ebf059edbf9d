import type { V1Container, V1Volume } from '@kubernetes/client-node';
import {
  ADMIN_PATH,
  DISCOVERY_TOKEN_AUDIENCE,
  DISCOVERY_TOKEN_FILE_NAME,
  ENV,
  INIT_CONTAINER_NAME,
  PROXY_ADMIN_PORT,
  PROXY_CONTAINER_NAME,
  PROXY_OUTBOUND_PORT,
  IMAGE_ENTRYPOINT,
  PROXY_ENV,
  PROXY_NODE_FLAGS,
  PROXY_TOKEN_DIR,
  PROXY_UID,
  type LbPolicyName,
  type LogLevel,
} from '../common/contract.js';

/** Everything that shapes the two containers, after flags and per-Pod annotations are merged. */
export interface ProxySettings {
  image: string;
  nativeSidecar: boolean;
  lbPolicy: LbPolicyName;
  /** From meshlet.dev/slow-start-ms; undefined: the proxy's default (no variable set). */
  slowStartMs: number | undefined;
  logLevel: LogLevel;
  resources: ContainerResources;
  outboundPorts: number[];
  skipOutboundPorts: number[];
  skipOutboundCidrs: string[];
  /** `meshlet discovery` (HOST:PORT) the proxy gets its endpoints from; undefined: it watches the API itself. */
  discoveryServer?: string;
}

export interface ContainerResources {
  requests: { cpu: string; memory: string };
  limits: { cpu: string; memory: string };
}

export const DEFAULT_PROXY_RESOURCES: ContainerResources = {
  requests: { cpu: '50m', memory: '64Mi' },
  limits: { cpu: '1', memory: '256Mi' },
};
const INIT_RESOURCES = { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '128Mi' } };

export const PROXY_TOKEN_VOLUME = 'meshlet-token';
/** iptables takes a lock file; the init container's root filesystem is read-only, so it gets a tmpfs. */
export const XTABLES_LOCK_VOLUME = 'meshlet-xtables-lock';
const XTABLES_LOCK_DIR = '/run/xtables';
const ADMIN_PORT_NAME = 'meshlet-admin';
const TOKEN_EXPIRATION_SECONDS = 3607;

/** `meshlet init`: installs the outbound redirect, with NET_ADMIN and NET_RAW and nothing else. */
export function buildInitContainer(settings: ProxySettings): V1Container {
  const args = ['init', '--proxy-uid', String(PROXY_UID), '--proxy-port', String(PROXY_OUTBOUND_PORT)];
  if (settings.outboundPorts.length > 0) args.push('--outbound-ports', settings.outboundPorts.join(','));
  if (settings.skipOutboundPorts.length > 0) args.push('--skip-outbound-ports', settings.skipOutboundPorts.join(','));
  if (settings.skipOutboundCidrs.length > 0) args.push('--skip-outbound-cidrs', settings.skipOutboundCidrs.join(','));
  return {
    name: INIT_CONTAINER_NAME,
    image: settings.image,
    imagePullPolicy: 'IfNotPresent',
    args,
    env: [{ name: 'XTABLES_LOCKFILE', value: `${XTABLES_LOCK_DIR}/xtables.lock` }],
    resources: structuredClone(INIT_RESOURCES),
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
    volumeMounts: [{ name: XTABLES_LOCK_VOLUME, mountPath: XTABLES_LOCK_DIR }],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/** `meshlet proxy`: non-root, no capabilities, its own token, probed on the admin port. */
export function buildProxyContainer(settings: ProxySettings): V1Container {
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } });
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: ADMIN_PORT_NAME, scheme: 'HTTP' },
    periodSeconds,
    timeoutSeconds: 1,
    failureThreshold,
  });
  const container: V1Container = {
    name: PROXY_CONTAINER_NAME,
    image: settings.image,
    imagePullPolicy: 'IfNotPresent',
    command: [IMAGE_ENTRYPOINT[0], ...PROXY_NODE_FLAGS, IMAGE_ENTRYPOINT[1]],
    args: ['proxy'],
    env: [
      fieldEnv(ENV.podName, 'metadata.name'),
      fieldEnv(ENV.podNamespace, 'metadata.namespace'),
      fieldEnv(ENV.podIp, 'status.podIP'),
      fieldEnv(ENV.serviceAccount, 'spec.serviceAccountName'),
      { name: ENV.lbPolicy, value: settings.lbPolicy },
      { name: ENV.logLevel, value: settings.logLevel },
      { name: ENV.tokenFile, value: `${PROXY_TOKEN_DIR}/token` },
      ...Object.entries(PROXY_ENV).map(([name, value]) => ({ name, value })),
    ],
    ports: [{ name: ADMIN_PORT_NAME, containerPort: PROXY_ADMIN_PORT, protocol: 'TCP' }],
    // The startup probe holds back the app containers (native sidecar) until the proxy listens.
    startupProbe: probe(ADMIN_PATH.ready, 1, 120),
    readinessProbe: probe(ADMIN_PATH.ready, 5, 3),
    livenessProbe: probe(ADMIN_PATH.live, 10, 3),
    resources: {
      requests: { ...settings.resources.requests },
      limits: { ...settings.resources.limits },
    },
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [{ name: PROXY_TOKEN_VOLUME, mountPath: PROXY_TOKEN_DIR, readOnly: true }],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (settings.slowStartMs !== undefined) container.env!.push({ name: ENV.slowStartMs, value: String(settings.slowStartMs) });
  if (settings.discoveryServer !== undefined) container.env!.push({ name: ENV.discoveryServer, value: settings.discoveryServer });
  if (settings.nativeSidecar) container.restartPolicy = 'Always';
  return container;
}

/**
 * The proxy's own projected service-account token (plus the cluster CA and the namespace, as in
 * kube-api-access), so discovery works even when the app sets automountServiceAccountToken: false;
 * with a discovery server, also a token for its audience (shown to it instead of the API token).
 */
export function buildTokenVolume(settings: Pick<ProxySettings, 'discoveryServer'>): V1Volume {
  return {
    name: PROXY_TOKEN_VOLUME,
    projected: {
      defaultMode: 0o444,
      sources: [
        { serviceAccountToken: { path: 'token', expirationSeconds: TOKEN_EXPIRATION_SECONDS } },
        ...(settings.discoveryServer !== undefined ? [{ serviceAccountToken: { path: DISCOVERY_TOKEN_FILE_NAME, audience: DISCOVERY_TOKEN_AUDIENCE, expirationSeconds: TOKEN_EXPIRATION_SECONDS } }] : []),
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
}

export function buildXtablesLockVolume(): V1Volume {
  return { name: XTABLES_LOCK_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } };
}
