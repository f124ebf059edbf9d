import { formatMs, formatPercent } from '../src/diagnose/shares.js';
import type { ActResult } from './acts.js';
import { paint, type TerminalStyle } from './terminal.js';

/** The closing table: one row per act. */
export function renderSummary(results: readonly ActResult[], style: TerminalStyle): string[] {
  const header = ['ACT', 'BALANCING', 'REQUESTS', 'SPLIT', 'CV', 'P50', 'P99', 'ERRORS', 'RESULT'];
  const rows = results.map((r) => {
    const shares = r.analysis.endpoints.map((e) => e.share);
    return [
      String(r.act),
      r.balancer,
      String(r.analysis.totalRequests),
      shares.length ? `${formatPercent(Math.min(...shares))}–${formatPercent(Math.max(...shares))}` : '-',
      r.analysis.cv.toFixed(2),
      formatMs(r.p50Ms),
      formatMs(r.p99Ms),
      String(r.errors),
      !r.asExpected ? 'unexpected' : r.act === 1 ? 'problem shown' : 'as expected',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const right = new Set([2, 3, 4, 5, 6, 7]);
  const line = (row: string[]) => '  ' + row.map((cell, i) => (right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return [paint(style, line(header), 'bold'), ...rows.map((row, i) => (results[i]!.asExpected ? line(row) : paint(style, line(row), 'red')))];
}
