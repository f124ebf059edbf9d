import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import t from 'tap';
import { classifyPod, rolloutCommand } from '../../src/diagnose/pods.js';

const labelled: V1Namespace = { metadata: { name: 'shop', labels: { 'meshlet.dev/injection': 'enabled' } } };
const unlabelled: V1Namespace = { metadata: { name: 'shop' } };
const running = { phase: 'Running', podIP: '198.18.0.7' };

function pod(extra: { annotations?: Record<string, string>; containers?: string[]; nativeSidecar?: boolean; owner?: { kind: string; name: string }; hash?: string; hostNetwork?: boolean }): V1Pod {
  return {
    metadata: {
      name: 'cart-6c4b9-x1',
      namespace: 'shop',
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
      ...(extra.hash ? { labels: { 'pod-template-hash': extra.hash } } : {}),
      ...(extra.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: extra.owner.kind, name: extra.owner.name, uid: 'u', controller: true }] } : {}),
    },
    spec: {
      containers: (extra.containers ?? ['app']).map((name) => ({ name })),
      ...(extra.nativeSidecar ? { initContainers: [{ name: 'meshlet-init' }, { name: 'meshlet-proxy', restartPolicy: 'Always' }] } : {}),
      ...(extra.hostNetwork ? { hostNetwork: true } : {}),
    },
    status: running,
  };
}

const cases = [
  { name: 'status annotation says injected', pod: pod({ annotations: { 'meshlet.dev/status': 'injected' } }), ns: labelled, meshed: true, missing: false },
  { name: 'a meshlet-proxy container', pod: pod({ containers: ['app', 'meshlet-proxy'] }), ns: unlabelled, meshed: true, missing: false },
  { name: 'a native sidecar (initContainer, restartPolicy Always)', pod: pod({ nativeSidecar: true }), ns: labelled, meshed: true, missing: false },
  { name: 'opted in, namespace enabled, no sidecar', pod: pod({ annotations: { 'meshlet.dev/inject': 'enabled' } }), ns: labelled, meshed: false, missing: true },
  { name: 'opted in but namespace not enabled', pod: pod({ annotations: { 'meshlet.dev/inject': 'enabled' } }), ns: unlabelled, meshed: false, missing: false },
  { name: 'opted out', pod: pod({ annotations: { 'meshlet.dev/inject': 'disabled' } }), ns: labelled, meshed: false, missing: false },
  { name: 'hostNetwork Pods are never meshed', pod: pod({ annotations: { 'meshlet.dev/inject': 'enabled' }, hostNetwork: true }), ns: labelled, meshed: false, missing: false },
];

for (const c of cases) {
  t.test(`${c.name}: meshed=${c.meshed}, missing sidecar=${c.missing}`, async (t) => {
    const state = classifyPod(c.pod, c.ns);
    t.equal(state.meshed, c.meshed);
    t.equal(state.missingSidecar, c.missing);
    t.equal(state.running, true);
  });
}

t.test('the fix names the workload to roll', async (t) => {
  t.equal(rolloutCommand(pod({ owner: { kind: 'ReplicaSet', name: 'cart-6c4b9' }, hash: '6c4b9' }), 'shop'), 'kubectl rollout restart deployment/cart -n shop');
  t.equal(rolloutCommand(pod({ owner: { kind: 'StatefulSet', name: 'db' } }), 'shop'), 'kubectl rollout restart statefulset/db -n shop');
  t.equal(rolloutCommand(pod({ owner: { kind: 'DaemonSet', name: 'agent' } }), 'shop'), 'kubectl rollout restart daemonset/agent -n shop');
  t.match(rolloutCommand(pod({ owner: { kind: 'Job', name: 'batch' } }), 'shop'), 'kubectl delete pod cart-6c4b9-x1 -n shop   # its Job batch recreates it');
  t.match(rolloutCommand(pod({}), 'shop'), 'kubectl replace --force');
});
