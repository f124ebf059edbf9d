import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostPort } from '../../src/common/values.js';

/**
 * Where a redirected connection was headed before iptables sent it to the proxy: the kernel keeps
 * it in conntrack and hands it out through getsockopt(SO_ORIGINAL_DST) (IPv4) or
 * getsockopt(IP6T_SO_ORIGINAL_DST) (IPv6). Node has no API for that, so our small N-API addon
 * (sidecar/native, built by node-gyp during `npm ci`) makes the one call.
 */

/** The file node-gyp builds from binding.gyp's target `meshlet_original_dst`. */
export const ADDON_FILE = 'meshlet_original_dst.node';

interface OriginalDstAddon {
  /** The original destination of the TCP socket `fd`, or null when it was not redirected. Throws with `code` on other errors. */
  originalDst(fd: number): { host: string; port: number } | null;
}

type AddonState = { addon: OriginalDstAddon } | { addon: undefined; reason: string };

let state: AddonState | undefined;

/** The addon's build directory, from source (sidecar/accept), from the bundle (dist/meshlet) or from dist/sidecar/accept. */
function addonCandidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '..', '..', 'build', 'Release', ADDON_FILE), join(here, '..', '..', '..', 'build', 'Release', ADDON_FILE)];
}

function loadAddon(): AddonState {
  if (process.platform !== 'linux') return { addon: undefined, reason: `SO_ORIGINAL_DST exists only on Linux (this is ${process.platform})` };
  const candidates = addonCandidates();
  const path = candidates.find((candidate) => existsSync(candidate));
  if (path === undefined) {
    return {
      addon: undefined,
      reason: `native addon ${ADDON_FILE} is not built (looked in ${candidates.join(', ')}); run 'npx node-gyp rebuild' with python3, make and g++ installed`,
    };
  }
  try {
    const addon = createRequire(import.meta.url)(path) as OriginalDstAddon;
    if (typeof addon.originalDst !== 'function') return { addon: undefined, reason: `native addon ${path} does not export originalDst()` };
    return { addon };
  } catch (err) {
    return { addon: undefined, reason: `native addon ${path} failed to load: ${(err as Error).message}` };
  }
}

function addonState(): AddonState {
  state ??= loadAddon();
  return state;
}

/**
 * Whether original destinations can be recovered at all. When not, the proxy says so once at start
 * and still balances traffic whose authority it can resolve.
 */
export function originalDstSupport(): { available: boolean; reason?: string } {
  const current = addonState();
  return current.addon ? { available: true } : { available: false, reason: current.reason };
}

/**
 * The address the client dialled before iptables redirected its connection to us, or undefined
 * when the connection was not redirected (standalone mode), the socket is closed, or the addon is
 * missing. Never throws.
 */
export function readOriginalDst(socket: Socket): HostPort | undefined {
  const current = addonState();
  if (!current.addon) return undefined;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    const dst = current.addon.originalDst(fd);
    if (dst === null || isOwnAddress(socket, dst)) return undefined;
    return { host: dst.host, port: dst.port };
  } catch {
    return undefined;
  }
}

/**
 * With conntrack active, a connection that was not redirected still has an entry, and the kernel
 * reports its unchanged destination: our own listening address. That is not an original destination.
 */
function isOwnAddress(socket: Socket, dst: { host: string; port: number }): boolean {
  return dst.port === socket.localPort && dst.host === unmapIPv4(socket.localAddress ?? '');
}

/** "::ffff:127.0.0.1" (an IPv4 peer on a dual-stack socket) → "127.0.0.1". */
function unmapIPv4(address: string): string {
  return address.toLowerCase().startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
