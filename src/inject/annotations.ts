/**
 * Parses and validates the values of the meshlet.dev/* annotations. The keys, and the policy names
 * and log levels a value may be, are part of the contract (src/common/contract.ts).
 */
import { ANNOTATION, INJECT_DISABLED, INJECT_ENABLED, LB_POLICIES, LOG_LEVELS, MAX_SLOW_START_MS, type LbPolicyName, type LogLevel } from '../common/contract.js';
import { InvalidAnnotationError } from '../common/errors.js';
import { CIDR_LIST_ALLOWED, formatCidr, parseCidrList, parsePortList, PORT_LIST_ALLOWED } from '../common/values.js';
import { parseQuantity, QUANTITY_ALLOWED, type Quantity } from './quantity.js';

export const IMAGE_ALLOWED = 'an image reference with a tag or a digest, such as "registry.example/team/meshlet:0.1.0" or "name@sha256:<64 hex digits>"';

const NAME_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN_LABEL = '[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?';
const DOMAIN = `(?:${DOMAIN_LABEL}(?:\\.${DOMAIN_LABEL})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]{1,5})?`;
const TAG = ':[\\w][\\w.-]{0,127}';
const DIGEST = '@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
/** A tag or a digest is required: an untagged image means ":latest", which differs from node to node. */
const IMAGE_PATTERN = new RegExp(
  `^(?:${DOMAIN}/)?${NAME_COMPONENT}(?:/${NAME_COMPONENT})*(?:${TAG}(?:${DIGEST})?|${DIGEST})$`,
);
const MAX_IMAGE_LENGTH = 512;

export type InjectRequest = typeof INJECT_ENABLED | typeof INJECT_DISABLED | 'absent';

/** Reads meshlet.dev/inject; a value other than enabled/disabled is an error the Pod's owner must fix. */
export function parseInjectAnnotation(annotations: Readonly<Record<string, string>> | undefined): InjectRequest | InvalidAnnotationError {
  const value = annotations?.[ANNOTATION.inject];
  if (value === undefined) return 'absent';
  if (value === INJECT_ENABLED || value === INJECT_DISABLED) return value;
  return new InvalidAnnotationError(ANNOTATION.inject, value, `"${INJECT_ENABLED}" or "${INJECT_DISABLED}"`);
}

/** Per-Pod overrides: only the annotations that were set. */
export interface ProxyOverrides {
  proxyImage?: string;
  nativeSidecar?: boolean;
  cpuRequest?: Quantity;
  cpuLimit?: Quantity;
  memoryRequest?: Quantity;
  memoryLimit?: Quantity;
  logLevel?: LogLevel;
  lbPolicy?: LbPolicyName;
  /** Slow start of new endpoints in ms (0: off); absent: the proxy's default. */
  slowStartMs?: number;
  skipOutboundPorts?: number[];
  outboundPorts?: number[];
  skipOutboundCidrs?: string[];
}

export type OverridesResult = { ok: true; overrides: ProxyOverrides } | { ok: false; errors: InvalidAnnotationError[] };

/** Parses every meshlet.dev/* override on a Pod and reports every bad one, not just the first. */
export function parseOverrides(annotations: Readonly<Record<string, string>> | undefined): OverridesResult {
  const source = annotations ?? {};
  const overrides: ProxyOverrides = {};
  const errors: InvalidAnnotationError[] = [];
  const read = <T>(key: string, parse: (value: string) => { ok: true; value: T } | { ok: false; allowed: string }, assign: (value: T) => void) => {
    const raw = source[key];
    if (raw === undefined) return;
    const parsed = parse(raw);
    if (parsed.ok) assign(parsed.value);
    else errors.push(new InvalidAnnotationError(key, raw, parsed.allowed));
  };

  read(ANNOTATION.proxyImage, parseImage, (v) => (overrides.proxyImage = v));
  read(ANNOTATION.nativeSidecar, parseBooleanWord, (v) => (overrides.nativeSidecar = v));
  read(ANNOTATION.proxyCpuRequest, (v) => parseBoundedQuantity(v, CPU_REQUEST_BOUNDS), (v) => (overrides.cpuRequest = v));
  read(ANNOTATION.proxyCpuLimit, (v) => parseBoundedQuantity(v, CPU_LIMIT_BOUNDS), (v) => (overrides.cpuLimit = v));
  read(ANNOTATION.proxyMemoryRequest, (v) => parseBoundedQuantity(v, MEMORY_REQUEST_BOUNDS), (v) => (overrides.memoryRequest = v));
  read(ANNOTATION.proxyMemoryLimit, (v) => parseBoundedQuantity(v, MEMORY_LIMIT_BOUNDS), (v) => (overrides.memoryLimit = v));
  read(ANNOTATION.proxyLogLevel, (v) => parseOneOf(v, LOG_LEVELS), (v) => (overrides.logLevel = v));
  read(ANNOTATION.lbPolicy, (v) => parseOneOf(v, LB_POLICIES), (v) => (overrides.lbPolicy = v));
  read(ANNOTATION.slowStartMs, parseSlowStartMs, (v) => (overrides.slowStartMs = v));
  read(ANNOTATION.skipOutboundPorts, parseNonEmptyPorts, (v) => (overrides.skipOutboundPorts = v));
  read(ANNOTATION.outboundPorts, parseNonEmptyPorts, (v) => (overrides.outboundPorts = v));
  read(ANNOTATION.skipOutboundCidrs, parseNonEmptyCidrs, (v) => (overrides.skipOutboundCidrs = v));

  checkRequestWithinLimit(source, ANNOTATION.proxyCpuRequest, overrides.cpuRequest, overrides.cpuLimit, ANNOTATION.proxyCpuLimit, errors);
  checkRequestWithinLimit(source, ANNOTATION.proxyMemoryRequest, overrides.memoryRequest, overrides.memoryLimit, ANNOTATION.proxyMemoryLimit, errors);
  return errors.length === 0 ? { ok: true, overrides } : { ok: false, errors };
}

export function parseImage(text: string): { ok: true; value: string } | { ok: false; allowed: string } {
  const trimmed = text.trim();
  return trimmed.length <= MAX_IMAGE_LENGTH && IMAGE_PATTERN.test(trimmed) ? { ok: true, value: trimmed } : { ok: false, allowed: IMAGE_ALLOWED };
}

export function parseOneOf<T extends string>(text: string, allowed: readonly T[]): { ok: true; value: T } | { ok: false; allowed: string } {
  const trimmed = text.trim();
  return (allowed as readonly string[]).includes(trimmed) ? { ok: true, value: trimmed as T } : { ok: false, allowed: `one of ${allowed.join(', ')}` };
}

function parseSlowStartMs(text: string): { ok: true; value: number } | { ok: false; allowed: string } {
  const trimmed = text.trim();
  const n = /^\d{1,7}$/.test(trimmed) ? Number(trimmed) : NaN;
  if (n >= 0 && n <= MAX_SLOW_START_MS) return { ok: true, value: n };
  return { ok: false, allowed: `a whole number of milliseconds from 0 (off) to ${MAX_SLOW_START_MS}` };
}

function parseBooleanWord(text: string): { ok: true; value: boolean } | { ok: false; allowed: string } {
  const trimmed = text.trim();
  if (trimmed === 'true') return { ok: true, value: true };
  if (trimmed === 'false') return { ok: true, value: false };
  return { ok: false, allowed: '"true" or "false"' };
}

/** Inclusive bounds of one resource annotation, in base units (cores or bytes), and how to say them. */
interface QuantityBounds {
  min: number;
  max: number;
  allowed: string;
}

const MEBIBYTE_BYTES = 2 ** 20;
const GIBIBYTE_BYTES = 2 ** 30;
/** Larger than any node a sidecar runs on: a value beyond it is a typo (1e100), not a wish. */
const MAX_PROXY_CPU_CORES = 64;
const MAX_PROXY_MEMORY_BYTES = 64 * GIBIBYTE_BYTES;
/**
 * The proxy is a Node process: about 40 MiB before it does anything, 55 MiB idle and up to 70 MiB
 * under load (README, Benchmark). A limit below 128 MiB gets it OOM-killed, and the Pod's outbound
 * traffic with it.
 */
export const MIN_PROXY_MEMORY_LIMIT_BYTES = 128 * MEBIBYTE_BYTES;
/** Below 10 millicores the proxy is throttled so hard that every request waits on the CFS period. */
export const MIN_PROXY_CPU_LIMIT_CORES = 0.01;

export const CPU_REQUEST_BOUNDS: QuantityBounds = { min: 0, max: MAX_PROXY_CPU_CORES, allowed: `a CPU quantity from 0 to ${MAX_PROXY_CPU_CORES} (cores), e.g. "50m"` };
export const CPU_LIMIT_BOUNDS: QuantityBounds = {
  min: MIN_PROXY_CPU_LIMIT_CORES,
  max: MAX_PROXY_CPU_CORES,
  allowed: `a CPU quantity from 10m to ${MAX_PROXY_CPU_CORES} (cores), e.g. "1"`,
};
export const MEMORY_REQUEST_BOUNDS: QuantityBounds = { min: 0, max: MAX_PROXY_MEMORY_BYTES, allowed: 'a memory quantity from 0 to 64Gi, e.g. "64Mi"' };
export const MEMORY_LIMIT_BOUNDS: QuantityBounds = {
  min: MIN_PROXY_MEMORY_LIMIT_BYTES,
  max: MAX_PROXY_MEMORY_BYTES,
  allowed: 'a memory quantity from 128Mi (what the proxy needs under load, with headroom) to 64Gi, e.g. "256Mi"',
};

function parseBoundedQuantity(text: string, bounds: QuantityBounds): { ok: true; value: Quantity } | { ok: false; allowed: string } {
  const parsed = parseQuantity(text);
  if (!parsed.ok) return { ok: false, allowed: `${QUANTITY_ALLOWED}; here ${bounds.allowed}` };
  const value = parsed.value.value;
  return value >= bounds.min && value <= bounds.max ? parsed : { ok: false, allowed: bounds.allowed };
}

/**
 * A port list as a person means it: "80", "80,443" or "80, 443". Anything looser ("80,", " 80",
 * "80,,443", "80 ,443", "080", a port twice) is refused: it is a typo more often than not, and
 * the owner should hear about it at admission, not find a port left unredirected.
 */
const STRICT_PORT_LIST = /^[1-9]\d{0,4}(?:, ?[1-9]\d{0,4})*$/;
const STRICT_PORT_LIST_ALLOWED = `${PORT_LIST_ALLOWED}; a space may follow a comma, nothing else: no empty items, no leading zeros, no port twice`;

function parseNonEmptyPorts(text: string): { ok: true; value: number[] } | { ok: false; allowed: string } {
  if (!STRICT_PORT_LIST.test(text)) return { ok: false, allowed: STRICT_PORT_LIST_ALLOWED };
  const parsed = parsePortList(text);
  if (!parsed.ok) return { ok: false, allowed: STRICT_PORT_LIST_ALLOWED };
  if (parsed.value.length !== text.split(',').length) return { ok: false, allowed: STRICT_PORT_LIST_ALLOWED };
  return parsed;
}

/** A CIDR list: items separated by a comma (a space after it is fine); no empty items, nothing around it. */
const CIDR_LIST_SHAPE = /^[^,\s]+(?:, ?[^,\s]+)*$/;

function parseNonEmptyCidrs(text: string): { ok: true; value: string[] } | { ok: false; allowed: string } {
  if (!CIDR_LIST_SHAPE.test(text)) return { ok: false, allowed: `${CIDR_LIST_ALLOWED}, with no empty items and no spaces around the list` };
  const parsed = parseCidrList(text);
  if (!parsed.ok) return parsed;
  if (parsed.value.length === 0) return { ok: false, allowed: CIDR_LIST_ALLOWED };
  return { ok: true, value: parsed.value.map(formatCidr) };
}

function checkRequestWithinLimit(
  source: Readonly<Record<string, string>>,
  requestKey: string,
  request: Quantity | undefined,
  limit: Quantity | undefined,
  limitKey: string,
  errors: InvalidAnnotationError[],
): void {
  if (request && limit && request.value > limit.value) {
    errors.push(new InvalidAnnotationError(requestKey, source[requestKey]!, `a quantity no larger than ${limitKey} ("${limit.text}")`));
  }
}
