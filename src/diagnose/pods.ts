import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { ANNOTATION, INJECT_ENABLED, NAMESPACE_INJECTION_LABEL, PROXY_CONTAINER_NAME, STATUS_INJECTED } from '../common/contract.js';

/** How `meshlet diagnose` sees one Pod of a client namespace. */
export interface PodMeshState {
  name: string;
  namespace: string;
  /** The sidecar runs in it (annotation `meshlet.dev/status: injected`, or a meshlet-proxy container). */
  meshed: boolean;
  /** It asked to be meshed (opted in, in a namespace with injection enabled) but has no sidecar. */
  missingSidecar: boolean;
  /** Running with a Pod IP: its sidecar's /metrics can be read. */
  running: boolean;
  /** The command that replaces it with a meshed copy. */
  fix?: string;
}

export function hasSidecar(pod: V1Pod): boolean {
  if (pod.metadata?.annotations?.[ANNOTATION.status] === STATUS_INJECTED) return true;
  if (pod.spec?.containers?.some((c) => c.name === PROXY_CONTAINER_NAME)) return true;
  return pod.spec?.initContainers?.some((c) => c.name === PROXY_CONTAINER_NAME && c.restartPolicy === 'Always') ?? false;
}

export function isInjectionEnabled(namespace: V1Namespace | undefined): boolean {
  return namespace?.metadata?.labels?.[NAMESPACE_INJECTION_LABEL] === INJECT_ENABLED;
}

export function asksForSidecar(pod: V1Pod, namespace: V1Namespace | undefined): boolean {
  return isInjectionEnabled(namespace) && pod.metadata?.annotations?.[ANNOTATION.inject] === INJECT_ENABLED && pod.spec?.hostNetwork !== true;
}

export function classifyPod(pod: V1Pod, namespace: V1Namespace | undefined): PodMeshState {
  const name = pod.metadata?.name ?? '(unnamed)';
  const ns = pod.metadata?.namespace ?? namespace?.metadata?.name ?? 'default';
  const meshed = hasSidecar(pod);
  const missingSidecar = !meshed && asksForSidecar(pod, namespace) && pod.metadata?.deletionTimestamp === undefined;
  const running = pod.status?.phase === 'Running' && Boolean(pod.status?.podIP);
  return { name, namespace: ns, meshed, missingSidecar, running, ...(missingSidecar ? { fix: rolloutCommand(pod, ns) } : {}) };
}

/**
 * How to replace a Pod so the webhook sees it again: restart its Deployment / StatefulSet / DaemonSet,
 * or delete a Pod whose controller recreates it. A bare Pod must be recreated by hand.
 */
export function rolloutCommand(pod: V1Pod, namespace: string): string {
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller) ?? pod.metadata?.ownerReferences?.[0];
  const name = pod.metadata?.name ?? '';
  if (!owner) return `recreate it: kubectl get pod ${name} -n ${namespace} -o yaml | kubectl replace --force -f -`;
  if (owner.kind === 'ReplicaSet') {
    const hash = pod.metadata?.labels?.['pod-template-hash'];
    if (hash && owner.name.endsWith(`-${hash}`)) {
      return `kubectl rollout restart deployment/${owner.name.slice(0, -hash.length - 1)} -n ${namespace}`;
    }
    return `kubectl delete pod ${name} -n ${namespace}   # its ReplicaSet ${owner.name} recreates it`;
  }
  if (owner.kind === 'StatefulSet' || owner.kind === 'DaemonSet') {
    return `kubectl rollout restart ${owner.kind.toLowerCase()}/${owner.name} -n ${namespace}`;
  }
  return `kubectl delete pod ${name} -n ${namespace}   # its ${owner.kind} ${owner.name} recreates it`;
}
