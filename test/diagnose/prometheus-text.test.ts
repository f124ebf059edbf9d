import t from 'tap';
import { parsePrometheusText } from '../../src/diagnose/prometheus-text.js';

t.test('reads samples with labels, skipping comments, and unescapes label values', async (t) => {
  const text = [
    '# HELP meshlet_requests_total Requests sent to an endpoint.',
    '# TYPE meshlet_requests_total counter',
    'meshlet_requests_total{target="demo/web:8080",endpoint="10.244.1.10:8080",protocol="grpc"} 42',
    'meshlet_request_duration_seconds_bucket{target="t",endpoint="[fd00::1]:80",le="+Inf"} 7 1700000000000',
    'meshlet_downstream_connections 3',
    'odd{path="a\\"b\\\\c"} 1.5e3',
    'broken{x="unterminated} 1',
    '',
  ].join('\n');
  t.same(parsePrometheusText(text), [
    { name: 'meshlet_requests_total', labels: { target: 'demo/web:8080', endpoint: '10.244.1.10:8080', protocol: 'grpc' }, value: 42 },
    { name: 'meshlet_request_duration_seconds_bucket', labels: { target: 't', endpoint: '[fd00::1]:80', le: '+Inf' }, value: 7 },
    { name: 'meshlet_downstream_connections', labels: {}, value: 3 },
    { name: 'odd', labels: { path: 'a"b\\c' }, value: 1500 },
  ]);
});
