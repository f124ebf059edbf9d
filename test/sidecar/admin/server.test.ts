import t from 'tap';
import { ProxyMetrics } from '../../../sidecar/admin/metrics.js';
import { METRICS } from '../../../src/common/contract.js';
import { captureLogs } from '../../helpers/log-capture.js';
import { TestSource, startTestProxy } from '../../helpers/proxy-harness.js';

const noGauges = { upstreamConnections: () => [], endpointCounts: () => [] };

t.test('endpoint label values are capped; later endpoints fold into "other"', async (t) => {
  const metrics = new ProxyMetrics(2);
  for (const endpoint of ['198.18.0.1:80', '198.18.0.2:80', '198.18.0.3:80', '198.18.0.4:80']) {
    const m = metrics.endpoint('shop/cart:80', endpoint);
    m.request(2);
    m.response(200, '0', 0.003);
  }
  const text = metrics.render(noGauges);
  t.match(text, /meshlet_requests_total\{target="shop\/cart:80",endpoint="198.18.0.1:80",protocol="grpc"\} 1/);
  t.match(text, /meshlet_requests_total\{target="shop\/cart:80",endpoint="198.18.0.2:80",protocol="grpc"\} 1/);
  t.match(text, /meshlet_requests_total\{target="shop\/cart:80",endpoint="other",protocol="grpc"\} 2/);
  t.notMatch(text, /198\.18\.0\.3/);
  t.match(text, /meshlet_request_duration_seconds_bucket\{target="shop\/cart:80",endpoint="other",le="0.005"\} 2/);
});

t.test('every exported metric name comes from METRICS in the contract, with HELP and TYPE', async (t) => {
  const text = new ProxyMetrics().render({
    upstreamConnections: () => [{ target: 'a', endpoint: 'b', value: 1 }],
    endpointCounts: () => [{ target: 'a', ready: 1, draining: 0, ejected: 0, stalenessSeconds: 0 }],
  });
  for (const name of Object.values(METRICS)) t.match(text, new RegExp(`# TYPE ${name} (counter|gauge|histogram)`), name);
});

t.test('label values are escaped', async (t) => {
  const metrics = new ProxyMetrics();
  metrics.passthrough('http1', 'a "quoted"\\ reason\n');
  t.match(metrics.render(noGauges), /reason="a \\"quoted\\"\\\\ reason\\n"/);
});

t.test('the debug endpoint table is served on its own loopback listener, never on the admin port', async (t) => {
  const { proxy } = await startTestProxy(new TestSource(['127.0.0.1:9']));
  t.teardown(() => proxy.close());
  t.equal(proxy.debugAdmin?.address, '127.0.0.1');
  t.equal((await fetch(`http://127.0.0.1:${proxy.admin.port}/debug/endpoints`)).status, 404);
  const res = await fetch(`http://127.0.0.1:${proxy.debugAdmin!.port}/debug/endpoints`);
  t.equal(res.status, 200);
  t.same(await res.json(), { targets: [] }, 'targets appear once traffic uses them');
  t.equal((await fetch(`http://127.0.0.1:${proxy.admin.port}/metrics`, { method: 'POST' })).status, 405);
});

t.test('a second proxy whose debug address is taken still serves, without the debug view, and says why', async (t) => {
  const { proxy: first } = await startTestProxy(new TestSource(['127.0.0.1:9']));
  t.teardown(() => first.close());
  const { log, lines } = captureLogs('warn');
  const { proxy: second } = await startTestProxy(new TestSource(['127.0.0.1:9']), { 'debug-admin': `127.0.0.1:${first.debugAdmin!.port}` }, log);
  t.teardown(() => second.close());
  t.equal(second.debugAdmin, undefined, 'no debug view on the second proxy');
  t.equal((await fetch(`http://127.0.0.1:${second.admin.port}/ready`)).status, 200, 'the second proxy is up');
  t.match(lines, [{ level: 'warn', msg: /debug endpoint table not served/ }]);
});
