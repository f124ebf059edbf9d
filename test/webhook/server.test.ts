import { readdirSync } from 'node:fs';
import t, { type Test } from 'tap';
import { applyPatch } from '../../src/inject/patch.js';
import { KUBE_FIXTURES_DIR, readKubeFixture } from '../helpers/kube-fixtures.js';
import { decodePatch, startTestWebhook } from '../helpers/webhook-kit.js';

await runSuite();

async function runSuite() {
  const kit = await startTestWebhook();
  t.teardown(kit.stop);
  const { client, logs } = kit;
  const recorded = readdirSync(KUBE_FIXTURES_DIR).filter((f) => f.startsWith('admissionreview-') && f.endsWith('.json'));

  const optedIn = (file: string, annotations: Record<string, string> = {}) => {
    const review = readKubeFixture(file);
    const metadata = review['request'].object.metadata;
    metadata.annotations = { ...metadata.annotations, 'meshlet.dev/inject': 'enabled', ...annotations };
    return review;
  };
  const stillAnswers = async (t: Test) => {
    const answer = await client.review(optedIn('admissionreview-pod-create-annotated.json'));
    t.equal(answer.status, 200, 'the server still answers a good review');
    t.equal(answer.body.response.allowed, true);
  };

  t.test('recorded reviews of Pods that did not opt in are allowed unchanged, uid echoed', async (t) => {
    t.ok(recorded.length >= 4, `replaying ${recorded.join(', ')}`);
    for (const file of recorded) {
      const review = readKubeFixture(file);
      const answer = await client.review(review);
      t.equal(answer.status, 200, file);
      t.same(answer.body, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review['request'].uid, allowed: true } }, file);
    }
  });

  t.test('opted-in recorded Pods get a JSONPatch that meshes them', async (t) => {
    for (const file of recorded) {
      const review = optedIn(file);
      const answer = await client.review(review);
      t.equal(answer.status, 200, file);
      const response = answer.body.response;
      t.equal(response.uid, review['request'].uid);
      t.equal(response.allowed, true);
      t.equal(response.patchType, 'JSONPatch');
      const meshed = applyPatch(review['request'].object, decodePatch(response));
      const init = meshed.spec.initContainers.map((c: { name: string }) => c.name);
      t.same(init.slice(0, 2), ['meshlet-init', 'meshlet-proxy'], `${file}: init then native-sidecar proxy first`);
      t.equal(meshed.spec.initContainers[1].restartPolicy, 'Always');
      t.same(
        meshed.spec.containers.map((c: { name: string }) => c.name),
        review['request'].object.spec.containers.map((c: { name: string }) => c.name),
        'app containers unchanged',
      );
      t.equal(meshed.metadata.annotations['meshlet.dev/status'], 'injected');
      t.ok(meshed.spec.volumes.some((v: { name: string }) => v.name === 'meshlet-token'));
      const ownInit = (review['request'].object.spec.initContainers ?? []).map((c: { name: string }) => c.name);
      t.same(init.slice(2), ownInit, `${file}: the Pod's own init containers keep their order, after ours`);
    }
  });

  t.test('the second review of the meshed Pod (reinvocation) gets an empty patch', async (t) => {
    const review = optedIn('admissionreview-pod-create-init-and-multi-container.json');
    const first = await client.review(review);
    review['request'].object = applyPatch(review['request'].object, decodePatch(first.body.response));
    const second = await client.review(review);
    t.equal(second.status, 200);
    t.same(second.body.response, { uid: review['request'].uid, allowed: true });
    t.same(decodePatch(second.body.response), []);
  });

  t.test('one log line per review with namespace, pod (or generateName), decision and duration', async (t) => {
    const before = logs.lines.length;
    await client.review(optedIn('admissionreview-pod-create-generatename-no-annotations.json'));
    await client.review(readKubeFixture('admissionreview-pod-create-annotated.json'));
    const reviews = logs.lines.slice(before).filter((l) => l['msg'] === 'review');
    t.equal(reviews.length, 2);
    t.match(reviews[0], { level: 'info', component: 'webhook', namespace: 'demo', pod: 'web-5d8f9c7b6-', decision: 'inject', durationMs: Number });
    t.match(reviews[1], { namespace: 'demo', pod: 'annotated', decision: 'skip', reasons: [/meshlet.dev\/inject/] });
  });

  t.test('a bad meshlet.dev/* value denies the Pod naming the annotation, value and what is allowed', async (t) => {
    const review = optedIn('admissionreview-pod-create-annotated.json', { 'meshlet.dev/lb-policy': 'fastest', 'meshlet.dev/proxy-cpu-limit': 'lots' });
    const answer = await client.review(review);
    t.equal(answer.status, 200);
    const response = answer.body.response;
    t.equal(response.allowed, false);
    t.equal(response.uid, review['request'].uid);
    t.equal(response.patch, undefined);
    t.match(response.status, { code: 422, reason: 'Invalid' });
    t.match(response.status.message, /meshlet.dev\/lb-policy: "fastest" is not valid; allowed: one of round-robin, least-request, peak-ewma/);
    t.match(response.status.message, /meshlet.dev\/proxy-cpu-limit: "lots" is not valid; allowed: a Kubernetes quantity/);
  });

  const deniedShapes: Array<{ name: string; change: (review: any) => void; message: RegExp }> = [
    {
      name: 'initContainers given as an object',
      change: (r) => (r.request.object.spec.initContainers = { name: 'setup', image: 'busybox:1.36' }),
      message: /^spec\.initContainers: an object is not valid; allowed: a list \(JSON array\) of container objects/,
    },
    {
      name: 'a container named meshlet-proxy but no meshlet.dev/status annotation',
      change: (r) => r.request.object.spec.containers.push({ name: 'meshlet-proxy', image: 'registry.example/proxy:1.0.0' }),
      message: /is named "meshlet-proxy", a name meshlet reserves, but the Pod has no meshlet\.dev\/status annotation/,
    },
    {
      name: 'sloppy and unbounded annotation values',
      change: (r) =>
        Object.assign(r.request.object.metadata.annotations, {
          'meshlet.dev/proxy-image': 'registry.example/meshlet',
          'meshlet.dev/outbound-ports': '80,',
          'meshlet.dev/proxy-memory-limit': '1Mi',
          'meshlet.dev/proxy-cpu-request': '1e100',
        }),
      message: /proxy-image: "registry\.example\/meshlet" is not valid.*proxy-cpu-request: "1e100" is not valid.*proxy-memory-limit: "1Mi" is not valid.*outbound-ports: "80," is not valid/,
    },
  ];

  for (const c of deniedShapes) {
    t.test(`${c.name}: denied with a message naming it, and the server keeps serving`, async (t) => {
      const review = optedIn('admissionreview-pod-create-annotated.json');
      c.change(review);
      const answer = await client.review(review);
      t.equal(answer.status, 200);
      const response = answer.body.response;
      t.equal(response.allowed, false);
      t.equal(response.patch, undefined);
      t.match(response.status, { code: 422, reason: 'Invalid' });
      t.match(response.status.message, c.message);
      await stillAnswers(t);
    });
  }

  t.test('opted-in Pods that are never meshed are allowed with the reason as a warning', async (t) => {
    const hostNetwork = optedIn('admissionreview-pod-create-annotated.json');
    hostNetwork['request'].object.spec.hostNetwork = true;
    const kubeSystem = optedIn('admissionreview-pod-create-annotated.json');
    kubeSystem['request'].namespace = 'kube-system';
    kubeSystem['request'].object.metadata.namespace = 'kube-system';
    for (const [review, warning] of [
      [hostNetwork, /hostNetwork/],
      [kubeSystem, /namespace kube-system are never meshed/],
    ] as const) {
      const answer = await client.review(review);
      t.equal(answer.status, 200);
      t.equal(answer.body.response.allowed, true);
      t.equal(answer.body.response.patch, undefined);
      t.match(answer.body.response.warnings, [warning]);
    }
  });

  const badBodies: Array<{ name: string; body: string | Buffer; headers?: Record<string, string>; status: number; message: RegExp }> = [
    { name: 'non-JSON', body: 'this is not json', status: 400, message: /not valid JSON/ },
    { name: 'empty body', body: '', status: 400, message: /not valid JSON/ },
    { name: 'truncated JSON', body: '{"apiVersion":"admission.k8s.io/v1","kind":"Admiss', status: 400, message: /not valid JSON/ },
    { name: 'a JSON array', body: '[]', status: 400, message: /must be object/ },
    {
      name: 'wrong apiVersion',
      body: JSON.stringify({ ...readKubeFixture('admissionreview-pod-create-annotated.json'), apiVersion: 'admission.k8s.io/v1beta1' }),
      status: 400,
      message: /apiVersion must be equal to constant \("admission.k8s.io\/v1"\)/,
    },
    {
      name: 'wrong kind',
      body: JSON.stringify({ ...readKubeFixture('admissionreview-pod-create-annotated.json'), kind: 'Pod' }),
      status: 400,
      message: /kind must be equal to constant \("AdmissionReview"\)/,
    },
    { name: 'no request', body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), status: 400, message: /required property 'request'/ },
    {
      name: 'no uid',
      body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { kind: 'Pod' }, operation: 'CREATE', object: {} } }),
      status: 400,
      message: /required property 'uid'/,
    },
    {
      name: 'an empty uid',
      body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: '', kind: { kind: 'Pod' }, operation: 'CREATE' } }),
      status: 400,
      message: /uid must NOT have fewer than 1 characters/,
    },
    {
      name: 'an oversized body',
      body: Buffer.alloc(5 * 1024 * 1024, 'a'),
      status: 413,
      message: /larger than 4194304 bytes/,
    },
    { name: 'a non-JSON content type', body: 'apiVersion: v1', headers: { 'content-type': 'application/yaml' }, status: 415, message: /Content-Type/ },
  ];

  for (const bad of badBodies) {
    t.test(`${bad.name}: a clear ${bad.status} and the server keeps serving`, async (t) => {
      const answer = await client.send('POST', '/mutate', bad.body, bad.headers ?? { 'content-type': 'application/json' });
      t.equal(answer.status, bad.status, answer.raw.slice(0, 300));
      t.match(answer.body.message, bad.message);
      await stillAnswers(t);
    });
  }

  const allowedWithWarning: Array<{ name: string; change: (review: any) => void; warning: RegExp }> = [
    {
      name: 'a non-Pod object',
      change: (r) => {
        r.request.kind = { group: 'apps', version: 'v1', kind: 'Deployment' };
        r.request.object = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: {} };
      },
      warning: /only Pods are meshed; Deployment passed unchanged/,
    },
    { name: 'a Pod without containers', change: (r) => (r.request.object.spec.containers = []), warning: /Pod has no containers/ },
    { name: 'a Pod without a spec', change: (r) => delete r.request.object.spec, warning: /Pod has no containers/ },
    { name: 'a review without an object', change: (r) => (r.request.object = null), warning: /carries no Pod object/ },
    { name: 'an UPDATE', change: (r) => (r.request.operation = 'UPDATE'), warning: /only Pod CREATE is meshed/ },
    {
      name: 'a Pod whose shape breaks the injector (volumes is not a list)',
      change: (r) => (r.request.object.spec.volumes = 5),
      warning: /not meshed: the injector failed/,
    },
  ];

  for (const c of allowedWithWarning) {
    t.test(`${c.name}: allowed unchanged with a warning, and the server keeps serving`, async (t) => {
      const review = optedIn('admissionreview-pod-create-annotated.json');
      c.change(review);
      const answer = await client.review(review);
      t.equal(answer.status, 200);
      t.equal(answer.body.response.uid, review['request'].uid);
      t.equal(answer.body.response.allowed, true);
      t.equal(answer.body.response.patch, undefined);
      t.match(answer.body.response.warnings, [c.warning]);
      await stillAnswers(t);
    });
  }

  t.test("the injector's own failure is logged at error level", async (t) => {
    t.ok(logs.lines.some((l) => l['level'] === 'error' && l['msg'] === 'building the patch failed' && l['err']));
  });

  t.test('health endpoints answer over TLS; unknown paths get a 404 naming the real ones', async (t) => {
    t.match(await client.send('GET', '/healthz'), { status: 200, body: { status: 'ok' } });
    t.match(await client.send('GET', '/readyz'), { status: 200, body: { status: 'ready' } });
    t.match(await client.send('GET', '/mutate'), { status: 404, body: { message: /POST \/mutate/ } });
  });
}
