/**
 * What the terminal can show: colours and a live, redrawn chart on a TTY; plain lines otherwise
 * (piped output, CI logs, NO_COLOR, TERM=dumb, or --plain).
 */
export interface TerminalStyle {
  /** ANSI colours allowed. */
  color: boolean;
  /** Redraw the chart in place while an act runs (a TTY only). */
  live: boolean;
  /** Block characters for bars ("█") or plain "#". */
  blocks: boolean;
  columns: number;
}

export function detectTerminal(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv, forcePlain: boolean): TerminalStyle {
  const tty = stream.isTTY === true && env.TERM !== 'dumb' && !forcePlain;
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  return { color: tty && !noColor, live: tty, blocks: tty, columns: Math.max(60, Math.min(stream.columns || 80, 100)) };
}

const CODES = { red: 31, green: 32, yellow: 33, cyan: 36, dim: 2, bold: 1 } as const;
export type Paint = keyof typeof CODES;

export function paint(style: TerminalStyle, text: string, ...codes: Paint[]): string {
  if (!style.color || codes.length === 0) return text;
  return `\x1b[${codes.map((c) => CODES[c]).join(';')}m${text}\x1b[0m`;
}

/** A block of lines redrawn in place on a live terminal; printed once at `finish` otherwise. */
export class LiveBlock {
  private drawn = 0;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly style: TerminalStyle,
  ) {}

  update(lines: readonly string[]): void {
    if (!this.style.live) return;
    this.draw(lines);
  }

  finish(lines: readonly string[]): void {
    if (this.style.live) this.draw(lines);
    else this.out.write(lines.map((l) => `${l}\n`).join(''));
    this.drawn = 0;
  }

  private draw(lines: readonly string[]): void {
    const up = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    this.out.write(up + lines.map((l) => `\x1b[2K${l}\n`).join(''));
    this.drawn = lines.length;
  }
}
