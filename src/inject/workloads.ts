import type { V1Pod, V1PodTemplateSpec } from '@kubernetes/client-node';

/** Kinds whose Pods `meshlet inject` can mesh, and where each keeps its Pod template. */
export const WORKLOAD_KINDS = ['Pod', 'Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

export interface KubernetesDocument {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; [key: string]: unknown };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

export function isWorkloadKind(kind: unknown): kind is WorkloadKind {
  return typeof kind === 'string' && (WORKLOAD_KINDS as readonly string[]).includes(kind);
}

/** The path from the document's root to its Pod template ([] for a Pod itself). */
export function podTemplatePath(kind: WorkloadKind): string[] {
  switch (kind) {
    case 'Pod':
      return [];
    case 'CronJob':
      return ['spec', 'jobTemplate', 'spec', 'template'];
    default:
      return ['spec', 'template'];
  }
}

/** The Pod (or Pod template, which has the same metadata + spec shape) inside a workload, if present. */
export function getPodTemplate(document: KubernetesDocument, kind: WorkloadKind): V1Pod | V1PodTemplateSpec | undefined {
  let node: unknown = document;
  for (const key of podTemplatePath(kind)) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node !== null && typeof node === 'object' ? (node as V1Pod) : undefined;
}

/** A copy of the document with its Pod template replaced. */
export function withPodTemplate(document: KubernetesDocument, kind: WorkloadKind, template: V1Pod | V1PodTemplateSpec): KubernetesDocument {
  const path = podTemplatePath(kind);
  if (path.length === 0) return template as KubernetesDocument;
  const copy = structuredClone(document);
  let node = copy as Record<string, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>;
  node[path.at(-1)!] = template;
  return copy;
}
