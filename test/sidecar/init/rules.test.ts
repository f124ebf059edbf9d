import t from 'tap';
import { buildFamilyRuleSet, buildRuleSets, formatDryRun, formatRestoreInput, MESHLET_CHAIN, type RedirectOptions } from '../../../sidecar/init/rules.js';
import { parseCidrList } from '../../../src/common/values.js';
import { runMeshlet } from '../../../tools/meshlet-process.js';

const BASE: RedirectOptions = { proxyUid: 2102, proxyPort: 15001, outboundPorts: [], skipOutboundPorts: [], skipOutboundCidrs: [] };

function cidrs(text: string) {
  const parsed = parseCidrList(text);
  if (!parsed.ok) throw new Error(`bad test CIDRs ${text}`);
  return parsed.value;
}

const join = (rules: readonly (readonly string[])[]) => rules.map((rule) => rule.join(' '));

t.test('by default every outbound TCP connection goes to the proxy, except the proxy and loopback', async (t) => {
  const v4 = buildFamilyRuleSet(4, BASE);
  t.equal(v4.table, 'nat');
  t.equal(v4.hook, 'OUTPUT');
  t.equal(v4.chain, MESHLET_CHAIN);
  t.same(v4.jump, ['-p', 'tcp', '-j', MESHLET_CHAIN]);
  t.same(join(v4.rules), [
    '-m owner --uid-owner 2102 -j RETURN',
    '-o lo -j RETURN',
    '-d 127.0.0.0/8 -j RETURN',
    '-p tcp -j REDIRECT --to-ports 15001',
  ]);
  const v6 = buildFamilyRuleSet(6, BASE);
  t.equal(v6.tool, 'ip6tables');
  t.same(join(v6.rules), ['-m owner --uid-owner 2102 -j RETURN', '-o lo -j RETURN', '-d ::1/128 -j RETURN', '-p tcp -j REDIRECT --to-ports 15001']);
});

const CASES: Array<{ name: string; options: Partial<RedirectOptions>; v4: string[]; v6: string[] }> = [
  {
    name: '--outbound-ports redirects only those ports',
    options: { outboundPorts: [80, 50051] },
    v4: ['-p tcp --dport 80 -j REDIRECT --to-ports 15001', '-p tcp --dport 50051 -j REDIRECT --to-ports 15001'],
    v6: ['-p tcp --dport 80 -j REDIRECT --to-ports 15001', '-p tcp --dport 50051 -j REDIRECT --to-ports 15001'],
  },
  {
    name: '--skip-outbound-ports returns before the redirect',
    options: { skipOutboundPorts: [22, 5432] },
    v4: ['-p tcp --dport 22 -j RETURN', '-p tcp --dport 5432 -j RETURN', '-p tcp -j REDIRECT --to-ports 15001'],
    v6: ['-p tcp --dport 22 -j RETURN', '-p tcp --dport 5432 -j RETURN', '-p tcp -j REDIRECT --to-ports 15001'],
  },
  {
    name: '--skip-outbound-cidrs lands in the family of each CIDR',
    options: { skipOutboundCidrs: cidrs('198.18.0.0/15,fd00::/8,198.19.0.7') },
    v4: ['-d 198.18.0.0/15 -j RETURN', '-d 198.19.0.7/32 -j RETURN', '-p tcp -j REDIRECT --to-ports 15001'],
    v6: ['-d fd00::/8 -j RETURN', '-p tcp -j REDIRECT --to-ports 15001'],
  },
  {
    name: 'a skipped port wins over the same port in --outbound-ports',
    options: { outboundPorts: [80, 443], skipOutboundPorts: [443], proxyPort: 16001, proxyUid: 1337 },
    v4: ['-p tcp --dport 443 -j RETURN', '-p tcp --dport 80 -j REDIRECT --to-ports 16001', '-p tcp --dport 443 -j REDIRECT --to-ports 16001'],
    v6: ['-p tcp --dport 443 -j RETURN', '-p tcp --dport 80 -j REDIRECT --to-ports 16001', '-p tcp --dport 443 -j REDIRECT --to-ports 16001'],
  },
];

for (const c of CASES) {
  t.test(c.name, async (t) => {
    const options = { ...BASE, ...c.options };
    const [v4, v6] = buildRuleSets(options);
    const exemptions = (family: 4 | 6) => [
      `-m owner --uid-owner ${options.proxyUid} -j RETURN`,
      '-o lo -j RETURN',
      `-d ${family === 4 ? '127.0.0.0/8' : '::1/128'} -j RETURN`,
    ];
    t.same(join(v4!.rules), [...exemptions(4), ...c.v4], 'IPv4');
    t.same(join(v6!.rules), [...exemptions(6), ...c.v6], 'IPv6');
  });
}

t.test('the restore input rebuilds our chain and adds the OUTPUT jump only when asked', async (t) => {
  const set = buildFamilyRuleSet(4, { ...BASE, skipOutboundPorts: [22] });
  const withJump = formatRestoreInput(set, { includeJump: true }).split('\n');
  t.same(withJump.slice(0, 3), ['*nat', `:${MESHLET_CHAIN} - [0:0]`, `-A OUTPUT -p tcp -j ${MESHLET_CHAIN}`]);
  t.equal(withJump.at(-2), 'COMMIT');
  const withoutJump = formatRestoreInput(set, { includeJump: false });
  t.notMatch(withoutJump, /-A OUTPUT/);
  t.match(withoutJump, `-A ${MESHLET_CHAIN} -p tcp --dport 22 -j RETURN`);
});

t.test('meshlet init --dry-run prints the rules of both families as iptables-restore input', async (t) => {
  const args = ['--proxy-uid', '2102', '--proxy-port', '15001', '--skip-outbound-ports', '22', '--skip-outbound-cidrs', '198.18.0.0/15,fd00::/8', '--dry-run'];
  const { code, stdout, stderr } = await runMeshlet(['init', ...args]);
  t.equal(code, 0, stderr);
  const expected = formatDryRun(buildRuleSets({ ...BASE, skipOutboundPorts: [22], skipOutboundCidrs: cidrs('198.18.0.0/15,fd00::/8') }));
  t.equal(stdout, expected);
  t.match(stdout, '# IPv4: iptables-restore --noflush');
  t.match(stdout, '# IPv6: ip6tables-restore --noflush');
  t.match(stdout, '-A MESHLET_OUTPUT -d fd00::/8 -j RETURN');
});

t.test('meshlet init --dry-run --no-ipv6 prints only IPv4, with --outbound-ports', async (t) => {
  const { code, stdout, stderr } = await runMeshlet(['init', '--outbound-ports', '50051', '--no-ipv6', '--dry-run']);
  t.equal(code, 0, stderr);
  t.notMatch(stdout, /IPv6/);
  t.match(stdout, '-A MESHLET_OUTPUT -m owner --uid-owner 2102 -j RETURN');
  t.match(stdout, '-A MESHLET_OUTPUT -p tcp --dport 50051 -j REDIRECT --to-ports 15001');
});

t.test('bad flag values are all reported at once, naming what is allowed, exit 2', async (t) => {
  const { code, stdout, stderr } = await runMeshlet(['init', '--proxy-uid', 'root', '--proxy-port', '70000', '--skip-outbound-cidrs', '10.0.0.0/33', '--iptables-backend', 'ebpf', '--dry-run']);
  t.equal(code, 2);
  t.equal(stdout, '');
  t.match(stderr, /--proxy-uid: "root" is not valid; allowed: a whole number from 1 to 4294967294/);
  t.match(stderr, /--proxy-port: "70000" is not valid; allowed: a whole number from 1 to 65535/);
  t.match(stderr, /--skip-outbound-cidrs: "10\.0\.0\.0\/33" is not valid; allowed: comma-separated IPv4 or IPv6 CIDRs/);
  t.match(stderr, /--iptables-backend: "ebpf" is not valid; allowed: auto, nft, legacy/);
});
