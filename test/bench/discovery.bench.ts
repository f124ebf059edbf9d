// `node --import tsx test/bench/discovery.bench.ts` (part of `npm run bench`): from an EndpointSlice
// update leaving the (replayed) API server to the first request the real `meshlet proxy` process sends
// to the new endpoint, while a client keeps sending keep-alive HTTP/1.1 requests naming the Service.
// Aim: under 100 ms. Prints figures; asserts nothing. Bounded: ITERATIONS updates, each waited on for
// at most WAIT_MS. Everything runs on loopback (backends on 127.0.0.x).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { endpointSliceObject, KubeApiServer, serviceObject } from '../helpers/kube-api.js';
import { driveTraffic, startBackends, startProxyProcess } from '../discovery/traffic-kit.js';

const ITERATIONS = 20;
const WAIT_MS = 5000;
const POLICIES = ['round-robin', 'peak-ewma'];
const BASE = '127.0.0.2';
const NEW_ADDRESSES = Array.from({ length: ITERATIONS }, (_, i) => `127.0.0.${10 + i}`);

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function measure(policy: string): Promise<{ samples: number[]; missed: number; requests: number; failures: number }> {
  const backends = await startBackends([BASE, ...NEW_ADDRESSES]);
  const api = await KubeApiServer.start({ loadFixtures: false });
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-bench-'));
  const slice = (addresses: string[]) =>
    endpointSliceObject({ name: 'bench-1', namespace: 'demo', service: 'bench', endpoints: addresses.map((ip, i) => ({ ip, pod: `bench-${i}` })), ports: [{ port: backends.port }] });
  api.upsert('services', serviceObject({ name: 'bench', namespace: 'demo', clusterIP: '10.96.0.200', ports: [{ port: 80, targetPort: backends.port }] }));
  api.upsert('endpointslices', slice([BASE]));
  const proxy = await startProxyProcess(['--kubeconfig', await api.writeKubeconfig(dir), '--namespace', 'demo', '--lb-policy', policy]);
  const traffic = driveTraffic(proxy.listening['port'], 'bench.demo.svc.cluster.local', ITERATIONS * WAIT_MS + 30_000);
  const samples: number[] = [];
  let missed = 0;
  try {
    const warmupBy = Date.now() + WAIT_MS;
    while (traffic.results.length < 200) {
      if (Date.now() > warmupBy) throw new Error(`warm-up: only ${traffic.results.length} requests through the proxy in ${WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const address of NEW_ADDRESSES) {
      const sentAt = performance.now();
      api.upsert('endpointslices', slice([BASE, address]));
      const deadline = sentAt + WAIT_MS;
      while (!backends.firstSeen.has(address) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
      const seenAt = backends.firstSeen.get(address);
      if (seenAt === undefined) missed++;
      else samples.push(seenAt - sentAt);
      api.upsert('endpointslices', slice([BASE]));
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await traffic.stop();
    await proxy.stop();
    await api.close();
    await backends.close();
    await rm(dir, { recursive: true, force: true });
  }
  return { samples: samples.sort((a, b) => a - b), missed, requests: traffic.results.length, failures: traffic.results.filter((r) => r.status !== 200).length };
}

console.log(`discovery: EndpointSlice MODIFIED event written by the replay API server -> first request at the new endpoint, through the real meshlet proxy (${ITERATIONS} updates, sequential keep-alive HTTP/1.1 client)`);
for (const policy of POLICIES) {
  const { samples, missed, requests, failures } = await measure(policy);
  const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
  console.log(
    `  --lb-policy ${policy.padEnd(11)} p50 ${fmt(percentile(samples, 50))}  p95 ${fmt(percentile(samples, 95))}  max ${fmt(samples.at(-1) ?? NaN)}  (n=${samples.length}, not reached within ${WAIT_MS} ms: ${missed}; ${requests} requests, ${failures} failed; aim < 100 ms)`,
  );
}
