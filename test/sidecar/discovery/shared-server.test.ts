import { writeFile } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { startDiscovery } from '../../../src/discovery/main.js';
import { MAX_SUBSCRIPTIONS_PER_CONNECTION, type ServerMessage } from '../../../sidecar/discovery/shared-protocol.js';
import { SharedWatcherSource } from '../../../sidecar/discovery/shared-watcher-source.js';
import { endpointSliceObject, serviceObject } from '../../helpers/kube-api.js';
import { captureLogs } from '../../helpers/log-capture.js';
import { OTHER_AUDIENCE_TOKEN, openRawSubscriber, SIDECAR_TOKEN, startSharedWatcherWorld } from '../../helpers/shared-watcher-kit.js';
import { describeSet, waitForEndpoints, waitUntil } from '../../helpers/wait.js';

const FAST_TUNING = { initialBackoffMs: 20, maxBackoffMs: 200 };

async function startWorld(t: Test, server: { maxBufferedBytes?: number; pingIntervalMs?: number; reconnectLeadMs?: number } = {}) {
  const world = await startSharedWatcherWorld(t);
  world.api.upsert('services', serviceObject({ name: 'web', namespace: 'demo', clusterIP: '10.96.0.111', ports: [{ port: 80, targetPort: 8080 }] }));
  const logs = captureLogs();
  const discovery = await startDiscovery({ listen: { host: '127.0.0.1', port: 0 }, kubeconfig: world.kubeconfig }, logs.log, { server, tuning: FAST_TUNING });
  t.teardown(() => discovery.close());
  await waitUntil(() => discovery.index.isSynced, 5000, 'the shared watcher to list the cluster');
  return { ...world, discovery, logs };
}

function services(messages: ServerMessage[], key: string) {
  return messages.filter((m): m is Extract<ServerMessage, { type: 'service' }> => m.type === 'service' && m.key === key);
}

t.test('a caller without a token, or with a token the API server does not authenticate for meshlet-discovery, is refused with 401 and why', async (t) => {
  const { discovery, api } = await startWorld(t);
  const none = await openRawSubscriber(discovery.port, undefined);
  t.equal(none.status, 401);
  t.match(none.refusal, /no bearer token; allowed: Authorization: Bearer <projected service-account token with audience meshlet-discovery>/);
  const bad = await openRawSubscriber(discovery.port, 'not-a-token');
  t.equal(bad.status, 401);
  t.match(bad.refusal, /token refused: not authenticated: invalid bearer token/);
  const otherAudience = await openRawSubscriber(discovery.port, OTHER_AUDIENCE_TOKEN);
  t.equal(otherAudience.status, 401, 'a token for the API audience is not one for meshlet-discovery');
  const good = await openRawSubscriber(discovery.port, SIDECAR_TOKEN);
  t.equal(good.status, 200, 'the projected token for meshlet-discovery is accepted');
  good.close();
  const reviews = () => api.requests.filter((r) => r.path.endsWith('/tokenreviews')).length;
  const before = reviews();
  const again = await openRawSubscriber(discovery.port, SIDECAR_TOKEN);
  t.equal(again.status, 200);
  again.close();
  t.equal(reviews(), before, 'a token already reviewed is not reviewed again (cached)');
  t.match(await metrics(discovery.port), /^meshlet_discovery_server_refused_subscriptions_total 3$/m, 'the three refusals are counted');
  t.equal(api.openWatches(), 2, 'the shared watcher holds exactly two API watches: services and endpointslices');
});

t.test('a sidecar with a refused token logs it as an error and keeps trying', async (t) => {
  const { discovery, tokenFile } = await startWorld(t);
  await writeFile(tokenFile, 'not-a-token\n');
  const { log, lines } = captureLogs();
  const source = new SharedWatcherSource({ server: { host: '127.0.0.1', port: discovery.port }, tokenFile, namespace: 'demo', clusterDomain: 'cluster.local', fallbackAfterMs: 60_000, initialBackoffMs: 20, maxBackoffMs: 100 }, log);
  t.teardown(() => source.close());
  await waitUntil(() => lines.some((l) => l.msg === 'discovery server refused our token; keeping the last sets'), 5000, 'the refusal to be logged');
  const line = lines.find((l) => l.msg === 'discovery server refused our token; keeping the last sets')!;
  t.equal(line.level, 'error');
  t.match((line.err as { message: string }).message, /HTTP 401: token refused: not authenticated/);
  t.equal(await source.resolve({ authority: 'web.demo:80' }), undefined, 'an unknown Service passes through meanwhile');
  await writeFile(tokenFile, `${SIDECAR_TOKEN}\n`);
  const target = await waitForResolved(source, 'web.demo:80');
  t.equal(target.id, 'demo/web:80', 'once the token is good (kubelet rotated it) the Service resolves');
});

t.test('bad commands get an error naming what is allowed; the stream goes on', async (t) => {
  const { discovery } = await startWorld(t);
  const sub = await openRawSubscriber(discovery.port, SIDECAR_TOKEN);
  t.teardown(() => sub.close());
  sub.send('{not json\n');
  sub.send({ op: 'watch', kind: 'service', key: 'Not A Key' });
  sub.send({ op: 'watch', kind: 'address', key: 'web.demo' });
  sub.send({ op: 'watch', kind: 'service', key: 'demo/web' });
  await waitUntil(() => services(sub.messages, 'demo/web').length === 1, 5000, 'the state of demo/web');
  const errors = sub.messages.filter((m) => m.type === 'error').map((m) => (m as { message: string }).message);
  t.match(errors, [/is not JSON; allowed: \{"op":"watch"\|"unwatch"/, /service key "Not A Key" is not valid; allowed: namespace\/name/, /address "web.demo" is not valid; allowed: an IPv4 or IPv6 address/]);
  t.equal(services(sub.messages, 'demo/web')[0]!.slices.length, 2, 'and the good command is served');
});

t.test('subscriptions per connection are capped; a command line over the limit ends the connection', async (t) => {
  const { discovery } = await startWorld(t);
  const sub = await openRawSubscriber(discovery.port, SIDECAR_TOKEN);
  t.teardown(() => sub.close());
  let batch = '';
  for (let i = 0; i <= MAX_SUBSCRIPTIONS_PER_CONNECTION; i++) batch += `${JSON.stringify({ op: 'watch', kind: 'address', key: `10.1.${i >> 8}.${i & 255}` })}\n`;
  sub.send(batch);
  await waitUntil(() => sub.messages.some((m) => m.type === 'error'), 5000, 'the over-limit watch to be refused');
  const refused = sub.messages.filter((m) => m.type === 'error');
  t.equal(refused.length, 1, 'exactly the one watch over the cap is refused');
  t.match(refused[0], { key: `10.1.4.0`, message: /already watches 1024; allowed: at most 1024 per connection/ });
  await waitUntil(() => sub.messages.filter((m) => m.type === 'address').length === MAX_SUBSCRIPTIONS_PER_CONNECTION, 5000, 'every accepted watch to be answered');

  const abusive = await openRawSubscriber(discovery.port, SIDECAR_TOKEN);
  abusive.send(`{"op":"watch","kind":"service","key":"${'a'.repeat(4000)}"}\n`);
  await abusive.ended;
  t.match(abusive.messages.at(-1), { type: 'error', message: /allowed: at most 1024 bytes per line; closing/ });
  await waitUntil(() => discovery.server.connectionCount === 1, 5000, 'the abusive connection to be gone');
  t.pass('the well-behaved connection is still there');
});

t.test('a subscriber that stops reading is disconnected, not buffered for; others keep getting every change', async (t) => {
  const { discovery, api, logs, tokenFile } = await startWorld(t, { maxBufferedBytes: 64 * 1024 });
  // A Service with 2,000 endpoints: every change is a message of about 200 KiB.
  const bigSlice = (generation: number) =>
    endpointSliceObject({ name: 'big-0', namespace: 'demo', service: 'big', ports: [{ port: 8080 }], endpoints: Array.from({ length: 2000 }, (_, i) => ({ ip: `10.9.${i >> 8}.${i & 255}`, pod: `big-${i}-${generation}` })) });
  api.upsert('services', serviceObject({ name: 'big', namespace: 'demo', clusterIP: '10.96.0.200', ports: [{ port: 80, targetPort: 8080 }] }));
  api.upsert('endpointslices', bigSlice(0));
  const stuck = await openRawSubscriber(discovery.port, SIDECAR_TOKEN, { read: false });
  t.teardown(() => stuck.close());
  stuck.send({ op: 'watch', kind: 'service', key: 'demo/big' });
  const { log } = captureLogs();
  const source = new SharedWatcherSource({ server: { host: '127.0.0.1', port: discovery.port }, tokenFile, namespace: 'demo', clusterDomain: 'cluster.local', fallbackAfterMs: 60_000 }, log);
  t.teardown(() => source.close());
  const target = await waitForResolved(source, 'big.demo:80');
  let generation = 0;
  for (; generation < 300 && discovery.server.connectionCount > 1; generation++) {
    api.upsert('endpointslices', bigSlice(generation + 1));
    await new Promise((r) => setImmediate(r));
  }
  await waitUntil(() => discovery.server.connectionCount === 1, 5000, 'the stuck reader to be dropped');
  t.ok(generation < 300, `dropped after ${generation} changes`);
  t.ok(logs.lines.some((l) => l.msg === 'subscriber not reading; disconnected' && l.level === 'warn'), 'said as a warning');
  t.match(await metrics(discovery.port), /^meshlet_discovery_server_dropped_subscribers_total 1$/m, 'and counted');
  await waitForEndpoints(target, (set) => set.all.every((e) => e.pod?.endsWith(`-${generation}`)), 5000, 'the last change at the reading sidecar');
  t.equal(describeSet(target.endpoints).length, 2000, 'the reading sidecar has every endpoint of the last change');
});

async function metrics(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

async function waitForResolved(source: SharedWatcherSource, authority: string) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const target = await source.resolve({ authority });
    if (target) return target;
    if (Date.now() > deadline) throw new Error(`${authority} did not resolve within 5 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('addresses resolve to their owner: ClusterIP v4 and v6, a Pod IP of exactly one Service; changes are pushed', async (t) => {
  const { discovery, api } = await startWorld(t);
  api.upsert('services', serviceObject({ name: 'dual', namespace: 'shop', clusterIP: '10.96.0.50', clusterIPs: ['10.96.0.50', 'fd00:10:96::50'], ports: [{ port: 80 }] }));
  api.upsert('services', serviceObject({ name: 'other', namespace: 'shop', clusterIP: '10.96.0.51', ports: [{ port: 80 }] }));
  // 10.244.1.10 is web-0 of demo/web (recorded); shop/other's slice holds it too: ambiguous later.
  const sub = await openRawSubscriber(discovery.port, SIDECAR_TOKEN);
  t.teardown(() => sub.close());
  const owners = () => new Map(sub.messages.filter((m) => m.type === 'address').map((m) => [(m as { key: string }).key, (m as { service: string | null }).service]));
  for (const key of ['10.96.0.50', 'fd00:10:96::50', '10.96.0.111', '10.244.1.10', '10.9.9.9']) sub.send({ op: 'watch', kind: 'address', key });
  await waitUntil(() => owners().size === 5, 5000, 'five answers');
  t.same(Object.fromEntries(owners()), { '10.96.0.50': 'shop/dual', 'fd00:10:96::50': 'shop/dual', '10.96.0.111': 'demo/web', '10.244.1.10': 'demo/web', '10.9.9.9': null });

  sub.messages.length = 0;
  api.upsert('endpointslices', endpointSliceObject({ name: 'other-1', namespace: 'shop', service: 'other', ports: [{ port: 80 }], endpoints: [{ ip: '10.244.1.10' }, { ip: '10.9.9.9' }] }));
  await waitUntil(() => owners().size === 2, 5000, 'the two changed owners');
  t.same(Object.fromEntries(owners()), { '10.244.1.10': null, '10.9.9.9': 'shop/other' }, 'a Pod IP of two Services resolves to none; a new one to its Service; nothing else is resent');

  sub.send({ op: 'watch', kind: 'service', key: 'shop/other' });
  await waitUntil(() => services(sub.messages, 'shop/other').length === 1, 5000, 'the state of shop/other');
  api.remove('services', 'shop', 'other');
  await waitUntil(() => services(sub.messages, 'shop/other').length === 2, 5000, 'the deletion');
  t.equal(services(sub.messages, 'shop/other')[1]!.service, null, 'a deleted Service is pushed as null');
});

t.test('a sidecar drops what it no longer uses; the watcher losing the API marks the sidecar\'s sets stale until it is back', async (t) => {
  const { discovery, api, tokenFile } = await startWorld(t, { pingIntervalMs: 50 });
  const { log } = captureLogs();
  const source = new SharedWatcherSource({ server: { host: '127.0.0.1', port: discovery.port }, tokenFile, namespace: 'demo', clusterDomain: 'cluster.local', fallbackAfterMs: 60_000, idleTimeoutMs: 300 }, log);
  t.teardown(() => source.close());
  const target = await waitForResolved(source, 'web:80');
  const unsubscribe = target.subscribe(() => undefined);
  t.same(discovery.server.watched, { services: 1, addresses: 0 });

  await api.stop();
  await waitUntil(() => target.stale, 10_000, 'the sidecar to hear the watcher lost the API');
  t.equal(target.endpoints.ready.length, 2, 'the last set keeps serving');
  await api.restart();
  await waitUntil(() => !target.stale, 10_000, 'fresh again once the watcher has relisted');

  unsubscribe();
  await waitUntil(() => discovery.server.watched.services === 0, 5000, 'the idle Service to be unwatched');
  t.pass('unused for the idle timeout: unwatched at the watcher');
});

t.test('falling back and returning: direct watches feed the same targets, and the return never brings back a set from before the outage', async (t) => {
  const world = await startSharedWatcherWorld(t);
  const { api, kubeconfig, tokenFile } = world;
  api.upsert('services', serviceObject({ name: 'web', namespace: 'demo', clusterIP: '10.96.0.111', ports: [{ port: 80, targetPort: 8080 }] }));
  let discovery = await startDiscovery({ listen: { host: '127.0.0.1', port: 0 }, kubeconfig }, captureLogs().log, { tuning: FAST_TUNING });
  const port = discovery.port;
  t.teardown(() => discovery.close());
  const { log, lines } = captureLogs();
  const { KubernetesSource } = await import('../../../sidecar/discovery/kubernetes.js');
  const { loadKubeConfig } = await import('../../../sidecar/discovery/kube-config.js');
  const source = new SharedWatcherSource(
    {
      server: { host: '127.0.0.1', port },
      tokenFile,
      namespace: 'demo',
      clusterDomain: 'cluster.local',
      fallbackAfterMs: 200,
      initialBackoffMs: 20,
      maxBackoffMs: 100,
      createFallback: async () => new KubernetesSource(await loadKubeConfig({ kubeconfig, inCluster: false }), { namespace: 'demo', clusterDomain: 'cluster.local', tuning: FAST_TUNING }, log),
    },
    log,
  );
  t.teardown(() => source.close());
  const target = await waitForResolved(source, 'web:80');
  const history: string[][] = [];
  t.teardown(target.subscribe((set) => history.push(describeSet(set))));
  await waitForEndpoints(target, (set) => set.ready.length === 2);

  await discovery.close();
  await waitUntil(() => lines.some((l) => l.msg === 'discovery server away too long; falling back to direct API watches'), 10_000, 'the fallback');
  const [terminating] = api.recordedChanges();
  api.applyRecorded(terminating!);
  await waitForEndpoints(target, (set) => set.ready.length === 1, 10_000, 'the change through direct watches');
  const changedAt = history.length - 1;

  discovery = await startDiscovery({ listen: { host: '127.0.0.1', port }, kubeconfig }, captureLogs().log, { tuning: FAST_TUNING });
  await waitUntil(() => lines.some((l) => l.msg === 'discovery server back; direct API watches stopped'), 10_000, 'the return');
  await waitUntil(() => api.openWatches() === 2, 10_000, 'the direct watches to close');
  t.same(
    history.slice(changedAt).filter((set) => set.filter((e) => e.endsWith(' ready')).length !== 1),
    [],
    'every set published since the change has the one ready Pod (none from before the outage)',
  );
  t.equal(target.endpoints.ready.length, 1);
  t.notOk(target.stale, 'fresh');
  t.equal(lines.filter((l) => l.msg === 'discovery server away too long; falling back to direct API watches').length, 1, 'one line each way');
  t.equal(lines.filter((l) => l.msg === 'discovery server back; direct API watches stopped').length, 1);
});

/** A JWT-shaped token whose `exp` claim is `expiresAt` (ms): the replay API server authenticates it by its text. */
function tokenExpiringAt(expiresAt: number): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256' })}.${part({ aud: ['meshlet-discovery'], exp: Math.floor(expiresAt / 1000), sub: 'system:serviceaccount:client:default' })}.signature`;
}

t.test('a stream lasts no longer than the token it was opened with, and asks for a new one first; a token without an expiry keeps its stream', async (t) => {
  const { discovery, api } = await startWorld(t, { reconnectLeadMs: 1_000 });
  const expiresAt = Date.now() + 3_000;
  const expiring = tokenExpiringAt(expiresAt);
  api.acceptToken(expiring, 'system:serviceaccount:client:default', ['meshlet-discovery']);
  const short = await openRawSubscriber(discovery.port, expiring);
  const long = await openRawSubscriber(discovery.port, SIDECAR_TOKEN);
  t.teardown(() => {
    short.close();
    long.close();
  });
  t.equal(short.status, 200, 'the token is accepted while valid');
  let shortEnded = false;
  void short.ended.then(() => (shortEnded = true));
  await waitUntil(() => short.messages.some((m) => m.type === 'reconnect'), 5_000, 'the server to ask for a new stream');
  t.notOk(shortEnded, 'asked while the stream is still open');
  t.match(short.messages.find((m) => m.type === 'reconnect'), { type: 'reconnect', reason: /the token this stream was opened with expires at \d{4}-/ });
  await Promise.race([short.ended, new Promise((_, reject) => setTimeout(() => reject(new Error('the stream outlived its token by 5 s')), expiresAt - Date.now() + 5_000))]);
  t.ok(Date.now() >= Math.floor(expiresAt / 1000) * 1000, 'the stream ended once its token expired, not before');
  short.send({ op: 'watch', kind: 'service', key: 'demo/web' });
  long.send({ op: 'watch', kind: 'service', key: 'demo/web' });
  await waitUntil(() => services(long.messages, 'demo/web').length > 0, 5_000, 'the state of demo/web on the stream opened with a token without expiry');
  t.pass('the stream opened with a token without expiry is still served');
  const reviews = () => api.requests.filter((r) => r.path.endsWith('/tokenreviews')).length;
  const before = reviews();
  // The replay API server authenticates by the token's text; a real one also refuses it once expired.
  const again = await openRawSubscriber(discovery.port, expiring);
  t.equal(reviews(), before + 1, 'past its expiry the token is reviewed again, not answered from the cache');
  await Promise.race([again.ended, new Promise((_, reject) => setTimeout(() => reject(new Error('a stream opened with an expired token was kept open')), 5_000))]);
  t.pass('a stream opened with a token already expired is ended at once');
});

/** A sidecar on the shared watcher whose token file holds a token that expires `lifeMs` from now. */
async function sidecarWithExpiringToken(t: Test, lifeMs: number, server: { pingIntervalMs?: number } = {}) {
  const world = await startWorld(t, { reconnectLeadMs: 1_500, ...server });
  const expiresAt = Date.now() + lifeMs;
  const expiring = tokenExpiringAt(expiresAt);
  world.api.acceptToken(expiring, 'system:serviceaccount:client:default', ['meshlet-discovery']);
  await writeFile(world.tokenFile, `${expiring}\n`);
  const logs = captureLogs();
  const source = new SharedWatcherSource({ server: { host: '127.0.0.1', port: world.discovery.port }, tokenFile: world.tokenFile, namespace: 'demo', clusterDomain: 'cluster.local', fallbackAfterMs: 60_000 }, logs.log);
  t.teardown(() => source.close());
  return { ...world, expiresAt, source, sidecarLogs: logs, target: await waitForResolved(source, 'web:80') };
}

t.test("a token about to expire: the sidecar opens a new stream with kubelet's new token before closing the old one, quietly and never stale", async (t) => {
  const { discovery, api, tokenFile, logs: serverLogs, expiresAt, source, sidecarLogs: logs, target } = await sidecarWithExpiringToken(t, 3_000, { pingIntervalMs: 100 });
  const unsubscribe = target.subscribe(() => undefined);
  t.teardown(unsubscribe);
  await waitUntil(() => source.isReachable, 5_000, 'the sidecar on the shared watcher');
  // kubelet rotates the projected token at 80% of its life: the file holds a new one before the old expires.
  await writeFile(tokenFile, `${SIDECAR_TOKEN}\n`);
  const joined = () => serverLogs.lines.filter((l) => l.msg === 'subscriber joined').length;
  let everStale = false;
  let everUnreachable = false;
  // Bounded: until well past the old token's expiry.
  while (Date.now() < expiresAt + 1_000) {
    everStale ||= target.stale;
    everUnreachable ||= !source.isReachable;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  t.equal(joined(), 2, 'one new stream was opened');
  t.notOk(serverLogs.lines.some((l) => l.msg === 'subscriber token expired: stream ended'), 'the old stream was closed by the sidecar before its token expired');
  t.equal(discovery.server.connectionCount, 1, 'and only the new one is open');
  t.notOk(everStale, 'the sets never went stale');
  t.notOk(everUnreachable, 'the server never looked unreachable');
  t.notOk(logs.lines.some((l) => l.level === 'warn' || l.level === 'error'), `no warning: ${JSON.stringify(logs.lines.filter((l) => l.level === 'warn' || l.level === 'error').map((l) => l.msg))}`);

  api.upsert('endpointslices', endpointSliceObject({ name: 'web-next', namespace: 'demo', service: 'web', ports: [{ port: 8080 }], endpoints: [{ ip: '10.244.9.9' }] }));
  await waitForEndpoints(target, (set) => set.ready.some((e) => e.host === '10.244.9.9'), 5_000, 'a change pushed on the new stream');
  t.pass('changes arrive on the new stream');
});

t.test('asked for a new stream while the token file still holds the same token: the sidecar waits for the end instead of reconnecting in a loop', async (t) => {
  const { logs: serverLogs, expiresAt, sidecarLogs: logs } = await sidecarWithExpiringToken(t, 2_500);
  await logs.waitFor((l) => /holds no new token yet/.test(l.msg), 5_000, 'the sidecar to see no new token');
  t.equal(serverLogs.lines.filter((l) => l.msg === 'subscriber joined').length, 1, 'no new stream was opened before the old one ended');
  t.ok(Date.now() < expiresAt, 'and the old one is still serving');
});
