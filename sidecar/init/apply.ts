import { readFileSync } from 'node:fs';
import { MissingPrerequisiteError } from '../../src/common/errors.js';
import type { Toolset } from './backend.js';
import { FAMILY_TOOL, isPermissionFailure, runCommand, toolFailure, XTABLES_LOCK_WAIT_S, type FamilyTools } from './iptables-tools.js';
import { formatRestoreInput, MESHLET_CHAIN, type FamilyRuleSet, type IpFamily } from './rules.js';

/**
 * Installs and removes the rule sets of rules.ts, idempotently: our chain is rebuilt atomically
 * with iptables-restore --noflush and the jump from OUTPUT is added only when missing, so running
 * twice leaves one set.
 */

/** Upper bound on jumps removed from OUTPUT (there is normally one). */
const MAX_JUMP_REMOVALS = 16;

function familyTools(toolset: Toolset, family: IpFamily): FamilyTools {
  const tools = toolset.families[family];
  if (!tools) throw new MissingPrerequisiteError(`${FAMILY_TOOL[family]} (${toolset.backend} back end) is not installed`);
  return tools;
}

async function chainExists(tools: FamilyTools): Promise<boolean> {
  const result = await runCommand(tools.cmd, ['-w', String(XTABLES_LOCK_WAIT_S), '-t', 'nat', '-S', MESHLET_CHAIN]);
  if (result.code === 0) return true;
  if (isPermissionFailure(result.stderr)) throw toolFailure(`${tools.cmd} -t nat -S ${MESHLET_CHAIN}`, result);
  return false;
}

async function jumpExists(tools: FamilyTools, jump: readonly string[]): Promise<boolean> {
  const result = await runCommand(tools.cmd, ['-w', String(XTABLES_LOCK_WAIT_S), '-t', 'nat', '-C', 'OUTPUT', ...jump]);
  if (result.code === 0) return true;
  if (isPermissionFailure(result.stderr)) throw toolFailure(`${tools.cmd} -t nat -C OUTPUT`, result);
  return false;
}

export interface ApplyOutcome {
  family: IpFamily;
  /** False when the jump from OUTPUT was already there (a re-run). */
  jumpAdded: boolean;
  rules: number;
}

/** Installs one family's rule set atomically; safe to repeat. */
export async function applyRuleSet(toolset: Toolset, set: FamilyRuleSet): Promise<ApplyOutcome> {
  const tools = familyTools(toolset, set.family);
  const hasJump = (await chainExists(tools)) && (await jumpExists(tools, set.jump));
  const input = formatRestoreInput(set, { includeJump: !hasJump });
  const result = await runCommand(tools.restore, ['--noflush', '-w', String(XTABLES_LOCK_WAIT_S)], input);
  if (result.code !== 0) {
    const hint = set.family === 6 ? ' (if this node has no IPv6 NAT, run meshlet init with --no-ipv6)' : '';
    throw toolFailure(`${tools.restore} --noflush${hint}`, result);
  }
  return { family: set.family, jumpAdded: !hasJump, rules: set.rules.length };
}

export interface RemoveOutcome {
  family: IpFamily;
  /** False when there was nothing to remove. */
  removed: boolean;
}

/** Removes the jump(s) from OUTPUT and our chain; safe to repeat. */
export async function removeRuleSet(toolset: Toolset, set: FamilyRuleSet): Promise<RemoveOutcome> {
  const tools = familyTools(toolset, set.family);
  if (!(await chainExists(tools))) return { family: set.family, removed: false };
  const wait = ['-w', String(XTABLES_LOCK_WAIT_S), '-t', 'nat'];
  for (let i = 0; i < MAX_JUMP_REMOVALS && (await jumpExists(tools, set.jump)); i++) {
    const result = await runCommand(tools.cmd, [...wait, '-D', 'OUTPUT', ...set.jump]);
    if (result.code !== 0) throw toolFailure(`${tools.cmd} -t nat -D OUTPUT`, result);
  }
  for (const op of ['-F', '-X']) {
    const result = await runCommand(tools.cmd, [...wait, op, MESHLET_CHAIN]);
    if (result.code !== 0) throw toolFailure(`${tools.cmd} -t nat ${op} ${MESHLET_CHAIN}`, result);
  }
  return { family: set.family, removed: true };
}

/** Whether this network namespace has IPv6 (the kernel has it and it is not disabled). */
export function hasIPv6(): boolean {
  try {
    return readFileSync('/proc/sys/net/ipv6/conf/all/disable_ipv6', 'utf8').trim() === '0';
  } catch {
    return false;
  }
}
