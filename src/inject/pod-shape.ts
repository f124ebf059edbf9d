import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION, INIT_CONTAINER_NAME, PROXY_CONTAINER_NAME } from '../common/contract.js';

const CONTAINER_LISTS = ['initContainers', 'containers'] as const;
const CONTAINERS_ALLOWED = 'a list (JSON array) of container objects, each with a name';
const PORTS_ALLOWED = 'a list (JSON array) of port objects';

/**
 * What the injector reads of a Pod, checked before it reads it: the API server sends whatever the
 * client wrote, and a Pod it would later reject for its shape must be denied here with the field
 * named, not admitted unmeshed because the injector tripped over it.
 */
export function findShapeProblems(pod: V1Pod): string[] {
  const problems: string[] = [];
  const spec = pod.spec as unknown;
  if (spec === undefined) return problems;
  if (!isPlainObject(spec)) return [`spec: ${describe(spec)} is not valid; allowed: a Pod spec object`];
  for (const field of CONTAINER_LISTS) {
    const list = spec[field];
    if (list === undefined) continue;
    if (!Array.isArray(list)) {
      problems.push(`spec.${field}: ${describe(list)} is not valid; allowed: ${CONTAINERS_ALLOWED}`);
      continue;
    }
    list.forEach((container: unknown, i) => {
      const where = `spec.${field}[${i}]`;
      if (!isPlainObject(container) || typeof container['name'] !== 'string' || container['name'] === '') {
        problems.push(`${where}: ${describe(container)} is not valid; allowed: a container object with a name`);
      } else if (container['ports'] !== undefined && !Array.isArray(container['ports'])) {
        problems.push(`${where}.ports: ${describe(container['ports'])} is not valid; allowed: ${PORTS_ALLOWED}`);
      }
    });
  }
  return problems;
}

/**
 * Containers named like the ones meshlet adds, on a Pod meshlet has not meshed (no status
 * annotation): meshing would give the Pod two containers of one name, and skipping it would leave
 * a Pod that asked for the mesh running without it. Either way its owner must rename them.
 */
export function findReservedNames(pod: V1Pod): string[] {
  const problems: string[] = [];
  for (const field of CONTAINER_LISTS) {
    (pod.spec?.[field] ?? []).forEach((container, i) => {
      if (container.name !== PROXY_CONTAINER_NAME && container.name !== INIT_CONTAINER_NAME) return;
      problems.push(
        `spec.${field}[${i}] is named "${container.name}", a name meshlet reserves, but the Pod has no ${ANNOTATION.status} annotation; allowed: any other container name (meshlet adds ${INIT_CONTAINER_NAME} and ${PROXY_CONTAINER_NAME} itself)`,
      );
    });
  }
  return problems;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** How a wrong JSON value is named in a message: its kind, and the value when it is short. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return `${typeof value === 'string' ? 'a string' : `a ${typeof value}`} ${text.length <= 40 ? text : `${text.slice(0, 37)}...`}`;
}
