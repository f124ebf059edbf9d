import t, { type Test } from 'tap';
import { chmod, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROXY_OUTBOUND_PORT, PROXY_UID } from '../../src/common/contract.js';
import { MESHLET_NODE_ARGS, REPO_ROOT } from '../../tools/meshlet-process.js';
import { NetnsKit, netnsUnsupportedReason, runAsUnsupportedReason, runQuiet, waitForJsonLine, type Netns, type RunResult } from '../helpers/netns.js';

/**
 * The whole interception path on a real kernel. A "client Pod" namespace is wired with veth pairs
 * to three "backend Pod" namespaces; the Service's virtual IP exists only as a route in the client.
 * In the client: `meshlet init` (the real CLI), the proxy under its own non-root UID with a
 * --services registry naming the VIP, and an unmodified @grpc/grpc-js client (one channel,
 * pick_first) dialling the VIP. The nat rule counters (iptables-save -c) show what the kernel did.
 */

const SERVICE_VIP = '198.19.0.10';
const GRPC_PORT = 50051;
const ECHO_PORT = 7007;
const SKIPPED_PORT = 7008;
const CALLS = 90;
const BACKENDS = [
  { name: 'backend-0', clientCidr: '198.18.1.1/24', cidr: '198.18.1.2/24', ip: '198.18.1.2' },
  { name: 'backend-1', clientCidr: '198.18.2.1/24', cidr: '198.18.2.2/24', ip: '198.18.2.2' },
  { name: 'backend-2', clientCidr: '198.18.3.1/24', cidr: '198.18.3.2/24', ip: '198.18.3.2' },
];
const script = (name: string) => join(REPO_ROOT, 'test', 'e2e', name);

/**
 * Starts `meshlet proxy` in `ns` as PROXY_UID with no capabilities. It sees the repository through a
 * bind mount (in a private mount namespace) at a world-traversable path, so a checkout under a
 * 0700 directory such as /root still works.
 */
function spawnProxy(ns: Netns, mountPoint: string, args: string[]) {
  const asProxy = ['setpriv', `--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups', '--inh-caps=-all', '--'];
  const command = [process.execPath, '--import', 'tsx', join(mountPoint, 'src', 'bin.ts'), 'proxy', ...args];
  const script = 'mount --bind "$1" "$2" && cd "$2" && shift 2 && exec "$@"';
  return ns.spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', REPO_ROOT, mountPoint, ...asProxy, ...command], {
    env: { ...process.env, HOME: tmpdir() },
  });
}

const unsupported =
  netnsUnsupportedReason({ iptables: true }) ??
  runAsUnsupportedReason() ??
  (runQuiet('sh', ['-c', 'command -v unshare']).code === 0 ? undefined : "'unshare' (util-linux) is not installed");

/** Two full scenarios of real processes take about 70 s on a busy 2-core machine: more than tap's default. */
const E2E_TIMEOUT_MS = 300_000;

if (unsupported) {
  t.plan(0, `skipped: ${unsupported}`);
} else {
  t.setTimeout(E2E_TIMEOUT_MS);
  const backends = (['nft', 'legacy'] as const).filter((b) => runQuiet('sh', ['-c', `command -v iptables-${b}-save`]).code === 0);
  if (backends.length === 0) t.plan(0, 'skipped: neither iptables-nft nor iptables-legacy is installed');
  for (const backend of backends) t.test(`with the ${backend} iptables back end`, (t) => scenario(t, backend));
}

async function scenario(t: Test, backend: 'nft' | 'legacy'): Promise<void> {
  const kit = new NetnsKit();
  t.teardown(() => kit.teardown());
  const client = kit.createNamespace(`${backend}client`);
  const backendNs = BACKENDS.map((pod, i) => {
    const ns = kit.createNamespace(`${backend}be${i}`);
    kit.link(client, ns, pod.clientCidr, pod.cidr);
    return ns;
  });
  // The Service VIP is a destination only: a route in the client, no address anywhere.
  client.addRoute(`${SERVICE_VIP}/32`, BACKENDS[0]!.ip);

  const node = (ns: Netns, args: string[]): RunResult => ns.run(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO_ROOT, timeoutMs: 60_000 });
  const meshletInit = (args: string[]) => client.run(process.execPath, [...MESHLET_NODE_ARGS, 'init', ...args], { cwd: REPO_ROOT });
  const echo = (host: string, port: number, message: string) => node(client, [join(REPO_ROOT, 'test', 'helpers', 'tcp-client.ts'), host, String(port), message]);
  const grpcCalls = (target: string, count: number) => {
    const result = node(client, [script('grpc-client.ts'), target, String(count)]);
    if (result.code !== 0) throw new Error(`grpc client failed (${result.code}): ${result.stderr}`);
    return JSON.parse(result.stdout) as { backends: Record<string, number>; errors: string[] };
  };

  const backendTool = `iptables-${backend}`;
  /** Packets each rule of our chain has matched: { "-m owner --uid-owner 2102 -j RETURN": 3, ... }. */
  const counters = (): Record<string, number> => {
    const saved = client.runChecked(`${backendTool}-save`, ['-c', '-t', 'nat']).stdout;
    const out: Record<string, number> = {};
    for (const line of saved.split('\n')) {
      const match = /^\[(\d+):\d+\] -A MESHLET_OUTPUT (.*)$/.exec(line);
      if (match) out[match[2]!] = Number(match[1]);
    }
    return out;
  };
  const delta = (before: Record<string, number>, after: Record<string, number>, rule: string) => (after[rule] ?? 0) - (before[rule] ?? 0);
  const UID_RULE = `-m owner --uid-owner ${PROXY_UID} -j RETURN`;
  const REDIRECT_RULE = `-p tcp -j REDIRECT --to-ports ${PROXY_OUTBOUND_PORT}`;
  const SKIP_RULE = `-p tcp -m tcp --dport ${SKIPPED_PORT} -j RETURN`;

  t.before(async () => {
    await Promise.all(
      BACKENDS.map(async (pod, i) => {
        const child = backendNs[i]!.spawn(process.execPath, ['--import', 'tsx', script('backend-pod.ts'), pod.name, pod.ip], { cwd: REPO_ROOT });
        await waitForJsonLine(child, (line) => line.ready === true, 30_000);
      }),
    );
  });

  let proxy: ReturnType<Netns['spawn']> | undefined;
  let registryDir: string | undefined;
  let mountPoint: string | undefined;
  t.teardown(async () => {
    if (registryDir) await rm(registryDir, { recursive: true, force: true });
    // Empty out here: the bind mount lived only in the proxy's mount namespace. rmdir never recurses.
    if (mountPoint) await rmdir(mountPoint).catch(() => undefined);
  });

  t.test('meshlet init installs the redirect in the client Pod', async (t) => {
    const result = meshletInit(['--proxy-uid', String(PROXY_UID), '--proxy-port', String(PROXY_OUTBOUND_PORT), '--skip-outbound-ports', String(SKIPPED_PORT), '--iptables-backend', backend]);
    t.equal(result.code, 0, result.stderr);
    t.same(Object.keys(counters()), [UID_RULE, '-o lo -j RETURN', '-d 127.0.0.0/8 -j RETURN', SKIP_RULE, REDIRECT_RULE]);
  });

  t.test('the proxy starts under its own non-root UID on 127.0.0.1:15001', async (t) => {
    registryDir = await mkdtemp(join(tmpdir(), 'meshlet-e2e-'));
    await chmod(registryDir, 0o755);
    const registry = join(registryDir, 'services.json');
    await writeFile(registry, JSON.stringify({ [`${SERVICE_VIP}:${GRPC_PORT}`]: BACKENDS.map((b) => `${b.ip}:${GRPC_PORT}`) }), { mode: 0o644 });
    mountPoint = await mkdtemp(join(tmpdir(), 'meshlet-e2e-repo-'));
    await chmod(mountPoint, 0o755);
    // round-robin: "evenly" is its promise; latency-driven policies skew on purpose.
    proxy = spawnProxy(client, mountPoint, ['--services', registry, '--lb-policy', 'round-robin']);
    const listening = await waitForJsonLine(proxy, (line) => line.msg === 'listening' && JSON.stringify(line).includes(String(PROXY_OUTBOUND_PORT)), 30_000).catch(
      (err: Error) => {
        throw new Error(`${err.message}\nproxy output:\n${kit.outputOf(proxy!)}`);
      },
    );
    t.match(listening, { mode: 'pod', address: '127.0.0.1', port: PROXY_OUTBOUND_PORT, policy: 'round-robin', source: 'services' });
    const status = readFileSync(`/proc/${proxy.pid}/status`, 'utf8');
    t.match(status, new RegExp(`^Uid:\\s+${PROXY_UID}\\s+${PROXY_UID}\\s`, 'm'), `the proxy process runs as uid ${PROXY_UID}`);
    t.match(status, /^CapEff:\s+0+$/m, 'with no capabilities');
  });

  t.test('one unmodified gRPC channel to the Service VIP is spread evenly over every backend', async (t) => {
    const before = counters();
    const result = grpcCalls(`${SERVICE_VIP}:${GRPC_PORT}`, CALLS);
    const after = counters();
    t.same(result.errors, [], 'no failed calls');
    if (result.errors.length > 0) t.comment(`proxy output:\n${kit.outputOf(proxy!)}`);
    t.same(Object.keys(result.backends).sort(), BACKENDS.map((b) => b.name), 'every backend answered');
    for (const pod of BACKENDS) {
      const share = (result.backends[pod.name] ?? 0) / CALLS;
      t.ok(Math.abs(share - 1 / BACKENDS.length) <= 0.1, `${pod.name} took ${(share * 100).toFixed(0)}% of the calls (expected 33% ± 10%)`);
    }
    t.equal(delta(before, after, REDIRECT_RULE), 1, 'the client opened exactly one connection, and the kernel redirected it');
    t.ok(delta(before, after, UID_RULE) >= BACKENDS.length, `the proxy's upstream connections (${delta(before, after, UID_RULE)}) were exempted by UID, not redirected`);
  });

  t.test('a plain TCP echo to another port passes through the proxy unchanged', async (t) => {
    const message = `meshlet e2e \u00e9cho ${'x'.repeat(2000)}`;
    const before = counters();
    const result = echo(BACKENDS[1]!.ip, ECHO_PORT, message);
    const after = counters();
    t.equal(result.code, 0, result.stderr);
    t.equal(result.stdout, message, 'the same bytes came back');
    t.equal(delta(before, after, REDIRECT_RULE), 1, 'it was redirected to the proxy');
    t.equal(delta(before, after, UID_RULE), 1, "the proxy's onward connection was not");
  });

  t.test('a skipped port bypasses the proxy', async (t) => {
    const before = counters();
    const result = echo(BACKENDS[2]!.ip, SKIPPED_PORT, 'skip me');
    const after = counters();
    t.equal(result.code, 0, result.stderr);
    t.equal(result.stdout, 'skip me');
    t.equal(delta(before, after, SKIP_RULE), 1, 'matched the skip rule');
    t.equal(delta(before, after, REDIRECT_RULE), 0, 'never redirected');
    t.equal(delta(before, after, UID_RULE), 0, 'the proxy never saw it');
  });

  t.test('with the proxy stopped, redirected traffic has nowhere to go: the rules really intercept', async (t) => {
    proxy!.kill('SIGKILL');
    if (proxy!.exitCode === null && proxy!.signalCode === null) await once(proxy!, 'exit');
    const redirected = echo(BACKENDS[0]!.ip, ECHO_PORT, 'hello');
    t.not(redirected.code, 0, 'refused: 127.0.0.1:15001 has no listener');
    t.match(redirected.stderr, /ECONNREFUSED/);
    const skipped = echo(BACKENDS[0]!.ip, SKIPPED_PORT, 'still here');
    t.equal(skipped.stdout, 'still here', 'the skipped port still flows');
  });

  t.test('removing the rules restores direct traffic', async (t) => {
    const removed = meshletInit(['--remove', '--iptables-backend', backend]);
    t.equal(removed.code, 0, removed.stderr);
    t.same(counters(), {}, 'our chain is gone');
    const direct = echo(BACKENDS[0]!.ip, ECHO_PORT, 'direct again');
    t.equal(direct.code, 0, direct.stderr);
    t.equal(direct.stdout, 'direct again', 'with no proxy running, the echo goes straight to the backend');
    const unbalanced = grpcCalls(`${BACKENDS[1]!.ip}:${GRPC_PORT}`, 30);
    t.same(unbalanced, { backends: { [BACKENDS[1]!.name]: 30 }, errors: [] }, 'gRPC is back to one connection, one backend');
  });
}
