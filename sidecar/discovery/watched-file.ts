import { readFile } from 'node:fs/promises';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import type { Logger } from '../../src/common/log-format.js';
import { InvalidDiscoveryInputError } from './errors.js';

/** How often a watched file is checked; a change takes effect within this (plus a read). */
export const FILE_POLL_INTERVAL_MS = 250;

export type FileParse<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/**
 * A JSON file that is read at start (failing loudly when unusable) and re-read whenever it changes.
 * Polling by stat follows editors that write a new file and rename it, and ConfigMap volumes that swap
 * a symlink; a bad edit is logged with what is wrong and the last good value stays in use.
 */
export class WatchedJsonFile<T> {
  private lastText: string | undefined;
  private closed = false;
  private reading: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly parse: (json: unknown) => FileParse<T>,
    private readonly onChange: (value: T) => void,
    private readonly log: Logger,
  ) {}

  /** Reads and parses the file once (throws InvalidDiscoveryInputError), then watches it. */
  static async open<T>(path: string, parse: (json: unknown) => FileParse<T>, onChange: (value: T) => void, log: Logger, intervalMs = FILE_POLL_INTERVAL_MS): Promise<WatchedJsonFile<T>> {
    const file = new WatchedJsonFile(path, parse, onChange, log);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new InvalidDiscoveryInputError(path, [`cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`], { cause: err });
    }
    const result = file.parseText(text);
    if (!result.ok) throw new InvalidDiscoveryInputError(path, result.problems);
    file.lastText = text;
    onChange(result.value);
    watchFile(path, { interval: intervalMs, persistent: false }, file.listener);
    return file;
  }

  private readonly listener = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs === previous.mtimeMs && current.size === previous.size && current.ino === previous.ino) return;
    this.reading = this.reading.then(() => this.reload());
  };

  /** Re-reads now (also what the poll calls); resolves once the new content is applied or rejected. */
  async reload(): Promise<void> {
    if (this.closed) return;
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.log.warn({ file: this.path, err, code }, 'file unreadable, keeping last good set');
      return;
    }
    if (this.closed || text === this.lastText) return;
    const result = this.parseText(text);
    this.lastText = text;
    if (!result.ok) {
      this.log.error({ file: this.path, problems: result.problems }, 'bad edit ignored, keeping last good set');
      return;
    }
    this.log.info({ file: this.path }, 'file reloaded');
    this.onChange(result.value);
  }

  close(): void {
    this.closed = true;
    unwatchFile(this.path, this.listener);
  }

  private parseText(text: string): FileParse<T> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      return { ok: false, problems: [`not valid JSON: ${(err as Error).message}`] };
    }
    return this.parse(json);
  }
}

