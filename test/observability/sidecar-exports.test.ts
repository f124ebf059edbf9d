import t from 'tap';
import { startMeshletProxy } from '../../demo/meshlet-proxy.js';
import { parsePrometheusText } from '../../src/diagnose/prometheus-text.js';
import { METRICS } from '../../src/common/contract.js';
import { createEchoClient, startEchoBackend, unaryCall, waitForReady } from '../helpers/grpc-echo.js';
import { dashboardQueries, metricNamesIn, ruleQueries } from './queries.js';

/** A metric family is exported when /metrics declares it (# TYPE) or has samples of it. */
function familyOf(name: string): string {
  return name.replace(/_(bucket|sum|count)$/, '');
}

t.test("a real meshlet proxy's /metrics, after traffic, has every metric the dashboard and alerts read", async (t) => {
  const backends = await Promise.all(['a', 'b'].map((n) => startEchoBackend(n)));
  t.teardown(() => Promise.all(backends.map((b) => b.close())));
  const proxy = await startMeshletProxy(backends.map((b) => b.address));
  t.teardown(() => proxy.close());
  const client = createEchoClient(proxy.address);
  t.teardown(() => client.close());
  await waitForReady(client);
  for (let i = 0; i < 10; i++) await Promise.all(Array.from({ length: 5 }, () => unaryCall(client, { text: 'hi' })));

  const response = await fetch(`http://${proxy.adminAddress}/metrics`);
  t.equal(response.status, 200);
  t.match(response.headers.get('content-type'), /^text\/plain/);
  const text = await response.text();
  const declared = new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]!));
  const samples = parsePrometheusText(text);

  const used = new Set([...dashboardQueries(), ...ruleQueries()].flatMap((q) => metricNamesIn(q.expr).metrics));
  for (const name of used) {
    t.ok(declared.has(familyOf(name)) || samples.some((s) => s.name === name), `${name} is exported`);
  }

  const requests = samples.filter((s) => s.name === METRICS.requests);
  t.same(
    requests.map((s) => s.labels.endpoint).sort(),
    backends.map((b) => b.address).sort(),
    'meshlet_requests_total has one series per endpoint, labelled endpoint="ip:port"',
  );
  t.equal(
    requests.reduce((a, s) => a + s.value, 0),
    50,
    'and they add up to the 50 calls sent',
  );
  t.ok(requests.every((s) => typeof s.labels.target === 'string' && s.labels.target.length > 0), 'every series has a target label');
  t.ok(samples.some((s) => s.name === `${METRICS.requestDuration}_bucket` && s.labels.le === '+Inf'), 'the duration histogram has buckets up to +Inf');
  t.ok(samples.some((s) => s.name === METRICS.endpoints && s.labels.state === 'ready' && s.value === 2), 'meshlet_endpoints{state="ready"} is 2');
});
