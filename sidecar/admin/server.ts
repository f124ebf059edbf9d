import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../src/common/log-format.js';
import type { HostPort } from '../../src/common/values.js';

export interface AdminResponse {
  status: number;
  contentType: string;
  body: string;
}

export type AdminRoutes = Record<string, () => AdminResponse>;

/**
 * A tiny HTTP server for admin paths (GET only). The proxy runs two: the public one (/ready, /live,
 * /metrics) and the debug one (/debug/endpoints), which main.ts binds to loopback only.
 */
export class AdminServer {
  private readonly server: http.Server;

  constructor(
    private readonly address: HostPort,
    private readonly routes: AdminRoutes,
    private readonly log: Logger,
  ) {
    this.server = http.createServer((req, res) => this.serve(req, res));
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.address.port, this.address.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    const route = this.routes[path];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('method not allowed; allowed: GET, HEAD\n');
      return;
    }
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found; paths: ${Object.keys(this.routes).join(', ')}\n`);
      return;
    }
    try {
      const { status, contentType, body } = route();
      res.writeHead(status, { 'content-type': contentType }).end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      this.log.error({ err, path }, 'admin route failed');
      res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
    }
  }
}
