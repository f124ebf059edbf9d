import { formatCidr, type Cidr } from '../../src/common/values.js';

/**
 * The Pod's outbound redirect as data: which TCP connections the nat table's OUTPUT hook sends to
 * the proxy, for IPv4 (iptables) and IPv6 (ip6tables). Pure: `meshlet init --dry-run` prints it,
 * apply.ts installs it.
 */

/** Our own chain in the nat table, jumped to once from OUTPUT. */
export const MESHLET_CHAIN = 'MESHLET_OUTPUT';

export type IpFamily = 4 | 6;

export interface RedirectOptions {
  /** Connections opened by this UID (the proxy's own upstream connections) are never redirected. */
  proxyUid: number;
  /** Where redirected connections go: 127.0.0.1 / ::1 on this port. */
  proxyPort: number;
  /** Only these destination ports are redirected; empty means every port. */
  outboundPorts: readonly number[];
  /** Destination ports that are never redirected (wins over outboundPorts). */
  skipOutboundPorts: readonly number[];
  /** Destination CIDRs that are never redirected; each applies to its own family. */
  skipOutboundCidrs: readonly Cidr[];
}

/** One rule: the arguments after `-A CHAIN`, exactly as iptables takes them. */
export type RuleArgs = readonly string[];

export interface FamilyRuleSet {
  family: IpFamily;
  /** The command name of the family, for messages: iptables or ip6tables. */
  tool: 'iptables' | 'ip6tables';
  table: 'nat';
  /** The built-in chain we hook into. */
  hook: 'OUTPUT';
  chain: typeof MESHLET_CHAIN;
  /** The single rule in OUTPUT that sends TCP into our chain. */
  jump: RuleArgs;
  /** Our chain's rules, in order: every exemption RETURNs before the REDIRECT rules. */
  rules: readonly RuleArgs[];
}

const LOOPBACK: Record<IpFamily, string> = { 4: '127.0.0.0/8', 6: '::1/128' };

export function buildFamilyRuleSet(family: IpFamily, options: RedirectOptions): FamilyRuleSet {
  const rules: RuleArgs[] = [
    ['-m', 'owner', '--uid-owner', String(options.proxyUid), '-j', 'RETURN'],
    ['-o', 'lo', '-j', 'RETURN'],
    ['-d', LOOPBACK[family], '-j', 'RETURN'],
    ...options.skipOutboundCidrs.filter((cidr) => cidr.family === family).map((cidr) => ['-d', formatCidr(cidr), '-j', 'RETURN']),
    ...options.skipOutboundPorts.map((port) => ['-p', 'tcp', '--dport', String(port), '-j', 'RETURN']),
  ];
  const redirect = ['-j', 'REDIRECT', '--to-ports', String(options.proxyPort)];
  if (options.outboundPorts.length === 0) rules.push(['-p', 'tcp', ...redirect]);
  else for (const port of options.outboundPorts) rules.push(['-p', 'tcp', '--dport', String(port), ...redirect]);
  return {
    family,
    tool: family === 4 ? 'iptables' : 'ip6tables',
    table: 'nat',
    hook: 'OUTPUT',
    chain: MESHLET_CHAIN,
    jump: ['-p', 'tcp', '-j', MESHLET_CHAIN],
    rules,
  };
}

/** IPv4 always; IPv6 when asked (the Pod has IPv6). */
export function buildRuleSets(options: RedirectOptions, families: readonly IpFamily[] = [4, 6]): FamilyRuleSet[] {
  return families.map((family) => buildFamilyRuleSet(family, options));
}

/**
 * iptables-restore input (used with --noflush) that (re)creates our chain with exactly these rules:
 * declaring the chain empties it if it exists, so applying twice leaves one set. The jump from
 * OUTPUT is included only when asked (apply.ts adds it when it is not there yet).
 */
export function formatRestoreInput(set: FamilyRuleSet, options: { includeJump: boolean }): string {
  const lines = [`*${set.table}`, `:${set.chain} - [0:0]`];
  if (options.includeJump) lines.push(formatRule(set.hook, set.jump));
  for (const rule of set.rules) lines.push(formatRule(set.chain, rule));
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

export function formatRule(chain: string, args: RuleArgs): string {
  return ['-A', chain, ...args].join(' ');
}

/** What `meshlet init --dry-run` prints: each family's rules as iptables-restore input. */
export function formatDryRun(sets: readonly FamilyRuleSet[]): string {
  return sets
    .map((set) => `# IPv${set.family}: ${set.tool}-restore --noflush\n${formatRestoreInput(set, { includeJump: true })}`)
    .join('\n');
}
