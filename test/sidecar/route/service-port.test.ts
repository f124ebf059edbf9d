import t from 'tap';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { pickServicePort, servicePortForClusterIp, servicePortForPodAddress } from '../../../sidecar/route/service-port.js';
import { endpointSliceObject, serviceObject } from '../../helpers/kube-api.js';

const multi = serviceObject({ name: 'shop', namespace: 'demo', clusterIP: '10.96.0.50', clusterIPs: ['10.96.0.50', 'fd00::50'], ports: [{ name: 'http', port: 80, targetPort: 'web' }, { name: 'grpc', port: 50051, targetPort: 9000 }, { name: 'dns', port: 53, protocol: 'UDP' }] }) as unknown as V1Service;
const single = serviceObject({ name: 'web', namespace: 'demo', clusterIP: '10.96.0.51', ports: [{ port: 8080 }] }) as unknown as V1Service;

t.test('the Service port a request meant', async (t) => {
  t.equal(pickServicePort(multi, 50051)?.name, 'grpc');
  t.equal(pickServicePort(multi, 53), undefined, 'UDP ports are not ours');
  t.equal(pickServicePort(multi, undefined)?.name, 'http', 'no port named: 80 when the Service has it');
  t.equal(pickServicePort(single, undefined)?.port, 8080, 'no port named: the only port');
  t.equal(pickServicePort(single, 80), undefined, 'a port the Service does not have');
});

t.test('ClusterIP:port, IPv4 or IPv6, to the Service port', async (t) => {
  t.equal(servicePortForClusterIp(multi, '10.96.0.50', 80)?.name, 'http');
  t.equal(servicePortForClusterIp(multi, 'fd00::50', 50051)?.name, 'grpc');
  t.equal(servicePortForClusterIp(multi, '10.96.0.51', 80), undefined);
  t.equal(servicePortForClusterIp(multi, '10.96.0.50', 81), undefined);
});

t.test('a Pod IP:port goes back to the Service port whose slice port carries it (named targetPort differing per Pod)', async (t) => {
  const slices = [
    endpointSliceObject({ name: 's1', namespace: 'demo', service: 'shop', endpoints: [{ ip: '10.244.0.1' }], ports: [{ name: 'http', port: 8080 }, { name: 'grpc', port: 9000 }] }),
    endpointSliceObject({ name: 's2', namespace: 'demo', service: 'shop', endpoints: [{ ip: '10.244.0.2' }], ports: [{ name: 'http', port: 8081 }, { name: 'grpc', port: 9000 }] }),
  ] as unknown as V1EndpointSlice[];
  t.equal(servicePortForPodAddress(multi, slices, '10.244.0.1', 8080)?.port, 80);
  t.equal(servicePortForPodAddress(multi, slices, '10.244.0.2', 8081)?.port, 80);
  t.equal(servicePortForPodAddress(multi, slices, '10.244.0.2', 9000)?.port, 50051);
  t.equal(servicePortForPodAddress(multi, slices, '10.244.0.2', 8080), undefined, 'not the port of that Pod');
  t.equal(servicePortForPodAddress(multi, slices, '10.244.0.3', 8080), undefined, 'an unknown Pod');
});
