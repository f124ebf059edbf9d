import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { MissingPrerequisiteError } from '../../src/common/errors.js';
import type { IpFamily } from './rules.js';

/**
 * Finding and running the iptables commands: which binaries make up a back end, how one is run
 * (no shell, bounded in time, a lock file that works on a read-only root), and how its failures
 * read.
 */

export type Backend = 'nft' | 'legacy';

/** How long one iptables invocation may take (including waiting for the xtables lock). */
export const IPTABLES_TIMEOUT_MS = 20_000;
/** Seconds iptables waits for the xtables lock held by another writer (`-w`). */
export const XTABLES_LOCK_WAIT_S = 5;

export interface FamilyTools {
  /** Absolute paths of the three commands for one family. */
  cmd: string;
  restore: string;
  save: string;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command without a shell, bounded in time; a missing binary is a MissingPrerequisiteError. */
export function runCommand(cmd: string, args: readonly string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: IPTABLES_TIMEOUT_MS, env: iptablesEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdin.on('error', () => undefined);
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new MissingPrerequisiteError(`${cmd} is not installed`, { cause: err }) : err);
    });
    child.on('close', (code, signal) => {
      if (signal) stderr += `${cmd} ended by ${signal} (timeout ${IPTABLES_TIMEOUT_MS}ms?)`;
      resolve({ code: code ?? 1, stdout, stderr: stderr.trim() });
    });
    child.stdin.end(input ?? '');
  });
}

/** Where iptables (legacy) takes its lock unless XTABLES_LOCKFILE says otherwise. */
export const DEFAULT_XTABLES_LOCKFILE = '/run/xtables.lock';

let lockEnv: NodeJS.ProcessEnv | undefined;

/**
 * The legacy back end refuses to run when it cannot create its lock file (exit 4, "can't open lock
 * file /run/xtables.lock: Read-only file system"), as in a container with readOnlyRootFilesystem.
 * The lock only orders writers sharing that file, and inside a Pod we are the only one, so when
 * /run is read-only we point XTABLES_LOCKFILE at a writable tmpfs (/dev/shm, then the temp dir).
 */
function iptablesEnv(): NodeJS.ProcessEnv {
  if (lockEnv) return lockEnv;
  lockEnv = process.env;
  if (process.env.XTABLES_LOCKFILE || canOpenForWriting(DEFAULT_XTABLES_LOCKFILE)) return lockEnv;
  const fallback = ['/dev/shm', tmpdir()].map((dir) => join(dir, 'xtables.lock')).find(canOpenForWriting);
  if (fallback) lockEnv = { ...process.env, XTABLES_LOCKFILE: fallback };
  return lockEnv;
}

function canOpenForWriting(path: string): boolean {
  try {
    closeSync(openSync(path, 'a'));
    return true;
  } catch {
    return false;
  }
}

/** Directories searched for iptables besides $PATH (init images often lack sbin on PATH). */
export const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

function findExecutable(name: string, path = process.env.PATH ?? ''): string | undefined {
  const dirs = [...path.split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export const FAMILY_TOOL: Record<IpFamily, 'iptables' | 'ip6tables'> = { 4: 'iptables', 6: 'ip6tables' };

/**
 * The commands of one back end for one family: `iptables-nft`, `iptables-nft-restore`, … or, when
 * only the plain names exist, those if `iptables -V` reports this back end.
 */
export async function findFamilyTools(backend: Backend, family: IpFamily): Promise<FamilyTools | undefined> {
  const base = FAMILY_TOOL[family];
  const named = ['', '-restore', '-save'].map((suffix) => findExecutable(`${base}-${backend}${suffix}`));
  if (named.every((p): p is string => p !== undefined)) return { cmd: named[0]!, restore: named[1]!, save: named[2]! };
  const plain = ['', '-restore', '-save'].map((suffix) => findExecutable(`${base}${suffix}`));
  if (!plain.every((p): p is string => p !== undefined)) return undefined;
  const version = await runCommand(plain[0]!, ['-V']);
  const reported: Backend = /nf_tables/.test(version.stdout) ? 'nft' : 'legacy';
  return reported === backend ? { cmd: plain[0]!, restore: plain[1]!, save: plain[2]! } : undefined;
}

/** A permission failure reported by iptables itself, turned into the same clear message. */
export function isPermissionFailure(stderr: string): boolean {
  return /permission denied|operation not permitted|you must be root/i.test(stderr);
}

export function toolFailure(what: string, result: CommandResult): Error {
  if (isPermissionFailure(result.stderr)) {
    return new MissingPrerequisiteError(
      `${what} was refused by the kernel (${result.stderr}); meshlet init needs NET_ADMIN and NET_RAW in the Pod's network namespace`,
    );
  }
  return new MissingPrerequisiteError(`${what} failed with exit code ${result.code}: ${result.stderr || result.stdout}`);
}

