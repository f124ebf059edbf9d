import { MissingPrerequisiteError } from '../../src/common/errors.js';
import { EXTRA_DIRS, FAMILY_TOOL, findFamilyTools, isPermissionFailure, runCommand, toolFailure, type Backend, type FamilyTools } from './iptables-tools.js';
import { MESHLET_CHAIN, type IpFamily } from './rules.js';

/**
 * Which iptables back end (nft or legacy) this network namespace uses. Both may be installed, and
 * rules written with one are invisible to the other, so we must use the one the node already uses.
 */

export type BackendChoice = Backend | 'auto';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'nft', 'legacy'];

export interface Toolset {
  backend: Backend;
  /** How the back end was chosen, for the log line. */
  reason: string;
  families: Partial<Record<IpFamily, FamilyTools>>;
}

interface BackendProbe {
  backend: Backend;
  tools: FamilyTools;
  ruleCount: number;
  hasOurChain: boolean;
}

async function probeBackend(backend: Backend): Promise<BackendProbe | undefined> {
  const tools = await findFamilyTools(backend, 4);
  if (!tools) return undefined;
  const saved = await runCommand(tools.save, []);
  if (saved.code !== 0) {
    if (isPermissionFailure(saved.stderr)) throw toolFailure(`${tools.save}`, saved);
    return undefined;
  }
  const lines = saved.stdout.split('\n');
  return {
    backend,
    tools,
    ruleCount: lines.filter((line) => line.startsWith('-A ')).length,
    hasOurChain: lines.some((line) => line.startsWith(`:${MESHLET_CHAIN} `)),
  };
}

/**
 * Picks the back end: the one already holding our chain (a re-run), else the one holding rules
 * (the node's kube-proxy or CNI wrote them), else nft when it works, else legacy.
 */
export async function detectToolset(choice: BackendChoice, families: readonly IpFamily[]): Promise<Toolset> {
  const candidates: Backend[] = choice === 'auto' ? ['nft', 'legacy'] : [choice];
  const probes: BackendProbe[] = [];
  for (const backend of candidates) {
    const probe = await probeBackend(backend);
    if (probe) probes.push(probe);
  }
  if (probes.length === 0) {
    const names = candidates.map((b) => `iptables-${b}`).join(', ');
    throw new MissingPrerequisiteError(
      `no usable iptables found (looked for ${names} and iptables on PATH and in ${EXTRA_DIRS.join(', ')}); ` +
        'meshlet init needs the iptables package (nft or legacy back end) in its image',
    );
  }
  const ours = probes.find((p) => p.hasOurChain);
  const busiest = [...probes].sort((a, b) => b.ruleCount - a.ruleCount)[0]!;
  const chosen = ours ?? (busiest.ruleCount > 0 ? busiest : probes[0]!);
  const reason =
    choice !== 'auto'
      ? 'requested'
      : ours
        ? `already holds ${MESHLET_CHAIN}`
        : busiest.ruleCount > 0
          ? `holds ${busiest.ruleCount} existing rules`
          : 'no rules anywhere yet; preferred';
  const toolset: Toolset = { backend: chosen.backend, reason, families: { 4: chosen.tools } };
  for (const family of families) {
    if (family === 4) continue;
    const tools = await findFamilyTools(chosen.backend, family);
    if (!tools) throw new MissingPrerequisiteError(`${FAMILY_TOOL[family]} (${chosen.backend} back end) is not installed but the Pod has IPv${family}`);
    toolset.families[family] = tools;
  }
  return toolset;
}

