/**
 * `meshlet <args>` as a real child process of this checkout, for the demo, the tests and the
 * benchmarks: start it and wait for its `listening` log line, or run it to completion.
 * Lives outside test/ so that the demo does not depend on test code.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The repository root, from which `node --import tsx` resolves. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** argv that runs the `meshlet` CLI from source (no build needed): `node ...MESHLET_NODE_ARGS proxy ...`. */
export const MESHLET_NODE_ARGS: readonly string[] = ['--import', 'tsx', join(REPO_ROOT, 'src', 'bin.ts')];

/** argv that runs the compiled `meshlet` CLI, as the image does (needs `npm run build`). */
export const MESHLET_BUILT_ARGS: readonly string[] = [join(REPO_ROOT, 'bin', 'meshlet.js')];

/** How long a started process has to log its `listening` line. */
export const START_TIMEOUT_MS = 30_000;
/** How long waitForLine waits for a line unless told otherwise. */
export const LINE_TIMEOUT_MS = 30_000;
/** After SIGTERM, how long stop() waits before SIGKILL. */
export const STOP_TIMEOUT_MS = 5_000;
/** How long runMeshlet lets a process run before SIGKILL. */
export const RUN_TIMEOUT_MS = 60_000;
/** Parsed log lines kept in `lines` (the rest are still matched by waitForLine). */
const MAX_KEPT_LOG_LINES = 10_000;
/** Raw output lines (stdout and stderr) kept for failure messages. */
const MAX_TAIL_LINES = 40;

/** One pino JSON log line. */
export type MeshletLogLine = Record<string, any>;

/** Starts `meshlet <args>` as a child process from the repository root; stdout and stderr are piped. */
export function spawnMeshlet(args: readonly string[], options: SpawnOptions = {}, command: readonly string[] = MESHLET_NODE_ARGS): ChildProcess {
  return spawn(process.execPath, [...command, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

export interface MeshletRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `meshlet <args>` to completion (SIGKILL after timeoutMs), feeding `stdin`. */
export async function runMeshlet(args: readonly string[], options: { stdin?: string; timeoutMs?: number; spawn?: SpawnOptions } = {}): Promise<MeshletRun> {
  const child = spawnMeshlet(args, { stdio: ['pipe', 'pipe', 'pipe'], ...options.spawn });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => stdout.push(c));
  child.stderr!.on('data', (c: Buffer) => stderr.push(c));
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(options.stdin ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? RUN_TIMEOUT_MS);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') };
}

export interface StartMeshletOptions {
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** The node argv before `args` (default MESHLET_NODE_ARGS: from source). */
  command?: readonly string[];
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
}

/** A running `meshlet <subcommand>` that has logged `listening`. */
export interface MeshletProcess {
  child: ChildProcess;
  /** The `listening` line: address, port, and what else the subcommand reports (admin, ...). */
  listening: MeshletLogLine;
  /** Every JSON log line so far, in order. */
  lines: MeshletLogLine[];
  /** Resolves with the exit code (null when a signal ended it). */
  exited: Promise<number | null>;
  /** The first line (seen already or to come) that matches; rejects, naming `what`, on exit or after timeoutMs. */
  waitForLine(matches: (line: MeshletLogLine) => boolean, timeoutMs?: number, what?: string): Promise<MeshletLogLine>;
  /** The last lines it wrote (stdout and stderr), for failure messages. */
  output(): string;
  /** SIGTERM, then SIGKILL if it has not exited within stopTimeoutMs; resolves once it exited. */
  stop(): Promise<void>;
}

/**
 * Spawns `meshlet <args>` and resolves once it logs `listening`. Rejects, with what it wrote, if it
 * exits first or takes longer than startTimeoutMs (then it is stopped).
 */
export async function startMeshlet(args: readonly string[], options: StartMeshletOptions = {}): Promise<MeshletProcess> {
  const name = `meshlet ${args[0] ?? ''}`.trim();
  const child = spawnMeshlet(args, options.env ? { env: { ...process.env, ...options.env } } : {}, options.command);
  const lines: MeshletLogLine[] = [];
  const tail: string[] = [];
  const watchers = new Set<(line: MeshletLogLine) => void>();
  let closed = false;
  const keep = (text: string) => {
    tail.push(text);
    if (tail.length > MAX_TAIL_LINES) tail.shift();
  };
  createInterface({ input: child.stdout! }).on('line', (text) => {
    keep(text);
    const line = parseLogLine(text);
    if (!line) return;
    if (lines.length < MAX_KEPT_LOG_LINES) lines.push(line);
    for (const watch of watchers) watch(line);
  });
  createInterface({ input: child.stderr! }).on('line', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (err) => {
      keep(`spawn failed: ${err.message}`);
      resolve(null);
    });
  });
  // 'close' comes after the last output has been read: what a failure message needs.
  child.once('close', () => (closed = true));
  const output = () => tail.join('\n');
  const describeExit = () => (child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`);

  const waitForLine = (matches: (line: MeshletLogLine) => boolean, timeoutMs = LINE_TIMEOUT_MS, what = 'the line waited for') =>
    new Promise<MeshletLogLine>((resolve, reject) => {
      const seen = lines.find(matches);
      if (seen) return resolve(seen);
      const fail = (reason: string) => reject(new Error(`${name} ${reason}${tail.length > 0 ? `\n--- its output ---\n${output()}` : ''}`));
      if (closed) return fail(`exited (${describeExit()}) before logging ${what}`);
      const finish = () => {
        clearTimeout(timer);
        watchers.delete(watch);
        child.off('close', onClose);
      };
      const watch = (line: MeshletLogLine) => {
        if (!matches(line)) return;
        finish();
        resolve(line);
      };
      const onClose = () => {
        finish();
        fail(`exited (${describeExit()}) before logging ${what}`);
      };
      const timer = setTimeout(() => {
        finish();
        fail(`did not log ${what} within ${timeoutMs} ms`);
      }, timeoutMs);
      timer.unref();
      watchers.add(watch);
      child.once('close', onClose);
    });

  const stopTimeoutMs = options.stopTimeoutMs ?? STOP_TIMEOUT_MS;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
      timer.unref();
      await exited;
      clearTimeout(timer);
    }
  };

  let listening: MeshletLogLine;
  try {
    listening = await waitForLine((line) => line['msg'] === 'listening', options.startTimeoutMs ?? START_TIMEOUT_MS, '"listening"');
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, listening, lines, exited, waitForLine, output, stop };
}

function parseLogLine(text: string): MeshletLogLine | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as MeshletLogLine) : undefined;
  } catch {
    return undefined;
  }
}
