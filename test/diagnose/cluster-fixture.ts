import { once } from 'node:events';
import { request } from 'node:http';
import { endpointSliceObject, KubeApiServer, serviceObject, type KubeObject } from '../helpers/kube-api.js';
import { createEchoClient, startEchoBackend, waitForReady, type EchoBackend, type EchoClientInstance } from '../helpers/grpc-echo.js';
import { LoadGenerator } from '../../demo/load.js';
import { startMeshletProxy, type RunningProxy } from '../../demo/meshlet-proxy.js';

/**
 * A small "cluster" for `meshlet diagnose`: the replay API server holds Service demo/web, its
 * EndpointSlice (pointing at real gRPC backends on loopback) and the Pods; every meshed client Pod is
 * a real `meshlet proxy` with a real gRPC client sending through it, and the API server's pod proxy
 * route forwards /metrics to that proxy's admin port.
 */
export interface ClientSpec {
  name: string;
  /** Names of the web Pods this client's sidecar balances over. */
  upstreams: string[];
}

export interface DiagnoseCluster {
  api: KubeApiServer;
  backends: Map<string, EchoBackend>;
  proxies: Map<string, RunningProxy>;
  close(): Promise<void>;
}

const CREATED_AT = Date.parse('2026-11-22T19:00:00Z');

export function podObject(name: string, labels: Record<string, string>, extra: { annotations?: Record<string, string>; createdMinutes: number; owner?: string; containers?: string[] }): KubeObject {
  return {
    metadata: {
      name,
      namespace: 'demo',
      labels,
      creationTimestamp: new Date(CREATED_AT + extra.createdMinutes * 60_000).toISOString(),
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
      ...(extra.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: extra.owner, uid: `uid-${extra.owner}`, controller: true }] } : {}),
    },
    spec: { containers: (extra.containers ?? ['app']).map((c) => ({ name: c, image: 'example/app:1.0' })) },
    status: { phase: 'Running', podIP: '198.18.0.10' },
  };
}

/**
 * `web`: names of the Service's Pods (web-0 … in creation order, each a real backend); `clients`: meshed
 * callers; `unmeshed`: Pods that asked for the sidecar but were admitted without it.
 */
export async function startDiagnoseCluster(options: { web: string[]; clients: ClientSpec[]; unmeshed?: string[] }): Promise<DiagnoseCluster> {
  const api = await KubeApiServer.start({ loadFixtures: false });
  const backends = new Map<string, EchoBackend>();
  const proxies = new Map<string, RunningProxy>();
  const clients: EchoClientInstance[] = [];
  const loads: LoadGenerator[] = [];
  const close = async () => {
    await Promise.all(loads.map((l) => l.stop()));
    for (const c of clients) c.close();
    await Promise.all([...proxies.values()].map((p) => p.close()));
    await Promise.all([...backends.values()].map((b) => b.close()));
    await api.close();
  };
  try {
    for (const name of options.web) backends.set(name, await startEchoBackend(name));
    api.upsert('namespaces', { metadata: { name: 'demo', labels: { 'meshlet.dev/injection': 'enabled', 'kubernetes.io/metadata.name': 'demo' } } });
    api.upsert('services', serviceObject({ name: 'web', namespace: 'demo', clusterIP: '10.96.0.111', ports: [{ port: 8080 }] }));
    // Every backend listens on its own loopback port, so each gets an EndpointSlice of its own with that port.
    options.web.forEach((name, i) => {
      api.upsert('endpointslices', endpointSliceObject({ name: `web-${i}`, namespace: 'demo', service: 'web', endpoints: [{ ip: '127.0.0.1', pod: name }], ports: [{ port: backends.get(name)!.port }] }));
      api.upsert('pods', podObject(name, { app: 'web' }, { createdMinutes: i, owner: 'web-5d8f7c9b4' }));
    });
    options.clients.forEach((spec, i) => {
      api.upsert('pods', podObject(spec.name, { app: 'client', 'pod-template-hash': '6c4b9' }, { annotations: { 'meshlet.dev/inject': 'enabled', 'meshlet.dev/status': 'injected' }, createdMinutes: i, owner: 'client-6c4b9', containers: ['app', 'meshlet-proxy'] }));
    });
    await Promise.all(
      options.clients.map(async (spec) => {
        // round-robin: these tests are about what diagnose concludes from real sidecar metrics, so the
        // split must not depend on latency noise of a busy test machine (peak-ewma reacts to it).
        const proxy = await startMeshletProxy(
          spec.upstreams.map((u) => backends.get(u)!.address),
          { args: ['--lb-policy', 'round-robin'] },
        );
        proxies.set(spec.name, proxy);
        const client = createEchoClient(proxy.address);
        clients.push(client);
        await waitForReady(client);
        const load = new LoadGenerator(client, 4);
        load.start();
        loads.push(load);
      }),
    );
    for (const name of options.unmeshed ?? []) {
      api.upsert('pods', podObject(name, { app: 'legacy', 'pod-template-hash': '7d9f' }, { annotations: { 'meshlet.dev/inject': 'enabled' }, createdMinutes: 0, owner: 'legacy-7d9f' }));
    }
    api.route('GET', /^\/api\/v1\/namespaces\/demo\/pods\/([a-z0-9-]+)(?::|%3A)15090\/proxy\/metrics$/i, async (_req, res, match) => {
      const proxy = proxies.get(match[1]!);
      if (!proxy) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('error trying to reach service: dial tcp: connect: connection refused');
        return;
      }
      const text = await fetchText(`http://${proxy.adminAddress}/metrics`);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(text);
    });
  } catch (err) {
    await close();
    throw err;
  }
  return { api, backends, proxies, close };
}

async function fetchText(url: string): Promise<string> {
  const req = request(url);
  req.end();
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
