import t from 'tap';
import { parseServiceHost, serviceAuthorityForms, splitAuthority } from '../../../sidecar/route/authority.js';

t.test('authorities split into host and optional port', async (t) => {
  const cases: Array<[string, ReturnType<typeof splitAuthority>]> = [
    ['web', { host: 'web', port: undefined }],
    ['web:8080', { host: 'web', port: 8080 }],
    ['Web.Demo.:80', { host: 'web.demo', port: 80 }],
    ['10.96.0.111:80', { host: '10.96.0.111', port: 80 }],
    ['[fd00::1]:443', { host: 'fd00::1', port: 443 }],
    ['[fd00::1]', { host: 'fd00::1', port: undefined }],
    ['fd00::1', { host: 'fd00::1', port: undefined }],
    ['web:0', undefined],
    ['web:http', undefined],
    ['[web]:80', undefined],
    ['', undefined],
    [':80', undefined],
  ];
  for (const [authority, expected] of cases) t.same(splitAuthority(authority), expected, JSON.stringify(authority));
});

t.test('a host names a Service the way the Pod DNS search path would', async (t) => {
  const cases: Array<[string, ReturnType<typeof parseServiceHost>]> = [
    ['web', { name: 'web', namespace: 'demo' }],
    ['web.shop', { name: 'web', namespace: 'shop' }],
    ['web.shop.svc', { name: 'web', namespace: 'shop' }],
    ['web.shop.svc.cluster.local', { name: 'web', namespace: 'shop' }],
    ['web.shop.svc.cluster.local.', { name: 'web', namespace: 'shop' }],
    ['WEB.Shop.SVC.Cluster.Local', { name: 'web', namespace: 'shop' }],
    ['web.shop.svc.other.local', undefined],
    ['web.shop.pod', undefined],
    ['api.example.com', undefined],
    ['10.96.0.111', undefined],
    ['fd00::1', undefined],
    ['9web', undefined],
    ['web_1', undefined],
  ];
  for (const [host, expected] of cases) t.same(parseServiceHost(host, 'demo', 'cluster.local'), expected, host);
  t.same(parseServiceHost('web.shop.svc.corp.example', 'demo', 'corp.example'), { name: 'web', namespace: 'shop' }, '--cluster-domain is honoured');
});

t.test('a Service is written short only in the own namespace', async (t) => {
  t.same(serviceAuthorityForms({ name: 'web', namespace: 'demo' }, 80, 'demo', 'cluster.local'), ['web.demo.svc.cluster.local:80', 'web.demo.svc:80', 'web.demo:80', 'web:80']);
  t.same(serviceAuthorityForms({ name: 'web', namespace: 'shop' }, 80, 'demo', 'cluster.local'), ['web.shop.svc.cluster.local:80', 'web.shop.svc:80', 'web.shop:80']);
});
