import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';

/**
 * A kit for tests that need a real Linux network stack: network namespaces joined by veth pairs,
 * addressed ONLY from 198.18.0.0/15 (the benchmarking range), commands and long-running processes
 * inside them, and a teardown that always runs (t.teardown, and a synchronous safety net at process
 * exit). Names carry the test process's pid and a random run id, so parallel runs never collide,
 * and namespaces left behind by dead runs are removed on the next use.
 */

/** Every namespace this kit creates starts with this. */
const NAME_PREFIX = 'mlt';
/** Bound on one `ip`/`iptables` command. */
export const NETNS_COMMAND_TIMEOUT_MS = 20_000;
/** How much of a spawned process's output is kept for failure messages. */
const OUTPUT_TAIL_CHARS = 8_192;
/** How long a killed process may take to exit during teardown. */
const KILL_WAIT_MS = 3_000;

const BENCHMARK_RANGE = { first: ipv4ToInt('198.18.0.0'), last: ipv4ToInt('198.19.255.255') };

function ipv4ToInt(address: string): number {
  return address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

/** Refuses any address outside 198.18.0.0/15: tests must never resemble a real network. */
export function assertBenchmarkAddress(address: string): void {
  const [bare, prefix] = address.split('/') as [string, string | undefined];
  const inRange = /^\d+\.\d+\.\d+\.\d+$/.test(bare) && ipv4ToInt(bare) >= BENCHMARK_RANGE.first && ipv4ToInt(bare) <= BENCHMARK_RANGE.last;
  if (!inRange || (prefix !== undefined && !(Number(prefix) >= 15 && Number(prefix) <= 32))) {
    throw new Error(`netns kit: ${address} is outside 198.18.0.0/15; tests may only use the benchmarking range`);
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a command (no shell), bounded in time. */
export function runQuiet(cmd: string, args: readonly string[], options: RunOptions = {}): RunResult {
  const result = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: options.timeoutMs ?? NETNS_COMMAND_TIMEOUT_MS,
    input: options.input ?? '',
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.env ? { env: options.env } : {}),
  });
  return { code: result.status ?? 1, stdout: result.stdout ?? '', stderr: (result.stderr ?? '') + (result.error ? String(result.error) : '') };
}

/** Runs a command and throws with its stderr when it fails. */
export function runChecked(cmd: string, args: readonly string[], options: RunOptions = {}): RunResult {
  const result = runQuiet(cmd, args, options);
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${result.code}): ${result.stderr.trim()}`);
  return result;
}

function hasCommand(name: string): boolean {
  return runQuiet('sh', ['-c', `command -v ${name}`]).code === 0;
}

/** Why netns tests cannot run here, or undefined when they can. */
export function netnsUnsupportedReason(options: { iptables?: boolean } = {}): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespace tests need root (run as uid 0)';
  if (!hasCommand('ip')) return "the 'ip' command (iproute2) is not installed";
  if (options.iptables && !hasCommand('iptables')) return "the 'iptables' command is not installed (apt-get install iptables)";
  const probe = `${NAME_PREFIX}probe${process.pid}`;
  const added = runQuiet('ip', ['netns', 'add', probe]);
  if (added.code !== 0) return `'ip netns add' does not work here: ${added.stderr.trim()}`;
  runQuiet('ip', ['netns', 'del', probe]);
  return undefined;
}

/** Why a process cannot be started as `uid` with setpriv, or undefined when it can. */
export function runAsUnsupportedReason(): string | undefined {
  return hasCommand('setpriv') ? undefined : "'setpriv' (util-linux) is not installed; it starts processes as a non-root uid inside a namespace";
}

export interface SpawnInOptions extends Omit<SpawnOptions, 'uid' | 'gid'> {
  /** Run as this uid/gid (no capabilities, no supplementary groups), via setpriv. */
  uid?: number;
  gid?: number;
}

export class Netns {
  constructor(
    readonly name: string,
    private readonly kit: NetnsKit,
  ) {}

  /** argv prefix that runs a command in this namespace, optionally as another user. */
  private wrap(cmd: string, args: readonly string[], user?: { uid?: number; gid?: number }): [string, string[]] {
    const inside = ['netns', 'exec', this.name];
    if (user?.uid === undefined) return ['ip', [...inside, cmd, ...args]];
    const gid = user.gid ?? user.uid;
    return ['ip', [...inside, 'setpriv', `--reuid=${user.uid}`, `--regid=${gid}`, '--clear-groups', '--inh-caps=-all', '--', cmd, ...args]];
  }

  /** Runs a command inside this namespace and waits for it. */
  run(cmd: string, args: readonly string[], options: RunOptions & { uid?: number; gid?: number } = {}): RunResult {
    const [c, a] = this.wrap(cmd, args, options);
    return runQuiet(c, a, options);
  }

  /** Like run(), but throws when the command fails. */
  runChecked(cmd: string, args: readonly string[], options: RunOptions = {}): RunResult {
    const [c, a] = this.wrap(cmd, args);
    return runChecked(c, a, options);
  }

  /** Starts a long-running process inside this namespace; teardown kills it. */
  spawn(cmd: string, args: readonly string[], options: SpawnInOptions = {}): ChildProcess {
    const { uid, gid, ...rest } = options;
    const [c, a] = this.wrap(cmd, args, { uid, gid });
    const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], ...rest, detached: true });
    this.kit.track(child);
    return child;
  }

  /** ip/ip6 nat rules, for messages when a test fails. */
  describeNat(): string {
    return ['iptables-save', 'ip6tables-save'].map((tool) => this.run(tool, ['-t', 'nat']).stdout).join('\n');
  }

  /** `ip addr add` after checking the address is in 198.18.0.0/15. */
  addAddress(cidr: string, device: string): void {
    assertBenchmarkAddress(cidr);
    this.runChecked('ip', ['addr', 'add', cidr, 'dev', device]);
  }

  addRoute(destination: string, via: string, device?: string): void {
    assertBenchmarkAddress(destination);
    assertBenchmarkAddress(via);
    this.runChecked('ip', ['route', 'add', destination, 'via', via, ...(device ? ['dev', device] : [])]);
  }
}

export interface VethLink {
  /** Interface name inside `a` and `b`. */
  aDevice: string;
  bDevice: string;
}

export class NetnsKit {
  readonly runId = randomBytes(3).toString('hex');
  private readonly namespaces: Netns[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly outputs = new WeakMap<ChildProcess, string>();
  private links = 0;
  private torn = false;
  private readonly exitHandler = () => this.teardownSync();

  constructor() {
    removeStaleNamespaces();
    process.once('exit', this.exitHandler);
  }

  /** Creates a namespace with loopback up; `label` is a short readable part of its name. */
  createNamespace(label: string): Netns {
    const name = `${NAME_PREFIX}${process.pid}-${this.runId}-${label}`;
    runChecked('ip', ['netns', 'add', name]);
    const ns = new Netns(name, this);
    this.namespaces.push(ns);
    ns.runChecked('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /**
   * A veth pair between two namespaces, created directly inside them (nothing touches the host's
   * namespace), each end addressed from 198.18.0.0/15 and up.
   */
  link(a: Netns, b: Netns, aCidr: string, bCidr: string): VethLink {
    assertBenchmarkAddress(aCidr);
    assertBenchmarkAddress(bCidr);
    const n = this.links++;
    const aDevice = `v${this.runId}${n}a`;
    const bDevice = `v${this.runId}${n}b`;
    runChecked('ip', ['link', 'add', aDevice, 'netns', a.name, 'type', 'veth', 'peer', 'name', bDevice, 'netns', b.name]);
    a.addAddress(aCidr, aDevice);
    b.addAddress(bCidr, bDevice);
    a.runChecked('ip', ['link', 'set', aDevice, 'up']);
    b.runChecked('ip', ['link', 'set', bDevice, 'up']);
    return { aDevice, bDevice };
  }

  /** Used by Netns.spawn: the process is killed at teardown. */
  track(child: ChildProcess): void {
    this.children.add(child);
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
      this.outputs.set(child, output);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('exit', () => this.children.delete(child));
    child.on('error', () => undefined);
  }

  /** The last few KB a spawned process wrote (stdout and stderr), for failure messages. */
  outputOf(child: ChildProcess): string {
    return this.outputs.get(child) ?? '';
  }

  /** Kills every process started inside, then deletes every namespace (and with them the veths). */
  async teardown(): Promise<void> {
    const exits = [...this.children].filter((c) => c.exitCode === null && c.signalCode === null).map((c) => waitExit(c));
    this.killChildren();
    await Promise.all(exits);
    this.teardownSync();
  }

  private killChildren(): void {
    for (const child of this.children) {
      if (child.pid === undefined) continue;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  private teardownSync(): void {
    if (this.torn) return;
    this.torn = true;
    process.removeListener('exit', this.exitHandler);
    this.killChildren();
    for (const ns of this.namespaces.reverse()) {
      killNamespacePids(ns.name);
      runQuiet('ip', ['netns', 'del', ns.name]);
    }
  }
}

function waitExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, KILL_WAIT_MS);
    timer.unref();
    once(child, 'exit').then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => resolve(),
    );
  });
}

/** Any process still inside the namespace would keep it (and its addresses) alive after `ip netns del`. */
function killNamespacePids(name: string): void {
  const pids = runQuiet('ip', ['netns', 'pids', name]).stdout.split('\n').filter((line) => /^\d+$/.test(line.trim()));
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Namespaces from runs whose process no longer exists (killed mid-test) are deleted. */
function removeStaleNamespaces(): void {
  let listing: string;
  try {
    listing = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: NETNS_COMMAND_TIMEOUT_MS });
  } catch {
    return;
  }
  for (const line of listing.split('\n')) {
    const match = new RegExp(`^(${NAME_PREFIX}(\\d+)-[0-9a-f]+-\\S+)`).exec(line.trim());
    if (!match) continue;
    const pid = Number(match[2]);
    if (isAlive(pid)) continue;
    killNamespacePids(match[1]!);
    runQuiet('ip', ['netns', 'del', match[1]!]);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Resolves with the first stdout line of `child` that parses as JSON and satisfies `accept`; rejects
 * when the process exits first or `timeoutMs` passes (the message carries its stderr).
 */
export function waitForJsonLine<T = Record<string, unknown>>(child: ChildProcess, accept: (value: T) => boolean = () => true, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let stderr = '';
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
    };
    const onData = (chunk: Buffer | string) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!line.startsWith('{')) continue;
        let value: T;
        try {
          value = JSON.parse(line) as T;
        } catch {
          continue;
        }
        if (accept(value)) {
          cleanup();
          resolve(value);
          return;
        }
      }
    };
    const onErr = (chunk: Buffer | string) => (stderr += chunk.toString());
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`process exited (${code ?? signal}) before the expected line; stderr: ${stderr.trim()}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no expected line within ${timeoutMs}ms; stderr: ${stderr.trim()}`));
    }, timeoutMs);
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}
