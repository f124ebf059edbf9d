import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import { MissingPrerequisiteError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/** Files are re-read this long after the last change event (a Secret update touches several). */
const RELOAD_DEBOUNCE_MS = 100;
/** Safety net for file systems whose change events are unreliable. */
export const CERT_POLL_INTERVAL_MS = 10_000;

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
  /** The CA that signed the serving certificate, published by --ca-bundle-for. */
  caFile?: string;
}

export interface LoadedCertificates {
  cert: string;
  key: string;
  ca?: string;
  /** Changes whenever any of the files' contents change. */
  fingerprint: string;
}

/** Reads the files and checks that certificate and key belong together. */
export async function loadCertificates(files: CertificateFiles): Promise<LoadedCertificates> {
  const read = async (flag: string, path: string) => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new MissingPrerequisiteError(`${flag} ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    }
  };
  const [cert, key, ca] = await Promise.all([
    read('--cert', files.certFile),
    read('--key', files.keyFile),
    files.caFile ? read('--ca', files.caFile) : Promise.resolve(undefined),
  ]);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new MissingPrerequisiteError(`--cert ${files.certFile} and --key ${files.keyFile} are not a usable pair: ${(err as Error).message}`, { cause: err });
  }
  const fingerprint = createHash('sha256').update(cert).update('\0').update(key).update('\0').update(ca ?? '').digest('hex');
  return { cert, key, ...(ca !== undefined ? { ca } : {}), fingerprint };
}

/**
 * Watches the certificate files (their directories, so a Secret's symlink swap is seen) and calls
 * `onChange` with each new, valid pair. A half-written or mismatched pair is logged and skipped;
 * the previous certificate keeps serving.
 */
export class CertificateReloader {
  private watchers: FSWatcher[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<boolean> = Promise.resolve(false);

  constructor(
    private readonly files: CertificateFiles,
    private current: LoadedCertificates,
    private readonly onChange: (loaded: LoadedCertificates) => void | Promise<void>,
    private readonly log: Logger,
  ) {}

  start(): void {
    const paths = [this.files.certFile, this.files.keyFile, ...(this.files.caFile ? [this.files.caFile] : [])];
    const names = new Set(paths.map((p) => basename(p)));
    for (const dir of new Set(paths.map((p) => dirname(p)))) {
      try {
        const watcher = watch(dir, (_event, file) => {
          // Kubernetes Secret volumes swap a `..data` symlink; plain files change by name.
          if (file === null || names.has(file.toString()) || file.toString().startsWith('..')) this.scheduleReload();
        });
        watcher.on('error', (err) => this.log.warn({ err, dir }, 'certificate watch failed; polling continues'));
        this.watchers.push(watcher);
      } catch (err) {
        this.log.warn({ err, dir }, 'cannot watch certificate directory; polling only');
      }
    }
    this.pollTimer = setInterval(() => void this.reload(), CERT_POLL_INTERVAL_MS).unref();
  }

  stop(): void {
    for (const watcher of this.watchers) watcher.close();
    this.watchers = [];
    clearInterval(this.pollTimer);
    clearTimeout(this.debounceTimer);
  }

  /** Re-reads the files now; resolves true when a new certificate was installed. */
  reload(): Promise<boolean> {
    this.reloading = this.reloading.then(() => this.reloadOnce());
    return this.reloading;
  }

  private scheduleReload(): void {
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.reload(), RELOAD_DEBOUNCE_MS).unref();
  }

  private async reloadOnce(): Promise<boolean> {
    let loaded: LoadedCertificates;
    try {
      loaded = await loadCertificates(this.files);
    } catch (err) {
      this.log.warn({ err }, 'new certificate files not usable yet; still serving the previous certificate');
      return false;
    }
    if (loaded.fingerprint === this.current.fingerprint) return false;
    this.current = loaded;
    try {
      await this.onChange(loaded);
      this.log.info({ certFile: this.files.certFile }, 'certificate reloaded');
      return true;
    } catch (err) {
      this.log.error({ err }, 'installing the new certificate failed');
      return false;
    }
  }
}
