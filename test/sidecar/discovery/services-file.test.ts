import t, { type Test } from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServicesFileSource } from '../../../sidecar/discovery/services-file.js';
import { captureLogs } from '../../helpers/log-capture.js';
import { describeSet, waitForEndpoints } from '../../helpers/wait.js';

const OPTIONS = { namespace: 'demo', clusterDomain: 'cluster.local' };

async function openFile(t: Test, content: unknown) {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-services-'));
  const path = join(dir, 'services.json');
  await writeFile(path, JSON.stringify(content));
  const logs = captureLogs();
  const source = await ServicesFileSource.open(path, OPTIONS, logs.log);
  t.teardown(async () => {
    await source.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { source, path, ...logs };
}

const TABLE = {
  'web:80': ['127.0.0.1:8081', '127.0.0.1:8082'],
  'api.shop:9090': ['127.0.0.2:9090'],
  '198.18.0.10:80': ['127.0.0.3:8080'],
  '[fd00::10]:443': ['[::1]:8443'],
};

t.test('an authority finds its Service in every form the DNS search path allows', async (t) => {
  const { source } = await openFile(t, TABLE);
  for (const authority of ['web', 'web:80', 'WEB.demo', 'web.demo:80', 'web.demo.svc', 'web.demo.svc.cluster.local:80', 'web.demo.svc.cluster.local.']) {
    const target = await source.resolve({ authority });
    t.equal(target?.id, 'web:80', authority);
  }
  t.same(describeSet((await source.resolve({ authority: 'web' }))!.endpoints), ['127.0.0.1:8081 ready', '127.0.0.1:8082 ready']);
  t.equal((await source.resolve({ authority: 'api.shop.svc:9090' }))?.id, 'api.shop:9090', 'another namespace, written long');
  t.equal(await source.resolve({ authority: 'api:9090' }), undefined, 'a short name means the own namespace, not shop');
  t.equal(await source.resolve({ authority: 'web.other:80' }), undefined, 'same name, other namespace');
  t.equal(await source.resolve({ authority: 'web.demo.svc.other.domain:80' }), undefined, 'another cluster domain');
  t.equal(await source.resolve({ authority: 'web:8080' }), undefined, 'another port');
});

t.test('without a port in the authority, the original destination port, else 80, is meant', async (t) => {
  const { source } = await openFile(t, { ...TABLE, 'web:8080': ['127.0.0.1:9999'] });
  t.equal((await source.resolve({ authority: 'web', originalDst: { host: '198.18.0.99', port: 8080 } }))?.id, 'web:8080');
  t.equal((await source.resolve({ authority: 'web' }))?.id, 'web:80');
});

t.test('an original destination (a VIP) is looked up when the authority names nothing known', async (t) => {
  const { source } = await openFile(t, TABLE);
  t.equal((await source.resolve({ originalDst: { host: '198.18.0.10', port: 80 } }))?.id, '198.18.0.10:80');
  t.equal((await source.resolve({ authority: 'unknown.example.com', originalDst: { host: '198.18.0.10', port: 80 } }))?.id, '198.18.0.10:80');
  t.equal((await source.resolve({ originalDst: { host: 'fd00::10', port: 443 } }))?.id, '[fd00::10]:443', 'IPv6');
  t.equal((await source.resolve({ authority: '198.18.0.10:80' }))?.id, '198.18.0.10:80', 'an IP authority is a key too');
  t.equal((await source.resolve({ authority: 'web', originalDst: { host: '198.18.0.10', port: 80 } }))?.id, 'web:80', 'authority first');
});

t.test('what the file does not name passes through (undefined)', async (t) => {
  const { source } = await openFile(t, TABLE);
  t.equal(await source.resolve({}), undefined);
  t.equal(await source.resolve({ authority: 'example.com' }), undefined);
  t.equal(await source.resolve({ authority: 'bad::authority::' }), undefined);
  t.equal(await source.resolve({ originalDst: { host: '198.18.0.11', port: 80 } }), undefined);
});

t.test('services added, changed and removed in the file follow within a second', async (t) => {
  const { source, path } = await openFile(t, { 'web:80': ['127.0.0.1:8081'] });
  const web = (await source.resolve({ authority: 'web' }))!;
  await writeFile(path, JSON.stringify({ 'web:80': ['127.0.0.1:8081', '127.0.0.1:8082'], 'cart:80': ['127.0.0.1:8090'] }));
  await waitForEndpoints(web, (s) => s.size === 2, 1000, 'web to gain an endpoint');
  t.equal(await source.resolve({ authority: 'web' }), web, 'the same target object keeps its subscribers');
  t.same(describeSet((await source.resolve({ authority: 'cart' }))!.endpoints), ['127.0.0.1:8090 ready']);

  await writeFile(path, JSON.stringify({ 'cart:80': ['127.0.0.1:8090'] }));
  await waitForEndpoints(web, (s) => s.size === 0, 1000, 'web to be emptied');
  t.equal(await source.resolve({ authority: 'web' }), undefined, 'a removed Service passes through again');
});

t.test('a bad services file edit names each problem and keeps the last good table', async (t) => {
  const { source, path, waitFor } = await openFile(t, TABLE);
  await writeFile(path, JSON.stringify({ 'web:80': ['127.0.0.1:8081'], 'web': ['127.0.0.1:1'], 'cart:80': 'not-a-list' }));
  const error = await waitFor((l) => l.level === 'error', 2000, 'the error line');
  t.match(error, { msg: 'bad edit ignored, keeping last good set', file: path });
  t.match(error.problems, [/key "web" is not valid; allowed: HOST:PORT/, /"cart:80" must be a JSON array/]);
  t.equal((await source.resolve({ authority: 'web' }))?.endpoints.size, 2, 'still the old table');
});
