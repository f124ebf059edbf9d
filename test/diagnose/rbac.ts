import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import type { RecordedRequest } from '../helpers/kube-api.js';
import { REPO_ROOT } from '../../tools/meshlet-process.js';

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export function diagnoseRole(): { rules: PolicyRule[] } {
  return load(readFileSync(join(REPO_ROOT, 'manifests', 'observability', 'diagnose-rbac.yaml'), 'utf8')) as { rules: PolicyRule[] };
}

/** The RBAC attributes of a request as the API server derives them: group, resource(/subresource), verb. */
export function requestAttributes(request: RecordedRequest): { group: string; resource: string; verb: string } | undefined {
  const path = decodeURIComponent(request.path);
  if (request.method === 'POST' && path === '/apis/authorization.k8s.io/v1/subjectaccessreviews') return { group: 'authorization.k8s.io', resource: 'subjectaccessreviews', verb: 'create' };
  const proxy = /^\/api\/v1\/namespaces\/[^/]+\/pods\/[^/]+\/proxy(?:\/.*)?$/.exec(path);
  if (proxy) return { group: '', resource: 'pods/proxy', verb: 'get' };
  const core = /^\/api\/v1(?:\/namespaces\/([^/]+))?(?:\/([a-z]+))?(?:\/([^/]+))?$/.exec(path);
  if (core) {
    if (core[2] === undefined && core[1] !== undefined) return { group: '', resource: 'namespaces', verb: 'get' };
    return { group: '', resource: core[2]!, verb: core[3] ? 'get' : 'list' };
  }
  const named = /^\/apis\/([^/]+)\/[^/]+(?:\/namespaces\/[^/]+)?\/([a-z]+)(?:\/([^/]+))?$/.exec(path);
  if (named) return { group: named[1]!, resource: named[2]!, verb: named[3] ? 'get' : 'list' };
  return undefined;
}

export function isAllowed(rules: readonly PolicyRule[], attrs: { group: string; resource: string; verb: string }): boolean {
  return rules.some((r) => r.apiGroups.includes(attrs.group) && r.resources.includes(attrs.resource) && r.verbs.includes(attrs.verb));
}
