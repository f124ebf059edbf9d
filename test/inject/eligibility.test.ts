import t from 'tap';
import type { V1Pod } from '@kubernetes/client-node';
import { load } from 'js-yaml';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decideInjection, type SkipCode } from '../../src/inject/eligibility.js';
import type { InjectRequest } from '../../src/inject/annotations.js';
import { FIXTURES_DIR, loadPodFixture } from '../helpers/injector-fixtures.js';

const namespaceName = (file: string) => (load(readFileSync(join(FIXTURES_DIR, 'namespaces', file), 'utf8')) as { metadata: { name: string } }).metadata.name;
const MESHED_NS = namespaceName('meshed.yaml');
const KUBE_SYSTEM = namespaceName('kube-system.yaml');

function pod(changes: { hostNetwork?: boolean; injected?: boolean; proxyContainer?: boolean; noContainers?: boolean }): V1Pod {
  const p = loadPodFixture('plain');
  if (changes.hostNetwork) p.spec!.hostNetwork = true;
  if (changes.injected) p.metadata!.annotations = { ...p.metadata!.annotations, 'meshlet.dev/status': 'injected' };
  if (changes.proxyContainer) p.spec!.initContainers = [{ name: 'meshlet-proxy', image: 'x' }];
  if (changes.noContainers) p.spec!.containers = [];
  return p;
}

const table: Array<{ name: string; request: InjectRequest; namespace?: string; pod: Parameters<typeof pod>[0]; reasons: SkipCode[] }> = [
  { name: 'opted-in Pod in a meshed namespace', request: 'enabled', pod: {}, reasons: [] },
  { name: 'no annotation', request: 'absent', pod: {}, reasons: ['not-requested'] },
  { name: 'disabled', request: 'disabled', pod: {}, reasons: ['disabled'] },
  { name: 'already meshed (status annotation)', request: 'enabled', pod: { injected: true }, reasons: ['already-injected'] },
  // Only the status annotation proves meshlet meshed it; injector.test.ts shows such a Pod is denied.
  { name: 'a meshlet-proxy container without the status annotation', request: 'enabled', pod: { proxyContainer: true }, reasons: [] },
  { name: 'hostNetwork', request: 'enabled', pod: { hostNetwork: true }, reasons: ['host-network'] },
  { name: 'kube-system', request: 'enabled', namespace: KUBE_SYSTEM, pod: {}, reasons: ['protected-namespace'] },
  { name: 'kube-public', request: 'enabled', namespace: 'kube-public', pod: {}, reasons: ['protected-namespace'] },
  { name: "meshlet's own namespace", request: 'enabled', namespace: 'meshlet-system', pod: {}, reasons: ['protected-namespace'] },
  { name: 'no containers', request: 'enabled', pod: { noContainers: true }, reasons: ['no-containers'] },
  {
    name: 'every reason at once',
    request: 'disabled',
    namespace: KUBE_SYSTEM,
    pod: { hostNetwork: true, injected: true, noContainers: true },
    reasons: ['disabled', 'already-injected', 'host-network', 'protected-namespace', 'no-containers'],
  },
];

for (const row of table) {
  t.test(`${row.name}: ${row.reasons.length === 0 ? 'meshed' : `skipped (${row.reasons.join(', ')})`}`, async (t) => {
    const decision = decideInjection(pod(row.pod), { namespace: row.namespace ?? MESHED_NS, request: row.request });
    t.equal(decision.inject, row.reasons.length === 0);
    t.same(decision.reasons.map((r) => r.code), row.reasons);
    for (const reason of decision.reasons) t.ok(reason.message.length > 10, `"${reason.message}" explains itself`);
    t.equal(decision.requested, row.request === 'enabled');
  });
}
