import { once } from 'node:events';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startMeshlet, type MeshletProcess } from '../../tools/meshlet-process.js';

/** Real HTTP/1.1 backends on distinct loopback addresses sharing one port, like Pods behind a Service. */
export interface Backends {
  port: number;
  /** Requests each backend received, by its address. */
  hits: Map<string, number>;
  /** performance.now() of each backend's first request since `resetFirstSeen`. */
  firstSeen: Map<string, number>;
  resetFirstSeen(address: string): void;
  close(): Promise<void>;
}

export async function startBackends(addresses: string[]): Promise<Backends> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const servers: Server[] = [];
    const hits = new Map<string, number>(addresses.map((a) => [a, 0]));
    const firstSeen = new Map<string, number>();
    try {
      let port = 0;
      for (const address of addresses) {
        const server = createServer((req, res) => {
          hits.set(address, (hits.get(address) ?? 0) + 1);
          if (!firstSeen.has(address)) firstSeen.set(address, performance.now());
          req.resume();
          res.end(address);
        });
        server.keepAliveTimeout = 30_000;
        servers.push(server);
        server.listen(port, address);
        await once(server, 'listening');
        port = (server.address() as AddressInfo).port;
      }
      return {
        port,
        hits,
        firstSeen,
        resetFirstSeen: (address) => firstSeen.delete(address),
        close: async () => {
          for (const server of servers) {
            server.closeAllConnections();
            server.close();
          }
        },
      };
    } catch {
      for (const server of servers) server.close();
    }
  }
  throw new Error(`could not bind backends on ${addresses.join(', ')} with one shared port`);
}

/** `meshlet proxy <args>` on kernel-picked loopback ports (no debug admin); resolves once it logs `listening`. */
export function startProxyProcess(args: string[]): Promise<MeshletProcess> {
  return startMeshlet(['proxy', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--debug-admin', 'off', ...args]);
}

export interface Traffic {
  results: Array<{ at: number; backend: string | undefined; status: number | undefined; error?: string }>;
  stop(): Promise<void>;
}

/** Sequential keep-alive HTTP/1.1 requests naming `host`, until stopped (bounded by `maxMs`). */
export function driveTraffic(proxyPort: number, host: string, maxMs = 60_000): Traffic {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const results: Traffic['results'] = [];
  let stopped = false;
  const deadline = Date.now() + maxMs;
  const loop = (async () => {
    while (!stopped && Date.now() < deadline) {
      const at = performance.now();
      try {
        const { status, body } = await get(agent, proxyPort, host);
        results.push({ at, backend: status === 200 ? body : undefined, status });
      } catch (err) {
        results.push({ at, backend: undefined, status: undefined, error: (err as Error).message });
      }
    }
  })();
  return {
    results,
    stop: async () => {
      stopped = true;
      await loop;
      agent.destroy();
    },
  };
}

function get(agent: Agent, port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent, headers: { host }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}
