import t from 'tap';
import { podObject, startDiagnoseCluster } from './cluster-fixture.js';
import { runDiagnose, textReport, type JsonDiagnosis } from './run-diagnose.js';

t.test('one pod taking most requests, a new pod getting none and an unmeshed caller are all reported (exit 3)', async (t) => {
  const cluster = await startDiagnoseCluster({
    web: ['web-0', 'web-1', 'web-2', 'web-3'],
    clients: [
      // This sidecar only ever learnt of web-0; neither knows web-3, the newest Pod.
      { name: 'client-6c4b9-aaaaa', upstreams: ['web-0'] },
      { name: 'client-6c4b9-bbbbb', upstreams: ['web-0', 'web-1', 'web-2'] },
    ],
    unmeshed: ['legacy-7d9f-xk2p1'],
  });
  t.teardown(() => cluster.close());
  // A meshed Pod whose sidecar does not answer: reported, and the others are still judged.
  cluster.api.upsert('pods', podObject('client-6c4b9-ccccc', { app: 'client' }, { annotations: { 'meshlet.dev/status': 'injected' }, createdMinutes: 5, containers: ['app', 'meshlet-proxy'] }));

  const json = await runDiagnose(cluster, ['--json']);
  t.equal(json.code, 3, `exit code; stderr: ${json.stderr}`);
  const d = JSON.parse(json.stdout) as JsonDiagnosis;
  t.equal(d.verdict, 'imbalanced');
  t.match(d.summary, /^imbalanced: pod web-0 takes \d+% \(fair share 25%\); new pods receiving nothing: web-3$/);
  const web0 = d.analysis.endpoints.find((e) => e.pod === 'web-0')!;
  t.ok(web0.share > 0.5, `web-0 share ${web0.share.toFixed(2)}`);
  t.equal(d.analysis.endpoints.find((e) => e.pod === 'web-3')!.requests, 0);
  t.same(d.clients.missingSidecar, [{ pod: 'legacy-7d9f-xk2p1', namespace: 'demo', fix: 'kubectl rollout restart deployment/legacy -n demo' }]);

  const text = await textReport(cluster);
  t.match(text, 'Pod demo/legacy-7d9f-xk2p1 asked to be meshed but runs without the sidecar');
  t.match(text, 'fix: kubectl rollout restart deployment/legacy -n demo');
  t.match(text, /Verdict: imbalanced: pod web-0 takes/);
  t.match(text, /! could not read the sidecar metrics of client-6c4b9-ccccc: metrics of demo\/client-6c4b9-ccccc: HTTP 503/);
  t.match(text, 'Clients in demo: 3 meshed Pods, 2 read, 2 sent requests to web');
});
