import t from 'tap';
import { existsSync, lstatSync } from 'node:fs';
import { MESHLET_NODE_ARGS, REPO_ROOT } from '../../../tools/meshlet-process.js';
import { Netns, NetnsKit, netnsUnsupportedReason, runAsUnsupportedReason, runQuiet, type RunResult } from '../../helpers/netns.js';

/**
 * `meshlet init` against the real kernel: each case gets a fresh network namespace, runs the real
 * CLI inside it, and reads the result back with iptables-save.
 */
const unsupported = netnsUnsupportedReason({ iptables: true });
if (unsupported) {
  t.plan(0, `skipped: ${unsupported}`);
} else {
  // About twenty real CLI runs: slow on a busy 2-core machine, so more than tap's default timeout.
  t.setTimeout(240_000);
  const kit = new NetnsKit();
  t.teardown(() => kit.teardown());
  let nsCount = 0;
  const freshNamespace = () => kit.createNamespace(`init${nsCount++}`);

  const init = (ns: Netns, args: string[], options: { uid?: number } = {}): RunResult =>
    ns.run(process.execPath, [...MESHLET_NODE_ARGS, 'init', ...args], { cwd: REPO_ROOT, ...options });

  const save = (ns: Netns, tool: string): string => ns.runChecked(`${tool}-save`, ['-t', 'nat']).stdout;
  const ourLines = (saved: string) => saved.split('\n').filter((line) => line.includes('MESHLET_OUTPUT'));
  const logLines = (stdout: string) =>
    stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  const backends = (['nft', 'legacy'] as const).filter((b) => runQuiet('sh', ['-c', `command -v iptables-${b}-save`]).code === 0);

  for (const backend of backends) {
    t.test(`${backend}: installs one set of rules, again and again, and removes them`, async (t) => {
      const ns = freshNamespace();
      const first = init(ns, ['--proxy-uid', '2102', '--proxy-port', '15001', '--skip-outbound-ports', '22', '--iptables-backend', backend]);
      t.equal(first.code, 0, first.stderr);
      t.match(logLines(first.stdout), [{ msg: 'iptables back end', backend }, { msg: 'rules installed', family: 4, jumpAdded: true }, { msg: 'rules installed', family: 6 }]);
      const v4 = save(ns, `iptables-${backend}`);
      t.same(ourLines(v4), [
        ':MESHLET_OUTPUT - [0:0]',
        '-A OUTPUT -p tcp -j MESHLET_OUTPUT',
        '-A MESHLET_OUTPUT -m owner --uid-owner 2102 -j RETURN',
        '-A MESHLET_OUTPUT -o lo -j RETURN',
        '-A MESHLET_OUTPUT -d 127.0.0.0/8 -j RETURN',
        '-A MESHLET_OUTPUT -p tcp -m tcp --dport 22 -j RETURN',
        '-A MESHLET_OUTPUT -p tcp -j REDIRECT --to-ports 15001',
      ]);
      t.ok(ourLines(save(ns, `ip6tables-${backend}`)).includes('-A MESHLET_OUTPUT -d ::1/128 -j RETURN'), 'IPv6 loopback exempt');

      const again = init(ns, ['--iptables-backend', backend]);
      t.equal(again.code, 0, again.stderr);
      t.match(logLines(again.stdout), [{}, { msg: 'rules installed', jumpAdded: false }, { msg: 'rules installed', jumpAdded: false }]);
      const v4Again = ourLines(save(ns, `iptables-${backend}`));
      t.equal(v4Again.filter((line) => line.startsWith('-A OUTPUT')).length, 1, 'one jump from OUTPUT');
      t.equal(v4Again.filter((line) => line.includes('REDIRECT')).length, 1, 'one redirect rule');
      t.notOk(v4Again.some((line) => line.includes('--dport 22')), 'the chain holds the new run’s rules only');

      const removed = init(ns, ['--remove', '--iptables-backend', backend]);
      t.equal(removed.code, 0, removed.stderr);
      t.same(ourLines(save(ns, `iptables-${backend}`)), [], 'IPv4 rules gone');
      t.same(ourLines(save(ns, `ip6tables-${backend}`)), [], 'IPv6 rules gone');
      const removedAgain = init(ns, ['--remove', '--iptables-backend', backend]);
      t.equal(removedAgain.code, 0, removedAgain.stderr);
      t.match(logLines(removedAgain.stdout), [{}, { msg: 'no rules to remove' }]);
    });
  }

  t.test('auto picks the back end that already holds rules, and nft on an empty namespace', { skip: backends.length < 2 ? 'needs both iptables-nft and iptables-legacy' : false }, async (t) => {
    const legacyNs = freshNamespace();
    legacyNs.runChecked('iptables-legacy', ['-t', 'nat', '-A', 'POSTROUTING', '-d', '198.18.0.1/32', '-j', 'ACCEPT']);
    const onLegacy = init(legacyNs, []);
    t.equal(onLegacy.code, 0, onLegacy.stderr);
    t.match(logLines(onLegacy.stdout)[0], { msg: 'iptables back end', backend: 'legacy' });
    t.equal(ourLines(save(legacyNs, 'iptables-legacy')).length > 0, true, 'installed with iptables-legacy');
    t.same(ourLines(save(legacyNs, 'iptables-nft')), [], 'nothing in nft');

    const emptyNs = freshNamespace();
    const onEmpty = init(emptyNs, []);
    t.equal(onEmpty.code, 0, onEmpty.stderr);
    t.match(logLines(onEmpty.stdout)[0], { msg: 'iptables back end', backend: 'nft' });
  });

  t.test('--dry-run installs nothing', async (t) => {
    const ns = freshNamespace();
    const result = init(ns, ['--dry-run']);
    t.equal(result.code, 0, result.stderr);
    t.match(result.stdout, '-A OUTPUT -p tcp -j MESHLET_OUTPUT');
    for (const backend of backends) {
      t.same(ourLines(save(ns, `iptables-${backend}`)), [], `nothing in iptables-${backend}`);
      t.same(ourLines(save(ns, `ip6tables-${backend}`)), [], `nothing in ip6tables-${backend}`);
    }
  });

  t.test('--no-ipv6 leaves ip6tables alone', async (t) => {
    const ns = freshNamespace();
    const result = init(ns, ['--no-ipv6']);
    t.equal(result.code, 0, result.stderr);
    const backend = String(logLines(result.stdout)[0]?.backend);
    t.ok(ourLines(save(ns, `iptables-${backend}`)).length > 0);
    t.same(ourLines(save(ns, `ip6tables-${backend}`)), []);
  });

  t.test('a non-root user is told which capability is missing, exit 1', { skip: runAsUnsupportedReason() ?? false }, async (t) => {
    const ns = freshNamespace();
    const result = init(ns, [], { uid: 2102 });
    t.equal(result.code, 1);
    t.match(result.stderr, /meshlet init: missing the NET_ADMIN capability \(uid 2102 is not root/);
    t.match(result.stderr, /needs NET_ADMIN and NET_RAW; run the init container as uid 0 with securityContext\.capabilities\.add: \[NET_ADMIN, NET_RAW\]/);
  });

  t.test('root without NET_ADMIN is told the same, exit 1, and nothing is installed', { skip: runAsUnsupportedReason() ?? false }, async (t) => {
    const ns = freshNamespace();
    const result = ns.run('setpriv', ['--bounding-set=-net_admin,-net_raw', '--inh-caps=-net_admin,-net_raw', '--', process.execPath, ...MESHLET_NODE_ARGS, 'init'], { cwd: REPO_ROOT });
    t.equal(result.code, 1);
    t.match(result.stderr, /missing the NET_ADMIN capability \(effective set [0-9a-f]{16}\)/);
    t.same(ourLines(save(ns, 'iptables')), []);
  });

  const hasUnshare = runQuiet('sh', ['-c', 'command -v unshare']).code === 0;
  t.test('legacy iptables works with a read-only /run (readOnlyRootFilesystem)', { skip: backends.includes('legacy') && hasUnshare ? false : 'needs iptables-legacy and unshare' }, async (t) => {
    const ns = freshNamespace();
    const script = 'mount -t tmpfs -o ro meshlet-test /run && exec "$@"';
    const result = ns.run('unshare', ['--mount', '--', 'sh', '-c', script, 'sh', process.execPath, ...MESHLET_NODE_ARGS, 'init', '--iptables-backend', 'legacy'], { cwd: REPO_ROOT });
    t.equal(result.code, 0, result.stderr);
    t.ok(ourLines(save(ns, 'iptables-legacy')).includes('-A OUTPUT -p tcp -j MESHLET_OUTPUT'), 'installed');
  });

  const sbinDirs = ['/usr/sbin', '/sbin', '/usr/local/sbin'].filter((dir) => existsSync(dir) && !lstatSync(dir).isSymbolicLink());
  const iptablesPath = runQuiet('sh', ['-c', 'command -v iptables']).stdout.trim();
  const canHide = sbinDirs.some((dir) => iptablesPath.startsWith(`${dir}/`)) && hasUnshare;
  t.test('without iptables it says what to install, exit 1', { skip: canHide ? false : `iptables (${iptablesPath}) is not in ${sbinDirs.join(', ')} or unshare is missing` }, async (t) => {
    const ns = freshNamespace();
    const hide = sbinDirs.map((dir) => `mount -t tmpfs meshlet-test ${dir}`).join(' && ');
    const script = `${hide} && exec "$@"`;
    const result = ns.run('unshare', ['--mount', '--', 'sh', '-c', script, 'sh', process.execPath, ...MESHLET_NODE_ARGS, 'init'], { cwd: REPO_ROOT });
    t.equal(result.code, 1, result.stdout);
    t.match(result.stderr, /meshlet init: no usable iptables found \(looked for iptables-nft, iptables-legacy and iptables on PATH/);
    t.match(result.stderr, /needs the iptables package/);
  });
}
