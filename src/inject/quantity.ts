import type { Parsed } from '../common/values.js';

export const QUANTITY_ALLOWED =
  'a Kubernetes quantity: a non-negative number with an optional suffix Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E or an exponent (e.g. "100m", "0.5", "64Mi", "1e3")';

const QUANTITY_PATTERN = /^\+?(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

const SUFFIX_MULTIPLIERS: Record<string, number> = {
  '': 1,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** A validated Kubernetes resource quantity: the text as written and its value in base units. */
export interface Quantity {
  text: string;
  value: number;
}

/**
 * Validates a Kubernetes resource quantity (the grammar of k8s.io/apimachinery resource.Quantity,
 * without negative values, which no container resource accepts).
 */
export function parseQuantity(text: string): Parsed<Quantity> {
  const trimmed = text.trim();
  const match = QUANTITY_PATTERN.exec(trimmed);
  if (!match) return { ok: false, allowed: QUANTITY_ALLOWED };
  const mantissa = Number(match[1]);
  const suffix = match[2] ?? '';
  const multiplier = SUFFIX_MULTIPLIERS[suffix] ?? 10 ** Number(suffix.slice(1));
  const value = mantissa * multiplier;
  if (!Number.isFinite(value)) return { ok: false, allowed: QUANTITY_ALLOWED };
  return { ok: true, value: { text: trimmed, value } };
}
