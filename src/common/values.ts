import { isIP } from 'node:net';

/**
 * Parsers for the values users write in flags, MESHLET_* variables and meshlet.dev/* annotations.
 * Each returns `{ ok: true, value }` or `{ ok: false, allowed }`, where `allowed` says in words
 * what would have been accepted; callers turn that into their own error (a denied Pod, a flag error).
 */
export type Parsed<T> = { ok: true; value: T } | { ok: false; allowed: string };

export const PORT_ALLOWED = 'a whole number from 1 to 65535';
export const PORT_LIST_ALLOWED = 'comma-separated ports, each a whole number from 1 to 65535 (e.g. "80,443")';
export const CIDR_LIST_ALLOWED = 'comma-separated IPv4 or IPv6 CIDRs (e.g. "198.18.0.0/15,fd00::/8")';
export const HOST_PORT_ALLOWED = 'HOST:PORT, e.g. 127.0.0.1:15001 or [::1]:15001';

export function parsePort(text: string): Parsed<number> {
  const trimmed = text.trim();
  if (!/^\d{1,5}$/.test(trimmed)) return { ok: false, allowed: PORT_ALLOWED };
  const port = Number(trimmed);
  return port >= 1 && port <= 65535 ? { ok: true, value: port } : { ok: false, allowed: PORT_ALLOWED };
}

/** "80,443, 8080" → [80, 443, 8080]; an empty string is an empty list. Duplicates are dropped. */
export function parsePortList(text: string): Parsed<number[]> {
  const ports = new Set<number>();
  for (const part of splitList(text)) {
    const port = parsePort(part);
    if (!port.ok) return { ok: false, allowed: PORT_LIST_ALLOWED };
    ports.add(port.value);
  }
  return { ok: true, value: [...ports] };
}

export interface Cidr {
  address: string;
  prefix: number;
  family: 4 | 6;
}

export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefix}`;
}

/** "198.18.0.0/15, fd00::/8" → CIDRs; a bare address counts as /32 or /128. */
export function parseCidrList(text: string): Parsed<Cidr[]> {
  const cidrs: Cidr[] = [];
  for (const part of splitList(text)) {
    const [address, prefixText, extra] = part.split('/');
    const family = isIP(address ?? '');
    if (extra !== undefined || (family !== 4 && family !== 6)) return { ok: false, allowed: CIDR_LIST_ALLOWED };
    const max = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? max : Number(prefixText);
    if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return { ok: false, allowed: CIDR_LIST_ALLOWED };
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return { ok: false, allowed: CIDR_LIST_ALLOWED };
    cidrs.push({ address: address!, prefix, family });
  }
  return { ok: true, value: cidrs };
}

export interface HostPort {
  host: string;
  port: number;
}

/** "127.0.0.1:15001", "[::1]:80", "localhost:8080" → { host, port } (brackets removed from IPv6). */
export function parseHostPort(text: string): Parsed<HostPort> {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!match) return { ok: false, allowed: HOST_PORT_ALLOWED };
  const host = match[1] ?? match[2]!;
  if (match[1] !== undefined && isIP(host) !== 6) return { ok: false, allowed: HOST_PORT_ALLOWED };
  const port = parsePort(match[3]!);
  return port.ok ? { ok: true, value: { host, port: port.value } } : { ok: false, allowed: HOST_PORT_ALLOWED };
}

/** The inverse of parseHostPort: brackets around IPv6 addresses. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}
