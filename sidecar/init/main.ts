import { collectProblems, type CommandSpec, type ParsedCommand } from '../../src/common/config.js';
import { PROXY_OUTBOUND_PORT, PROXY_UID } from '../../src/common/contract.js';
import { createLineLogger } from '../log/line-logger.js';
import {
  CIDR_LIST_ALLOWED,
  parseCidrList,
  parsePort,
  parsePortList,
  PORT_ALLOWED,
  PORT_LIST_ALLOWED,
  type Cidr,
} from '../../src/common/values.js';
import { applyRuleSet, hasIPv6, removeRuleSet } from './apply.js';
import { BACKEND_CHOICES, detectToolset, type BackendChoice } from './backend.js';
import { checkCapabilities } from './capabilities.js';
import { buildRuleSets, formatDryRun, MESHLET_CHAIN, type IpFamily, type RedirectOptions } from './rules.js';

/** `meshlet init`: the init container's program. Installs (or removes) the Pod's outbound redirect. */
export const command: CommandSpec = {
  name: 'init',
  summary: "Install the Pod's outbound redirect rules: TCP leaving the Pod goes to the proxy, except the proxy's own.",
  flags: {
    'proxy-uid': { type: 'string', placeholder: 'UID', default: String(PROXY_UID), description: "The proxy's UID; its own connections are never redirected" },
    'proxy-port': { type: 'string', placeholder: 'PORT', default: String(PROXY_OUTBOUND_PORT), description: 'Where redirected connections go (127.0.0.1 / ::1)' },
    'outbound-ports': { type: 'string', placeholder: 'P,..', description: 'Redirect only these destination ports (default: every port)' },
    'skip-outbound-ports': { type: 'string', placeholder: 'P,..', description: 'Never redirect these destination ports' },
    'skip-outbound-cidrs': { type: 'string', placeholder: 'C,..', description: 'Never redirect connections to these IPv4/IPv6 CIDRs' },
    ipv6: { type: 'boolean', default: true, description: 'Also install ip6tables rules when the Pod has IPv6 (--no-ipv6 to skip)' },
    'iptables-backend': { type: 'string', placeholder: 'auto|nft|legacy', default: 'auto', description: 'iptables back end; auto uses the one the node uses' },
    remove: { type: 'boolean', default: false, description: 'Remove the rules instead of installing them' },
    'dry-run': { type: 'boolean', default: false, description: 'Print the rules (iptables-restore input) and change nothing' },
  },
  details: `Rules live in the nat table in a chain of their own (${MESHLET_CHAIN}), jumped to once from OUTPUT; running
meshlet init again rebuilds that chain, so there is always exactly one set. Exempt, in this order: the
proxy's UID, loopback, --skip-outbound-cidrs, --skip-outbound-ports; then TCP to --outbound-ports (or to
every port) is redirected. Needs NET_ADMIN and NET_RAW (run as uid 0 with only those capabilities).`,
};

export interface InitConfig extends RedirectOptions {
  ipv6: boolean;
  backend: BackendChoice;
  remove: boolean;
  dryRun: boolean;
}

const UID_ALLOWED = 'a whole number from 1 to 4294967294 (the non-root UID the proxy runs as)';

/** Flags → InitConfig; every bad value is reported at once. */
export function parseInitConfig(parsed: ParsedCommand): InitConfig {
  const text = (name: string): string => (typeof parsed.values[name] === 'string' ? (parsed.values[name] as string) : '');
  const uidText = text('proxy-uid').trim();
  const uid = /^\d{1,10}$/.test(uidText) ? Number(uidText) : NaN;
  const port = parsePort(text('proxy-port'));
  const outbound = parsePortList(text('outbound-ports'));
  const skipPorts = parsePortList(text('skip-outbound-ports'));
  const skipCidrs = parseCidrList(text('skip-outbound-cidrs'));
  const backend = text('iptables-backend') as BackendChoice;
  const bad = (flag: string, allowed: string) => `--${flag}: "${text(flag)}" is not valid; allowed: ${allowed}`;
  collectProblems([
    () => (uid >= 1 && uid <= 4294967294 ? undefined : bad('proxy-uid', UID_ALLOWED)),
    () => (port.ok ? undefined : bad('proxy-port', PORT_ALLOWED)),
    () => (outbound.ok ? undefined : bad('outbound-ports', PORT_LIST_ALLOWED)),
    () => (skipPorts.ok ? undefined : bad('skip-outbound-ports', PORT_LIST_ALLOWED)),
    () => (skipCidrs.ok ? undefined : bad('skip-outbound-cidrs', CIDR_LIST_ALLOWED)),
    () => (BACKEND_CHOICES.includes(backend) ? undefined : bad('iptables-backend', BACKEND_CHOICES.join(', '))),
    () => (parsed.positionals.length === 0 ? undefined : `meshlet init takes no arguments; got "${parsed.positionals.join(' ')}"`),
  ]);
  return {
    proxyUid: uid,
    proxyPort: (port as { value: number }).value,
    outboundPorts: (outbound as { value: number[] }).value,
    skipOutboundPorts: (skipPorts as { value: number[] }).value,
    skipOutboundCidrs: (skipCidrs as { value: Cidr[] }).value,
    ipv6: parsed.values.ipv6 === true,
    backend,
    remove: parsed.values.remove === true,
    dryRun: parsed.values['dry-run'] === true,
  };
}

export async function run(parsed: ParsedCommand): Promise<number> {
  const config = parseInitConfig(parsed);
  if (config.dryRun) {
    const families: IpFamily[] = config.ipv6 ? [4, 6] : [4];
    process.stdout.write(formatDryRun(buildRuleSets(config, families)));
    return 0;
  }
  const log = createLineLogger().child({ component: 'init' });
  const families: IpFamily[] = config.ipv6 && hasIPv6() ? [4, 6] : [4];
  if (config.ipv6 && families.length === 1) log.info({ reason: 'IPv6 is disabled in this network namespace' }, 'ipv6 rules skipped');
  checkCapabilities('nft');
  const toolset = await detectToolset(config.backend, families);
  checkCapabilities(toolset.backend);
  log.info({ backend: toolset.backend, reason: toolset.reason }, 'iptables back end');
  for (const set of buildRuleSets(config, families)) {
    if (config.remove) {
      const outcome = await removeRuleSet(toolset, set);
      log.info({ family: outcome.family, chain: set.chain, removed: outcome.removed }, outcome.removed ? 'rules removed' : 'no rules to remove');
    } else {
      const outcome = await applyRuleSet(toolset, set);
      log.info({ family: outcome.family, chain: set.chain, rules: outcome.rules, jumpAdded: outcome.jumpAdded }, 'rules installed');
    }
  }
  log.flush();
  return 0;
}
