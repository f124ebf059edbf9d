import t from 'tap';
import type { V1Pod } from '@kubernetes/client-node';
import { injectPod } from '../../src/inject/injector.js';
import { loadPodFixture, PINNED_CONFIG, PINNED_VERSION } from '../helpers/injector-fixtures.js';

for (const [port, use] of [
  [15001, 'the outbound redirect'],
  [15090, 'the admin server'],
  [15091, 'the debug endpoint table (on 127.0.0.1)'],
] as const) {
  t.test(`an app container declaring port ${port}, which the proxy listens on, is denied with the port and the container`, async (t) => {
    const pod = loadPodFixture('multi-container');
    pod.spec!.containers[2]!.ports = [{ containerPort: port, name: 'metrics' }];
    const outcome = injectPod(pod, 'demo', PINNED_CONFIG, PINNED_VERSION);
    t.same(outcome, {
      kind: 'denied',
      message: `container metrics declares port ${port}, which meshlet-proxy uses for ${use}; allowed: any other port`,
    });
  });
}

t.test('a mistyped meshlet.dev/inject value is denied, not silently ignored', async (t) => {
  const pod = loadPodFixture('plain');
  pod.metadata!.annotations!['meshlet.dev/inject'] = 'true';
  t.same(injectPod(pod, 'demo', PINNED_CONFIG, PINNED_VERSION), {
    kind: 'denied',
    message: 'meshlet.dev/inject: "true" is not valid; allowed: "enabled" or "disabled"',
  });
});

t.test('a Pod that is never meshed is skipped even when its overrides are bad', async (t) => {
  const pod = loadPodFixture('plain');
  pod.metadata!.annotations!['meshlet.dev/lb-policy'] = 'fastest';
  const outcome = injectPod(pod, 'kube-system', PINNED_CONFIG, PINNED_VERSION);
  t.equal(outcome.kind, 'skipped');
});

t.test('the flag default for native sidecars is overridden per Pod in both directions', async (t) => {
  const on = loadPodFixture('plain');
  on.metadata!.annotations!['meshlet.dev/native-sidecar'] = 'true';
  const outcome = injectPod(on, 'demo', { ...PINNED_CONFIG, nativeSidecar: false }, PINNED_VERSION);
  if (outcome.kind !== 'injected') return t.fail(outcome.kind);
  t.same(outcome.pod.spec!.initContainers!.map((c) => c.name), ['meshlet-init', 'meshlet-proxy']);
  t.same(outcome.pod.spec!.containers.map((c) => c.name), ['app']);
});

const reservedNames: Array<{ name: string; change: (pod: V1Pod) => void; message: RegExp }> = [
  {
    name: 'an initContainer named meshlet-proxy',
    change: (pod) => (pod.spec!.initContainers = [{ name: 'meshlet-proxy', image: 'registry.example/proxy:1.0.0' }]),
    message: /^spec\.initContainers\[0\] is named "meshlet-proxy", a name meshlet reserves, but the Pod has no meshlet\.dev\/status annotation; allowed: any other container name/,
  },
  {
    name: 'a container named meshlet-init',
    change: (pod) => pod.spec!.containers.push({ name: 'meshlet-init', image: 'registry.example/init:1.0.0' }),
    message: /^spec\.containers\[1\] is named "meshlet-init"/,
  },
];

for (const c of reservedNames) {
  t.test(`an opted-in Pod with ${c.name} but no status annotation is denied naming the container`, async (t) => {
    const pod = loadPodFixture('plain');
    c.change(pod);
    const outcome = injectPod(pod, 'demo', PINNED_CONFIG, PINNED_VERSION);
    t.equal(outcome.kind, 'denied');
    if (outcome.kind === 'denied') t.match(outcome.message, c.message);
  });
}

t.test('a Pod carrying the status annotation is skipped as meshed, whatever its containers are called', async (t) => {
  const pod = loadPodFixture('plain');
  pod.metadata!.annotations!['meshlet.dev/status'] = 'injected';
  pod.spec!.initContainers = [{ name: 'meshlet-proxy', image: 'ghcr.io/meshlet/meshlet:0.1.0' }];
  const outcome = injectPod(pod, 'demo', PINNED_CONFIG, PINNED_VERSION);
  t.equal(outcome.kind, 'skipped');
  if (outcome.kind === 'skipped') t.same(outcome.reasons.map((r) => r.code), ['already-injected']);
});

const badShapes: Array<{ name: string; change: (spec: Record<string, unknown>) => void; message: string }> = [
  {
    name: 'initContainers given as an object',
    change: (spec) => (spec['initContainers'] = { name: 'setup', image: 'busybox:1.36' }),
    message: 'spec.initContainers: an object is not valid; allowed: a list (JSON array) of container objects, each with a name',
  },
  {
    name: 'containers given as an object',
    change: (spec) => (spec['containers'] = { app: { image: 'registry.example/app:1.0.0' } }),
    message: 'spec.containers: an object is not valid; allowed: a list (JSON array) of container objects, each with a name',
  },
  {
    name: 'containers given as a string',
    change: (spec) => (spec['containers'] = 'app'),
    message: 'spec.containers: a string "app" is not valid; allowed: a list (JSON array) of container objects, each with a name',
  },
  {
    name: 'a container without a name',
    change: (spec) => (spec['containers'] = [{ image: 'registry.example/app:1.0.0' }]),
    message: 'spec.containers[0]: an object is not valid; allowed: a container object with a name',
  },
  {
    name: 'ports given as an object',
    change: (spec) => ((spec['containers'] as Array<Record<string, unknown>>)[0]!['ports'] = { containerPort: 8080 }),
    message: 'spec.containers[0].ports: an object is not valid; allowed: a list (JSON array) of port objects',
  },
];

for (const c of badShapes) {
  t.test(`an opted-in Pod with ${c.name} is denied with a schema message naming the field`, async (t) => {
    const pod = loadPodFixture('plain');
    c.change(pod.spec as unknown as Record<string, unknown>);
    t.same(injectPod(pod, 'demo', PINNED_CONFIG, PINNED_VERSION), { kind: 'denied', message: c.message });
  });
}

t.test('a Pod that did not opt in is skipped, not judged on its shape', async (t) => {
  const pod = loadPodFixture('plain');
  delete pod.metadata!.annotations!['meshlet.dev/inject'];
  (pod.spec as unknown as Record<string, unknown>)['initContainers'] = { name: 'setup' };
  t.equal(injectPod(pod, 'demo', PINNED_CONFIG, PINNED_VERSION).kind, 'skipped');
});
