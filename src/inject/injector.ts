import type { V1Pod } from '@kubernetes/client-node';
import { INJECT_ENABLED, PROXY_ADMIN_PORT, PROXY_DEBUG_PORT, PROXY_OUTBOUND_PORT } from '../common/contract.js';
import { parseInjectAnnotation, parseOverrides } from './annotations.js';
import { decideInjection, type SkipReason } from './eligibility.js';
import { meshPod } from './mesh-pod.js';
import { findReservedNames, findShapeProblems } from './pod-shape.js';
import { resolveSettings, type InjectorConfig } from './settings.js';

export type InjectionOutcome =
  | { kind: 'injected'; pod: V1Pod }
  | { kind: 'skipped'; reasons: SkipReason[]; requested: boolean }
  | { kind: 'denied'; message: string };

/**
 * The whole injection decision for one Pod, shared by the webhook and `meshlet inject`: skip with
 * every reason, deny a Pod that asked for meshing with bad meshlet.dev/* values, a malformed
 * container list or a container named like ours, or mesh it.
 */
export function injectPod(pod: V1Pod, namespace: string, config: InjectorConfig, version: string): InjectionOutcome {
  const annotations = pod.metadata?.annotations;
  const request = parseInjectAnnotation(annotations);
  if (request instanceof Error) return { kind: 'denied', message: request.message };
  if (request === INJECT_ENABLED) {
    const shapeProblems = findShapeProblems(pod);
    if (shapeProblems.length > 0) return { kind: 'denied', message: shapeProblems.join('; ') };
  }
  const decision = decideInjection(pod, { namespace, request });
  if (!decision.inject) return { kind: 'skipped', reasons: decision.reasons, requested: decision.requested };
  const overrides = parseOverrides(annotations);
  const problems = [...(overrides.ok ? [] : overrides.errors.map((e) => e.message)), ...findReservedNames(pod), ...findPortConflicts(pod)];
  if (!overrides.ok || problems.length > 0) return { kind: 'denied', message: problems.join('; ') };
  return { kind: 'injected', pod: meshPod(pod, resolveSettings(config, overrides.overrides), version) };
}

/** The proxy listens on these ports in the Pod's network namespace; an app container declaring one would collide. */
const RESERVED_PORTS = new Map([
  [PROXY_OUTBOUND_PORT, 'the outbound redirect'],
  [PROXY_ADMIN_PORT, 'the admin server'],
  [PROXY_DEBUG_PORT, 'the debug endpoint table (on 127.0.0.1)'],
]);

function findPortConflicts(pod: V1Pod): string[] {
  const problems: string[] = [];
  for (const container of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const port of container?.ports ?? []) {
      const use = RESERVED_PORTS.get(port?.containerPort);
      if (use) problems.push(`container ${container.name} declares port ${port.containerPort}, which meshlet-proxy uses for ${use}; allowed: any other port`);
    }
  }
  return problems;
}
