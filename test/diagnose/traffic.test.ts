import t from 'tap';
import type { Sample } from '../../src/diagnose/prometheus-text.js';
import { serviceTraffic, type ServiceEndpoint } from '../../src/diagnose/traffic.js';

const req = (endpoint: string, value: number, target = 'shop/cart:8080'): Sample => ({ name: 'meshlet_requests_total', labels: { target, endpoint, protocol: 'grpc' }, value });
const endpoints: ServiceEndpoint[] = [
  { key: '10.244.1.10:8080', pod: 'cart-0', ready: true, terminating: false, createdAt: 1000 },
  { key: '10.244.1.11:8080', pod: 'cart-1', ready: true, terminating: false, createdAt: 2000 },
  { key: '10.244.1.12:8080', pod: 'cart-2', ready: true, terminating: false, createdAt: 9000 },
];
const service = { namespace: 'shop', name: 'cart' };

t.test('shares come from the difference between two scrapes, summed over sidecars', async (t) => {
  const before = [
    { pod: 'a', samples: [req('10.244.1.10:8080', 100), req('10.244.1.11:8080', 100)] },
    { pod: 'b', samples: [req('10.244.1.10:8080', 5000)] },
  ];
  const after = [
    { pod: 'a', samples: [req('10.244.1.10:8080', 150), req('10.244.1.11:8080', 160)] },
    { pod: 'b', samples: [req('10.244.1.10:8080', 5010), req('10.244.1.11:8080', 20)] },
  ];
  const { traffic, callers } = serviceTraffic(before, after, service, endpoints);
  t.same(
    traffic.map((e) => [e.pod, e.requests]),
    [['cart-0', 60], ['cart-1', 80], ['cart-2', 0]],
  );
  t.same(callers, ['a', 'b']);
  t.equal(traffic.find((e) => e.pod === 'cart-2')!.isNew, true, 'cart-2 started after the Pods that carry traffic');
});

t.test('a sidecar restart (counter went down) counts from the new value', async (t) => {
  const { traffic } = serviceTraffic([{ pod: 'a', samples: [req('10.244.1.10:8080', 900)] }], [{ pod: 'a', samples: [req('10.244.1.10:8080', 30)] }], service, endpoints);
  t.equal(traffic[0]!.requests, 30);
});

t.test("other Services' endpoints are left out; this Service's gone endpoints stay in", async (t) => {
  const after = [{ pod: 'a', samples: [req('10.244.9.9:80', 500, 'shop/other:80'), req('10.244.1.99:8080', 7, 'shop/cart:8080')] }];
  const { traffic } = serviceTraffic(undefined, after, service, endpoints);
  t.same(traffic.map((e) => e.endpoint).sort(), ['10.244.1.10:8080', '10.244.1.11:8080', '10.244.1.12:8080', '10.244.1.99:8080']);
  t.equal(traffic.find((e) => e.endpoint === '10.244.1.99:8080')!.ready, undefined);
});

t.test('request durations are summed per endpoint for a mean latency', async (t) => {
  const after = [
    {
      pod: 'a',
      samples: [
        req('10.244.1.10:8080', 10),
        { name: 'meshlet_request_duration_seconds_sum', labels: { target: 'shop/cart:8080', endpoint: '10.244.1.10:8080' }, value: 0.5 },
        { name: 'meshlet_request_duration_seconds_count', labels: { target: 'shop/cart:8080', endpoint: '10.244.1.10:8080' }, value: 10 },
      ],
    },
  ];
  const row = serviceTraffic(undefined, after, service, endpoints).traffic[0]!;
  t.equal(row.durationSumSeconds, 0.5);
  t.equal(row.durationCount, 10);
});
