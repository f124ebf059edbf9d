import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMeshlet } from '../tools/meshlet-process.js';

/** A real `meshlet proxy` process in standalone mode, balancing over a watched upstream file. */
export interface RunningProxy {
  /** Where the app connects, "127.0.0.1:PORT". */
  address: string;
  /** The admin server (/metrics, /ready), "127.0.0.1:PORT". */
  adminAddress: string;
  /** Rewrites the upstream file; the proxy picks it up within a second. */
  setUpstreams(upstreams: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

export interface ProxyStartOptions {
  /** Extra flags, e.g. ['--lb-policy', 'round-robin']. */
  args?: string[];
}

function hostPort(endpoint: { address?: unknown; port?: unknown } | undefined): string | undefined {
  const { address, port } = endpoint ?? {};
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
  try {
    await setUpstreams(upstreams);
    const proxy = await startMeshlet(['proxy', '--listen', '127.0.0.1:0', '--upstream', file, '--admin', '127.0.0.1:0', '--debug-admin', '127.0.0.1:0', ...(options.args ?? [])]);
    const close = async () => {
      await proxy.stop();
      await rm(dir, { recursive: true, force: true });
    };
    const address = hostPort(proxy.listening);
    const adminAddress = hostPort(proxy.listening['admin']);
    if (!address || !adminAddress) {
      await proxy.stop();
      throw new Error(`meshlet proxy logged "listening" without its address and admin address: ${JSON.stringify(proxy.listening)}`);
    }
    return { address, adminAddress, setUpstreams, close };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
