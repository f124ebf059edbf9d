import t from 'tap';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { endpointsFromSlices, endpointState } from '../../../sidecar/discovery/endpoint-slices.js';
import { endpointSliceObject } from '../../helpers/kube-api.js';
import { describeSet } from '../../helpers/wait.js';

t.test('endpoint conditions decide who gets new requests', async (t) => {
  const cases: Array<{ name: string; conditions: Parameters<typeof endpointState>[0]; expected: ReturnType<typeof endpointState> }> = [
    { name: 'ready', conditions: { ready: true, serving: true, terminating: false }, expected: 'ready' },
    { name: 'no conditions at all: ready unknown counts as ready', conditions: undefined, expected: 'ready' },
    { name: 'empty conditions', conditions: {}, expected: 'ready' },
    { name: 'not ready, not serving (starting up)', conditions: { ready: false, serving: false, terminating: false }, expected: undefined },
    { name: 'terminating but serving drains', conditions: { ready: false, serving: true, terminating: true }, expected: 'draining' },
    { name: 'terminating and no longer serving is gone', conditions: { ready: false, serving: false, terminating: true }, expected: undefined },
    { name: 'terminating, serving unknown, ready false: not serving', conditions: { ready: false, terminating: true }, expected: undefined },
    { name: 'terminating with ready true (publishNotReadyAddresses) still drains', conditions: { ready: true, serving: true, terminating: true }, expected: 'draining' },
    { name: 'ready unknown, not serving, not terminating', conditions: { serving: false }, expected: 'ready' },
    { name: 'null is unknown', conditions: { ready: null, serving: null, terminating: null }, expected: 'ready' },
  ];
  for (const c of cases) t.equal(endpointState(c.conditions), c.expected, c.name);
});

t.test('slices merge by address; FQDN slices and slices without the port are ignored', async (t) => {
  const slices = [
    endpointSliceObject({ name: 'a', namespace: 'demo', service: 'web', endpoints: [{ ip: '10.244.0.1' }, { ip: '10.244.0.2', ready: false, serving: true, terminating: true }], ports: [{ name: 'http', port: 8080 }] }),
    endpointSliceObject({ name: 'b', namespace: 'demo', service: 'web', endpoints: [{ ip: '10.244.0.2' }], ports: [{ name: 'http', port: 8080 }] }),
    endpointSliceObject({ name: 'c', namespace: 'demo', service: 'web', endpoints: [{ ip: '10.244.0.3' }], ports: [{ name: 'admin', port: 9000 }] }),
    { ...endpointSliceObject({ name: 'd', namespace: 'demo', service: 'web', endpoints: [{ ip: 'web.example.com' }], ports: [{ name: 'http', port: 8080 }] }), addressType: 'FQDN' },
    endpointSliceObject({ name: 'e', namespace: 'demo', service: 'web', endpoints: [{ ip: '10.244.0.4', ready: null, serving: null, terminating: null }], ports: [{ name: 'http', port: 8080, protocol: 'UDP' }] }),
  ] as unknown as V1EndpointSlice[];
  t.same(describeSet(endpointsFromSlices(slices, 'http', 80)), ['10.244.0.1:8080 ready', '10.244.0.2:8080 ready'], 'an address in two slices: ready wins over draining');
});

t.test('a headless Service slice without ports serves the port the app dialled', async (t) => {
  const slices = [endpointSliceObject({ name: 'h', namespace: 'demo', service: 'db', endpoints: [{ ip: '10.244.0.9' }], ports: null })] as unknown as V1EndpointSlice[];
  t.same(describeSet(endpointsFromSlices(slices, '', 5432)), ['10.244.0.9:5432 ready']);
});
