import { formatPercent } from '../src/diagnose/shares.js';
import { paint, type Paint, type TerminalStyle } from './terminal.js';

export interface ChartRow {
  name: string;
  requests: number;
  /** A short note after the bar, e.g. "new", "slow +50 ms". */
  note?: string;
  color?: Paint;
}

/** Requests per backend as horizontal bars scaled to the busiest one, with counts and shares. */
export function renderChart(rows: readonly ChartRow[], style: TerminalStyle): string[] {
  const total = rows.reduce((a, r) => a + r.requests, 0);
  const max = Math.max(1, ...rows.map((r) => r.requests));
  const nameWidth = Math.max(...rows.map((r) => r.name.length));
  const barWidth = Math.max(10, style.columns - nameWidth - 36);
  return rows.map((r) => {
    const length = Math.round((r.requests / max) * barWidth);
    const [filled, empty] = style.blocks ? ['█', '·'] : ['#', '.'];
    const bar = paint(style, filled.repeat(length), r.color ?? 'cyan') + paint(style, empty.repeat(barWidth - length), 'dim');
    const share = total > 0 ? formatPercent(r.requests / total) : '-';
    const note = r.note ? `  ${paint(style, r.note, 'yellow')}` : '';
    return `  ${r.name.padEnd(nameWidth)} ${bar} ${String(r.requests).padStart(7)} ${share.padStart(4)}${note}`;
  });
}
