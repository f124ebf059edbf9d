import { AuthorizationV1Api, CoreV1Api, DiscoveryV1Api, KubeConfig, type V1EndpointSlice, type V1Namespace, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { ADMIN_PATH, PROXY_ADMIN_PORT } from '../common/contract.js';
import { MeshletError } from '../common/errors.js';

/** How long one API request may take before diagnose gives up on it. */
const API_TIMEOUT_MS = 20_000;

/** The API server could not tell us something diagnose needs (not found, forbidden, unreachable). */
export class ClusterReadError extends MeshletError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MESHLET_CLUSTER_READ', message, options);
  }
}

/** Everything `meshlet diagnose` reads from the Kubernetes API, through @kubernetes/client-node. */
export interface ClusterReader {
  /** The namespace of the kubeconfig's current context ("default" when it names none). */
  readonly defaultNamespace: string;
  readonly server: string;
  service(namespace: string, name: string): Promise<V1Service>;
  endpointSlices(namespace: string, service: string): Promise<V1EndpointSlice[]>;
  namespace(name: string): Promise<V1Namespace | undefined>;
  pods(namespace: string): Promise<V1Pod[]>;
  /**
   * Whether a service account may do `access` (a SubjectAccessReview); undefined when diagnose itself
   * may not ask (no create on subjectaccessreviews) or the API cannot answer.
   */
  canAccess(serviceAccount: { namespace: string; name: string }, access: ResourceAccess): Promise<boolean | undefined>;
  /** The sidecar's Prometheus text, through the API server's pod proxy to its admin port. */
  sidecarMetrics(namespace: string, pod: string, timeoutMs: number): Promise<string>;
}

/** One RBAC question: may the subject `verb` `resource` (in API `group`) in `namespace` (cluster-wide when absent)? */
export interface ResourceAccess {
  verb: string;
  group: string;
  resource: string;
  namespace?: string;
}

export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (err) {
    throw new ClusterReadError(`cannot read kubeconfig ${file ?? '(default: $KUBECONFIG, ~/.kube/config or in-cluster)'}: ${(err as Error).message}`, { cause: err });
  }
  if (!kc.getCurrentCluster()) {
    throw new ClusterReadError(`kubeconfig ${file ?? '(default)'} has no current cluster; pass --kubeconfig FILE or set a context`);
  }
  // A plain-HTTP server (e.g. `kubectl proxy` on 127.0.0.1:8001) has no TLS to verify; the client
  // library refuses http:// unless told so, where kubectl does not.
  kc.clusters = kc.clusters.map((c) => (c.server.startsWith('http:') && !c.skipTLSVerify ? { ...c, skipTLSVerify: true } : c));
  return kc;
}

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

function explain(what: string, err: unknown, server: string): ClusterReadError {
  const status = statusOf(err);
  if (status === 401) return new ClusterReadError(`${what}: the API server at ${server} did not accept our credentials (401)`, { cause: err });
  if (status === 403) return new ClusterReadError(`${what}: forbidden (403); diagnose needs get on services, namespaces and pods/proxy, list on pods and endpointslices, create on subjectaccessreviews (ClusterRole meshlet-diagnose in manifests/observability/diagnose-rbac.yaml)`, { cause: err });
  if (status === 404) return new ClusterReadError(`${what}: not found (404)`, { cause: err });
  const detail = status !== undefined ? `HTTP ${status}` : (err as Error).message;
  return new ClusterReadError(`${what}: ${detail} (API server ${server})`, { cause: err });
}

export function connectCluster(kubeconfig: string | undefined): ClusterReader {
  const kc = loadKubeConfig(kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const authorization = kc.makeApiClient(AuthorizationV1Api);
  const server = kc.getCurrentCluster()!.server;
  const context = kc.getContextObject(kc.getCurrentContext());
  const call = async <T>(what: string, request: () => Promise<T>, timeoutMs = API_TIMEOUT_MS): Promise<T> => {
    try {
      return await withTimeout(request(), timeoutMs);
    } catch (err) {
      throw explain(what, err, server);
    }
  };
  return {
    defaultNamespace: context?.namespace ?? 'default',
    server,
    service: (namespace, name) => call(`service ${namespace}/${name}`, () => core.readNamespacedService({ name, namespace })),
    endpointSlices: async (namespace, service) =>
      (
        await call(`EndpointSlices of ${namespace}/${service}`, () =>
          discovery.listNamespacedEndpointSlice({ namespace, labelSelector: `kubernetes.io/service-name=${service}` }),
        )
      ).items,
    namespace: async (name) => {
      try {
        return await withTimeout(core.readNamespace({ name }), API_TIMEOUT_MS);
      } catch (err) {
        if (statusOf(err) === 404 || statusOf(err) === 403) return undefined;
        throw explain(`namespace ${name}`, err, server);
      }
    },
    pods: async (namespace) => (await call(`Pods in ${namespace}`, () => core.listNamespacedPod({ namespace }))).items,
    canAccess: async (serviceAccount, access) => {
      const { namespace, name } = serviceAccount;
      try {
        const review = await withTimeout(
          authorization.createSubjectAccessReview({
            body: {
              apiVersion: 'authorization.k8s.io/v1',
              kind: 'SubjectAccessReview',
              spec: {
                user: `system:serviceaccount:${namespace}:${name}`,
                groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
                resourceAttributes: { verb: access.verb, group: access.group, resource: access.resource, ...(access.namespace ? { namespace: access.namespace } : {}) },
              },
            },
          }),
          API_TIMEOUT_MS,
        );
        return review.status?.allowed === true;
      } catch {
        return undefined;
      }
    },
    // The client joins `path` after ".../proxy/", so it goes without its leading slash.
    sidecarMetrics: (namespace, pod, timeoutMs) =>
      call(`metrics of ${namespace}/${pod}`, () => core.connectGetNamespacedPodProxyWithPath({ name: `${pod}:${PROXY_ADMIN_PORT}`, namespace, path: ADMIN_PATH.metrics.slice(1) }), timeoutMs),
  };
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
