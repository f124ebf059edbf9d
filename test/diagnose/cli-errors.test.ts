import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runMeshlet } from '../../tools/meshlet-process.js';
import { startDiagnoseCluster } from './cluster-fixture.js';
import { connectCluster } from '../../src/diagnose/cluster.js';
import { diagnoseService } from '../../src/diagnose/diagnose.js';
import { runDiagnose } from './run-diagnose.js';

t.test('a Service that does not exist is a clear error (exit 1), a missing SERVICE a usage error (exit 2)', async (t) => {
  const cluster = await startDiagnoseCluster({ web: ['web-0'], clients: [] });
  t.teardown(() => cluster.close());
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-diagnose-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = await cluster.api.writeKubeconfig(dir);
  const missing = await runMeshlet(['diagnose', 'nope', '-n', 'demo', '--kubeconfig', kubeconfig, '--window', '0']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, 'service demo/nope: not found (404)');
  const usage = await runMeshlet(['diagnose', '--kubeconfig', kubeconfig, '--window', 'soon']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, 'SERVICE is required');
  t.match(usage.stderr, '--window: "soon" is not valid; allowed: a duration');
});

t.test('no meshed callers means nothing to judge (exit 4), said in plain words', async (t) => {
  const cluster = await startDiagnoseCluster({ web: ['web-0', 'web-1'], clients: [] });
  t.teardown(() => cluster.close());
  const result = await runDiagnose(cluster);
  t.equal(result.code, 4, result.stderr);
  t.match(result.stdout, 'Verdict: cannot tell: no meshed client Pods found');
});

t.test('missing permissions are named, with the ClusterRole that grants them', async (t) => {
  const cluster = await startDiagnoseCluster({ web: ['web-0'], clients: [] });
  t.teardown(() => cluster.close());
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-diagnose-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  cluster.api.forbid({ plural: 'pods', verb: 'list' });
  const reader = connectCluster(await cluster.api.writeKubeconfig(dir));
  await t.rejects(diagnoseService(reader, { namespace: 'demo', service: 'web', clientNamespaces: ['demo'], windowMs: 0, scrapeTimeoutMs: 1000 }), {
    code: 'MESHLET_CLUSTER_READ',
    message: /^Pods in demo: forbidden \(403\); diagnose needs .* \(ClusterRole meshlet-diagnose in manifests\/observability\/diagnose-rbac\.yaml\)$/,
  });
});
