import { readFileSync } from 'node:fs';
import { MissingPrerequisiteError } from '../../src/common/errors.js';
import type { Backend } from './iptables-tools.js';

/** Linux capability bits (include/uapi/linux/capability.h). */
const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

/** Capability bits from /proc/self/status ("CapEff:\t0000003fffffffff"). */
function readCapabilities(field: 'CapEff' | 'CapAmb'): bigint | undefined {
  try {
    const match = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? BigInt(`0x${match[1]}`) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Fails with a clear message when the iptables commands we start would lack NET_ADMIN (always
 * needed) or NET_RAW (the legacy back end opens a raw socket). As root, iptables inherits our
 * effective set; as any other user only ambient capabilities survive exec.
 */
export function checkCapabilities(backend: Backend): void {
  const uid = process.getuid?.() ?? 0;
  const field = uid === 0 ? 'CapEff' : 'CapAmb';
  const caps = readCapabilities(field);
  if (caps === undefined) return;
  const needed: Array<[string, number]> = [['NET_ADMIN', CAP_NET_ADMIN]];
  if (backend !== 'nft') needed.push(['NET_RAW', CAP_NET_RAW]);
  const missing = needed.filter(([, bit]) => (caps & (1n << BigInt(bit))) === 0n).map(([name]) => name);
  if (missing.length === 0) return;
  const set = caps.toString(16).padStart(16, '0');
  const where = uid === 0 ? `effective set ${set}` : `uid ${uid} is not root, so iptables would run with only its ambient set ${set}`;
  throw new MissingPrerequisiteError(
    `missing the ${missing.join(' and ')} capability (${where}): installing iptables rules needs NET_ADMIN and NET_RAW; ` +
      'run the init container as uid 0 with securityContext.capabilities.add: [NET_ADMIN, NET_RAW]',
  );
}

