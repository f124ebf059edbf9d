import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DiscoveryOptions } from '../../../sidecar/discovery/options.js';
import { createDiscovery } from '../../../sidecar/discovery/setup.js';
import { captureLogs } from '../../helpers/log-capture.js';

const BASE: DiscoveryOptions = { inCluster: false, namespace: 'demo', clusterDomain: 'cluster.local' };

t.test('the upstream list is a catch-all ahead of the services file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-setup-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const servicesFile = join(dir, 'services.json');
  await writeFile(servicesFile, JSON.stringify({ 'web:80': ['127.0.0.1:8081'] }));
  const { log } = captureLogs();

  const both = await createDiscovery({ ...BASE, upstreamList: ['127.0.0.1:9000'], servicesFile }, log);
  t.teardown(() => both.close());
  t.equal((await both.resolve({ authority: 'web' }))?.id, 'static');
  t.equal((await both.resolve({}))?.id, 'static');

  const servicesOnly = await createDiscovery({ ...BASE, servicesFile }, log);
  t.teardown(() => servicesOnly.close());
  t.equal((await servicesOnly.resolve({ authority: 'web' }))?.id, 'web:80');
  t.equal(await servicesOnly.resolve({ authority: 'cart' }), undefined, 'unknown passes through');
});

t.test('the watched --upstream file resolves every hint, like the inline list', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-setup-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const upstreamFile = join(dir, 'upstream.json');
  await writeFile(upstreamFile, JSON.stringify(['127.0.0.1:9000', '127.0.0.1:9001']));
  const { log, lines } = captureLogs();
  const source = await createDiscovery({ ...BASE, upstreamFile }, log);
  t.teardown(() => source.close());
  const target = await source.resolve({ authority: 'anything.example.com:443' });
  t.equal(target?.id, 'static');
  t.equal(target?.endpoints.ready.length, 2);
  t.match(lines, [{ component: 'discovery', msg: 'endpoints updated', added: 2 }], 'the first set is logged');
});

t.test('with no source configured nothing is balanced and everything passes through', async (t) => {
  const { log } = captureLogs();
  const source = await createDiscovery(BASE, log);
  t.teardown(() => source.close());
  t.equal(await source.resolve({ authority: 'web' }), undefined);
});

t.test('a bad --upstream entry or unusable file fails start-up with a clear error', async (t) => {
  const { log } = captureLogs();
  await t.rejects(createDiscovery({ ...BASE, upstreamList: ['127.0.0.1'] }, log), { code: 'MESHLET_INVALID_DISCOVERY_INPUT', message: /--upstream\[0\]: "127\.0\.0\.1" is not valid/ });
  await t.rejects(createDiscovery({ ...BASE, servicesFile: '/nonexistent/services.json' }, log), { message: /\/nonexistent\/services\.json: cannot be read \(ENOENT\)/ });
});

t.test('with --kubeconfig, Services resolve through the API, and only while it is down does DNS stand in', async (t) => {
  const { KubeApiServer, serviceObject } = await import('../../helpers/kube-api.js');
  const api = await KubeApiServer.start();
  t.teardown(() => api.close());
  api.upsert('services', serviceObject({ name: 'web', namespace: 'demo', clusterIP: '10.96.0.111', ports: [{ port: 80, targetPort: 8080 }] }));
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-setup-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { log } = captureLogs();
  // A DNS server that refuses everything stands in for the cluster DNS: the fallback finds nothing.
  const source = await createDiscovery({ ...BASE, kubeconfig: await api.writeKubeconfig(dir), dnsServers: ['127.0.0.1:9'] }, log);
  t.teardown(() => source.close());
  t.equal(source.name, 'kubernetes+dns');
  const web = await source.resolve({ authority: 'web' });
  t.equal(web?.id, 'demo/web:80');
  t.equal(web?.endpoints.ready.length, 2);
  t.equal(await source.resolve({ authority: 'cart' }), undefined, 'an unknown Service passes through: the API is up, DNS is not asked');
});
