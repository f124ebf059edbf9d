import t, { type Test } from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient } from '../../../sidecar/discovery/kube-client.js';
import { loadKubeConfig } from '../../../sidecar/discovery/kube-config.js';
import { KubeApiServer } from '../../helpers/kube-api.js';

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-kubeconfig-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function kubeconfigYaml(cluster: string, user: string): string {
  return ['apiVersion: v1', 'kind: Config', 'current-context: replay', 'contexts:', '- name: replay', '  context: {cluster: replay, user: replay}', 'clusters:', '- name: replay', `  cluster: ${cluster}`, 'users:', '- name: replay', `  user: ${user}`, ''].join('\n');
}

t.test('a YAML kubeconfig with a CA file and a token file beside it, both relative, reaches the API over TLS', async (t) => {
  const api = await KubeApiServer.start({ tls: true, token: 'file-token' });
  t.teardown(() => api.close());
  const dir = await tempDir(t);
  await writeFile(join(dir, 'ca.pem'), api.caPem!);
  await writeFile(join(dir, 'token'), 'file-token\n');
  await writeFile(join(dir, 'config'), kubeconfigYaml(`{server: "${api.url}", certificate-authority: ca.pem}`, '{tokenFile: token}'));
  const client = new KubeClient(await loadKubeConfig({ kubeconfig: join(dir, 'config'), inCluster: false }));
  t.teardown(() => client.close());
  const list = await client.list<{ metadata: { name: string } }>('/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices', {}, 5000);
  t.same(
    list.items.map((i) => i.metadata.name),
    ['web-7xk2p', 'web-q9m4d'],
  );
  t.equal(api.requests.at(-1)?.authorization, 'Bearer file-token');
});

t.test('a kubeconfig user the proxy cannot authenticate as is refused at start, naming the field and what is allowed', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config'), kubeconfigYaml('{server: "https://127.0.0.1:6443"}', '{exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}}'));
  await t.rejects(loadKubeConfig({ kubeconfig: join(dir, 'config'), inCluster: false }), {
    code: 'MESHLET_MISSING_PREREQUISITE',
    message: /user "replay" uses exec, which meshlet proxy does not support; allowed: token, tokenFile, client-certificate/,
  });
});

t.test('a kubeconfig without a usable current context says which', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config'), 'apiVersion: v1\nkind: Config\ncurrent-context: gone\n');
  await t.rejects(loadKubeConfig({ kubeconfig: join(dir, 'config'), inCluster: false }), { message: /has no current context with a cluster \(current-context: "gone"\)/ });
  await writeFile(join(dir, 'config'), kubeconfigYaml('{server: "https://127.0.0.1:6443", certificate-authority: missing.pem}', '{token: x}'));
  await t.rejects(loadKubeConfig({ kubeconfig: join(dir, 'config'), inCluster: false }), { message: /certificate-authority missing\.pem cannot be read/ });
});

t.test('an error answer carries the API status code and its message', async (t) => {
  const api = await KubeApiServer.start();
  t.teardown(() => api.close());
  api.forbid({ plural: 'services', namespace: 'demo', verb: 'list' });
  const client = new KubeClient({ server: api.url });
  t.teardown(() => client.close());
  await t.rejects(client.list('/api/v1/namespaces/demo/services', {}, 5000), { statusCode: 403, message: /cannot list resource "services" in API group "" in the namespace "demo"/ });
});

t.test('tls-server-name is the name the API server certificate is checked against', async (t) => {
  const api = await KubeApiServer.start({ tls: true, tlsNames: ['kubernetes.default.svc'] });
  t.teardown(() => api.close());
  const dir = await tempDir(t);
  const caData = Buffer.from(api.caPem!).toString('base64');
  await writeFile(join(dir, 'named'), kubeconfigYaml(`{server: "${api.url}", certificate-authority-data: ${caData}, tls-server-name: kubernetes.default.svc}`, '{token: x}'));
  await writeFile(join(dir, 'unnamed'), kubeconfigYaml(`{server: "${api.url}", certificate-authority-data: ${caData}}`, '{token: x}'));
  const named = new KubeClient(await loadKubeConfig({ kubeconfig: join(dir, 'named'), inCluster: false }));
  const unnamed = new KubeClient(await loadKubeConfig({ kubeconfig: join(dir, 'unnamed'), inCluster: false }));
  t.teardown(() => {
    named.close();
    unnamed.close();
  });
  t.equal((await named.list('/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices', {}, 5000)).items.length, 2, 'verified as kubernetes.default.svc');
  await t.rejects(unnamed.list('/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices', {}, 5000), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }, 'the certificate is not valid for 127.0.0.1');
});

t.test('a kubeconfig cluster behind proxy-url is refused at start, naming the field', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config'), kubeconfigYaml('{server: "https://10.0.0.1:6443", proxy-url: "http://proxy:3128"}', '{token: x}'));
  await t.rejects(loadKubeConfig({ kubeconfig: join(dir, 'config'), inCluster: false }), { message: /cluster "replay" uses proxy-url, which meshlet proxy does not support; allowed: server/ });
});
