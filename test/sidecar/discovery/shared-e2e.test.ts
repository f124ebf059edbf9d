import t, { type Test } from 'tap';
import { startMeshlet, type MeshletProcess } from '../../../tools/meshlet-process.js';
import { serviceObject } from '../../helpers/kube-api.js';
import { startSharedWatcherWorld } from '../../helpers/shared-watcher-kit.js';
import { driveTraffic, startBackends, startProxyProcess, type Traffic } from '../../helpers/traffic-kit.js';
import { waitUntil } from '../../helpers/wait.js';

// The recorded Pods, mapped to real loopback backends: nothing is ever sent to 10.244.x.x.
const WEB_0 = '127.0.0.2';
const WEB_1 = '127.0.0.3';
const WEB_2 = '127.0.0.4';
const REWRITE = { '10.244.1.10': WEB_0, '10.244.2.11': WEB_1, '10.244.3.12': WEB_2 };
const WEB_CLUSTER_IP = '10.96.0.111';

function latest(traffic: Traffic, count: number): Set<string | undefined> {
  return new Set(traffic.results.slice(-count).map((r) => r.backend));
}

function servedSince(traffic: Traffic, since: number): Set<string | undefined> {
  return new Set(traffic.results.filter((r) => r.at >= since).map((r) => r.backend));
}

function failuresOf(traffic: Traffic): string {
  const failures = traffic.results.filter((r) => r.status !== 200);
  return `${failures.length} failed of ${traffic.results.length}${failures.length ? `: ${JSON.stringify(failures.slice(0, 3))}` : ''}`;
}

function startWatcher(kubeconfig: string, port = 0): Promise<MeshletProcess> {
  return startMeshlet(['discovery', '--listen', `127.0.0.1:${port}`, '--kubeconfig', kubeconfig]);
}

async function startWorld(t: Test) {
  const backends = await startBackends([WEB_0, WEB_1, WEB_2]);
  t.teardown(() => backends.close());
  const world = await startSharedWatcherWorld(t, { rewrite: { addresses: REWRITE, port: backends.port } });
  world.api.upsert('services', serviceObject({ name: 'web', namespace: 'demo', clusterIP: WEB_CLUSTER_IP, ports: [{ port: 80, targetPort: 8080 }] }));
  let watcher = await startWatcher(world.kubeconfig);
  const port = watcher.listening['port'] as number;
  t.teardown(() => watcher.stop());
  return {
    ...world,
    backends,
    port,
    watcher: () => watcher,
    restartWatcher: async () => {
      watcher = await startWatcher(world.kubeconfig, port);
      return watcher;
    },
  };
}

t.test('through the shared watcher a sidecar in another namespace balances a Service by name, by ClusterIP and by Pod IP, and follows its changes', async (t) => {
  const { api, port, tokenFile, backends } = await startWorld(t);
  // The sidecar has no API credentials at all: everything it knows comes from the shared watcher.
  const proxy = await startProxyProcess(['--discovery-server', `127.0.0.1:${port}`, '--discovery-token-file', tokenFile, '--namespace', 'client', '--lb-policy', 'round-robin']);
  t.teardown(() => proxy.stop());

  for (const [how, host] of [
    ['by name', 'web.demo.svc.cluster.local'],
    ['by ClusterIP (a Service of namespace demo, called from namespace client)', WEB_CLUSTER_IP],
    ['by Pod IP (traced to the one Service that owns it)', `${WEB_0}:${backends.port}`],
  ] as const) {
    const traffic = driveTraffic(proxy.listening['port'], host);
    await waitUntil(() => traffic.results.length >= 60, 10_000, `60 requests ${how}`);
    await traffic.stop();
    t.same(latest(traffic, 40), new Set([WEB_0, WEB_1]), `${how}: balanced over the two ready Pods`);
    t.match(failuresOf(traffic), /^0 failed/, how);
  }

  const traffic = driveTraffic(proxy.listening['port'], 'web.demo');
  t.teardown(() => traffic.stop());
  await waitUntil(() => traffic.results.length >= 20, 10_000, 'traffic by short name with namespace');
  const [terminating, becomesReady] = api.recordedChanges();
  const readyAt = performance.now();
  api.applyRecorded(becomesReady!);
  await waitUntil(() => servedSince(traffic, readyAt).has(WEB_2), 5000, 'the Pod turned ready to get traffic');
  t.comment(`web-2 got its first request ${Math.round(backends.firstSeen.get(WEB_2)! - readyAt)} ms after turning ready`);
  api.applyRecorded(terminating!);
  await waitUntil(() => traffic.results.length > 60 && !latest(traffic, 40).has(WEB_1), 5000, 'the terminating Pod to drain');
  t.pass('an EndpointSlice change reaches the sidecar: the terminating Pod gets nothing new');
  await traffic.stop();
  t.match(failuresOf(traffic), /^0 failed/);
  t.equal(api.openWatches(), 2, 'the API server holds two watches (the shared watcher\'s), none from the sidecar');
});

t.test('the shared watcher restarted, then lost, under load: zero failed requests; the sidecar catches up, falls back to direct watches, and returns', async (t) => {
  const { api, port, tokenFile, kubeconfig, backends, watcher, restartWatcher } = await startWorld(t);
  const fallbackMs = 3000;
  // This sidecar may also watch the API itself (kubeconfig): its fallback.
  const proxy = await startProxyProcess([
    '--discovery-server',
    `127.0.0.1:${port}`,
    '--discovery-token-file',
    tokenFile,
    '--discovery-fallback-ms',
    String(fallbackMs),
    '--kubeconfig',
    kubeconfig,
    '--namespace',
    'demo',
    '--lb-policy',
    'round-robin',
  ]);
  t.teardown(() => proxy.stop());
  const traffic = driveTraffic(proxy.listening['port'], 'web', 120_000);
  t.teardown(() => traffic.stop());
  await waitUntil(() => traffic.results.length >= 60 && latest(traffic, 40).size === 2, 10_000, 'balanced traffic');
  const [terminating, becomesReady, terminatedGone, sliceDeleted] = api.recordedChanges();

  // 1. Restart (SIGTERM, as a rollout does): the sidecar keeps serving, then catches up with a change made meanwhile.
  await watcher().stop();
  const downAt = performance.now();
  api.applyRecorded(becomesReady!);
  await waitUntil(() => traffic.results.filter((r) => r.at > downAt).length >= 50, 10_000, 'requests while the watcher is down');
  t.notOk(servedSince(traffic, downAt).has(WEB_2), 'while it is down, the last set serves (the change is not known yet)');
  const adminPort = proxy.listening['admin'].port as number;
  const staleness = async () => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    return Number(/^meshlet_discovery_staleness_seconds\{target="demo\/web:80"\} (\S+)$/m.exec(text)?.[1] ?? NaN);
  };
  t.ok((await staleness()) > 0, 'staleness is reported while the watcher is away');
  const restarted = await restartWatcher();
  const upAt = performance.now();
  await waitUntil(() => servedSince(traffic, upAt).has(WEB_2), 10_000, 'the change made while down to reach the sidecar');
  t.pass('watcher back: the Pod turned ready meanwhile gets traffic');
  // On a busy machine the restart may outlast the fallback bound: either return line will do here.
  await waitUntil(() => proxy.lines.some((l) => String(l.msg).startsWith('discovery server back')), 5000, 'the sidecar to say the watcher is back');
  t.equal(await staleness(), 0, 'fresh again');

  // 2. Loss (SIGKILL) for longer than the fallback bound: direct watches take over, then hand back.
  const mark = proxy.lines.length;
  const isNew = (line: Record<string, unknown>) => proxy.lines.indexOf(line) >= mark;
  restarted.child.kill('SIGKILL');
  await restarted.exited;
  const fellBack = await proxy.waitForLine((l) => isNew(l) && l.msg === 'discovery server away too long; falling back to direct API watches', fallbackMs + 10_000, 'the fallback line');
  t.equal(fellBack.level, 'warn');
  const changedAt = performance.now();
  api.applyRecorded(terminating!);
  await waitUntil(() => traffic.results.some((r) => r.at > changedAt) && latest(traffic, 40).size === 2 && !latest(traffic, 40).has(WEB_1) && traffic.results.filter((r) => r.at > changedAt).length > 40, 10_000, 'the direct watches to deliver a change');
  t.pass('falling back: a change reaches the sidecar through its own watches');
  t.ok(api.openWatches('endpointslices') >= 1, 'the sidecar watches the API itself meanwhile');

  await restartWatcher();
  const back = await proxy.waitForLine((l) => isNew(l) && l.msg === 'discovery server back; direct API watches stopped', 15_000, 'the return line');
  t.equal(back.level, 'info');
  await waitUntil(() => api.openWatches() === 2, 10_000, 'the sidecar to stop its own watches');
  api.applyRecorded(terminatedGone!);
  const goneAt = performance.now();
  api.applyRecorded(sliceDeleted!);
  await waitUntil(() => traffic.results.filter((r) => r.at > goneAt).length > 40 && latest(traffic, 40).size === 1 && latest(traffic, 40).has(WEB_0), 10_000, 'the shared watcher to deliver changes again');
  t.pass('back on the shared watcher: the deleted slice is gone');

  await traffic.stop();
  t.match(failuresOf(traffic), /^0 failed/, 'zero failed requests through restart, loss, fallback and return');
  t.ok(backends.hits.get(WEB_1)! > 0 && backends.hits.get(WEB_2)! > 0, 'every backend served at some point');
});
