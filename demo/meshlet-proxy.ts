import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { MESHLET_NODE_ARGS, REPO_ROOT } from '../test/helpers/meshlet-process.js';

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const MAX_LOG_LINES = 500;

/** A real `meshlet proxy` process in standalone mode, balancing over a watched upstream file. */
export interface RunningProxy {
  /** Where the app connects, "127.0.0.1:PORT". */
  address: string;
  /** The admin server (/metrics, /ready), "127.0.0.1:PORT". */
  adminAddress: string;
  process: ChildProcess;
  /** Rewrites the upstream file; the proxy picks it up within a second. */
  setUpstreams(upstreams: readonly string[]): Promise<void>;
  /** Log lines the proxy printed (JSON), for explaining a failure. */
  logs: string[];
  close(): Promise<void>;
}

export interface ProxyStartOptions {
  /** Extra flags, e.g. ['--lb-policy', 'round-robin']. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

/** The proxy's `listening` log line: `{ msg, address, port, admin: { address, port } }`. */
interface ListeningLine {
  msg?: string;
  address?: string;
  port?: number;
  admin?: { address?: string; port?: number };
}

function hostPort(address: string | undefined, port: number | undefined): string | undefined {
  if (typeof address !== 'string' || typeof port !== 'number') return undefined;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Starts `meshlet proxy --listen 127.0.0.1:0 --upstream FILE --admin 127.0.0.1:0 --debug-admin 127.0.0.1:0`
 * from source: every port is picked by the kernel, so several proxies can run at once.
 */
export async function startMeshletProxy(upstreams: readonly string[], options: ProxyStartOptions = {}): Promise<RunningProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-demo-'));
  const file = join(dir, 'upstreams.json');
  const setUpstreams = async (list: readonly string[]) => {
    const next = `${file}.next`;
    await writeFile(next, JSON.stringify(list));
    await rename(next, file);
  };
  await setUpstreams(upstreams);
  const child = spawn(
    process.execPath,
    [...MESHLET_NODE_ARGS, 'proxy', '--listen', '127.0.0.1:0', '--upstream', file, '--admin', '127.0.0.1:0', '--debug-admin', '127.0.0.1:0', ...(options.args ?? [])],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } },
  );
  const logs: string[] = [];
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      timer.unref();
      await once(child, 'exit');
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const found: { proxy?: string; admin?: string } = {};
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`meshlet proxy did not report listening within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      timer.unref();
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`meshlet proxy exited (${signal ?? `code ${code}`}) before listening`));
      });
      child.once('error', reject);
      const lines = createInterface({ input: child.stdout! });
      createInterface({ input: child.stderr! }).on('line', (l) => {
        if (logs.length < MAX_LOG_LINES) logs.push(l);
      });
      lines.on('line', (text) => {
        if (logs.length < MAX_LOG_LINES) logs.push(text);
        let line: ListeningLine;
        try {
          line = JSON.parse(text) as ListeningLine;
        } catch {
          return;
        }
        if (line.msg !== 'listening') return;
        found.proxy = hostPort(line.address, line.port);
        found.admin = hostPort(line.admin?.address, line.admin?.port);
        if (found.proxy && found.admin) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } catch (err) {
    await close();
    const tail = logs.slice(-10).join('\n');
    throw new Error(`${(err as Error).message}${tail ? `\n--- proxy output ---\n${tail}` : ''}`, { cause: err });
  }
  return { address: found.proxy!, adminAddress: found.admin!, process: child, setUpstreams, logs, close };
}
