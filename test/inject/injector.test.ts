import t from 'tap';
import { injectPod } from '../../src/inject/injector.js';
import { loadPodFixture, PINNED_CONFIG, PINNED_VERSION } from '../helpers/injector-fixtures.js';

t.test('an app container declaring a port the proxy needs is denied with the port and the container', async (t) => {
  const pod = loadPodFixture('multi-container');
  pod.spec!.containers[2]!.ports = [{ containerPort: 15090, name: 'metrics' }];
  const outcome = injectPod(pod, 'demo', PINNED_CONFIG, PINNED_VERSION);
  t.same(outcome, {
    kind: 'denied',
    message: 'container metrics declares port 15090, which meshlet-proxy uses for the admin server; allowed: any other port',
  });
});

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
