import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION, INJECT_DISABLED, INJECT_ENABLED, MESHLET_NAMESPACE } from '../common/contract.js';
import type { InjectRequest } from './annotations.js';

/** Namespaces whose Pods are never meshed, whatever their annotations say. */
export const PROTECTED_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', MESHLET_NAMESPACE];

export type SkipCode = 'not-requested' | 'disabled' | 'already-injected' | 'host-network' | 'protected-namespace' | 'no-containers';

export interface SkipReason {
  code: SkipCode;
  message: string;
}

export interface InjectionDecision {
  inject: boolean;
  /** Every reason the Pod is not meshed (empty when it is). */
  reasons: SkipReason[];
  /** The Pod's owner asked for meshing (meshlet.dev/inject: enabled): its skips deserve a warning. */
  requested: boolean;
}

export interface EligibilityContext {
  /** The namespace the Pod is created in (the review's request.namespace). */
  namespace: string;
  request: InjectRequest;
  protectedNamespaces?: readonly string[];
}

/** Decides whether to mesh a Pod and says every reason not to. Pure: reads only its arguments. */
export function decideInjection(pod: V1Pod, context: EligibilityContext): InjectionDecision {
  const reasons: SkipReason[] = [];
  const protectedNamespaces = context.protectedNamespaces ?? PROTECTED_NAMESPACES;
  if (context.request === 'absent') {
    reasons.push({ code: 'not-requested', message: `annotation ${ANNOTATION.inject} is not "${INJECT_ENABLED}"` });
  }
  if (context.request === INJECT_DISABLED) {
    reasons.push({ code: 'disabled', message: `annotation ${ANNOTATION.inject} is "${INJECT_DISABLED}"` });
  }
  if (isAlreadyInjected(pod)) {
    reasons.push({ code: 'already-injected', message: 'Pod already has the meshlet proxy' });
  }
  if (pod.spec?.hostNetwork === true) {
    reasons.push({ code: 'host-network', message: "hostNetwork Pods are not meshed: the redirect rules would apply to the node's network" });
  }
  if (protectedNamespaces.includes(context.namespace)) {
    reasons.push({ code: 'protected-namespace', message: `Pods in namespace ${context.namespace} are never meshed` });
  }
  if (!Array.isArray(pod.spec?.containers) || pod.spec.containers.length === 0) {
    reasons.push({ code: 'no-containers', message: 'Pod has no containers' });
  }
  return { inject: reasons.length === 0, reasons, requested: context.request === INJECT_ENABLED };
}

/**
 * Meshed by meshlet: only its status annotation says so. A container merely named meshlet-proxy is
 * not proof (the injector denies such a Pod rather than skip it unmeshed).
 */
export function isAlreadyInjected(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[ANNOTATION.status] !== undefined;
}
