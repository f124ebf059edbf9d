import type { Parsed } from '../common/values.js';

export const DURATION_ALLOWED = 'a duration such as "500ms", "10s" or "2m" (0 reads totals since each sidecar started)';
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };
/** The longest window diagnose waits between its two scrapes. */
export const MAX_WINDOW_MS = 10 * 60_000;

/** "10s" → 10000. Bare 0 is allowed; other bare numbers are not (ambiguous unit). */
export function parseWindow(text: string): Parsed<number> {
  const trimmed = text.trim();
  if (trimmed === '0') return { ok: true, value: 0 };
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(trimmed);
  if (!match) return { ok: false, allowed: DURATION_ALLOWED };
  const ms = Math.round(Number(match[1]) * UNIT_MS[match[2]!]!);
  return ms <= MAX_WINDOW_MS ? { ok: true, value: ms } : { ok: false, allowed: `${DURATION_ALLOWED}, at most 10m` };
}
