import t from 'tap';
import { startDiagnoseCluster } from './cluster-fixture.js';
import { diagnoseRole, isAllowed, requestAttributes } from './rbac.js';
import { runDiagnose, textReport, type JsonDiagnosis } from './run-diagnose.js';

t.test('a Service whose meshed clients spread requests evenly is balanced (exit 0)', async (t) => {
  const cluster = await startDiagnoseCluster({
    web: ['web-0', 'web-1', 'web-2'],
    clients: [
      { name: 'client-6c4b9-aaaaa', upstreams: ['web-0', 'web-1', 'web-2'] },
      { name: 'client-6c4b9-bbbbb', upstreams: ['web-0', 'web-1', 'web-2'] },
    ],
  });
  t.teardown(() => cluster.close());

  const json = await runDiagnose(cluster, ['--json']);
  t.equal(json.code, 0, `exit code; stderr: ${json.stderr}`);
  const d = JSON.parse(json.stdout) as JsonDiagnosis;
  t.equal(d.verdict, 'balanced', d.summary);
  t.same(d.endpoints, { ready: 3, notReady: 0, terminating: 0, slices: 3 });
  t.same(d.clients.callers, ['client-6c4b9-aaaaa', 'client-6c4b9-bbbbb']);
  t.ok(d.analysis.totalRequests > 50, `requests in the window: ${d.analysis.totalRequests}`);
  for (const e of d.analysis.endpoints) t.ok(Math.abs(e.share - 1 / 3) < 0.1, `${e.pod} share ${e.share.toFixed(2)} within ±10% of 33%`);
  t.ok(d.analysis.cv < 0.3, `cv ${d.analysis.cv}`);

  const text = await textReport(cluster);
  t.match(text, 'Service demo/web: ClusterIP 10.96.0.111, ports 8080/TCP');
  t.match(text, 'Endpoints: 3 ready, 0 not ready, 0 terminating (3 EndpointSlices)');
  t.match(text, 'Clients in demo: 2 meshed Pods, 2 read, 2 sent requests to web (client-6c4b9-aaaaa, client-6c4b9-bbbbb)');
  t.match(text, /^ {2}ENDPOINT\s+POD\s+STATE\s+REQUESTS\s+SHARE\s+MEAN LATENCY$/m);
  t.match(text, /^ {2}127\.0\.0\.1:\d+\s+web-0\s+ready\s+\d+\s+3\d%\s+#+\.*\s+[\d.]+ ms$/m);
  t.match(text, /Verdict: balanced: 3 endpoints each take \d+%(?:–\d+%)?/);

  const role = diagnoseRole();
  t.ok(cluster.api.requests.length >= 8, `diagnose made ${cluster.api.requests.length} API requests`);
  for (const request of cluster.api.requests) {
    const attrs = requestAttributes(request);
    t.ok(attrs && isAllowed(role.rules, attrs), `manifests/observability/diagnose-rbac.yaml allows ${request.method} ${request.path}`);
  }
});
