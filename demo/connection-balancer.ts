import { once } from 'node:events';
import net from 'node:net';

export interface BackendAddress {
  name: string;
  host: string;
  port: number;
}

/**
 * What kube-proxy does for a ClusterIP: each new TCP connection goes to a backend picked at random,
 * then every byte of that connection follows it. It never looks inside, so all the requests of one
 * long-lived gRPC connection land on one backend.
 */
export class ConnectionBalancer {
  readonly connections = new Map<string, number>();
  private readonly sockets = new Set<net.Socket>();
  private server: net.Server | undefined;

  constructor(
    private readonly backends: readonly BackendAddress[],
    private readonly random: () => number = Math.random,
  ) {}

  async listen(host = '127.0.0.1'): Promise<string> {
    const server = net.createServer((client) => this.forward(client));
    server.on('error', () => undefined);
    this.server = server;
    server.listen(0, host);
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    return `${host}:${port}`;
  }

  private forward(client: net.Socket): void {
    const backend = this.backends[Math.floor(this.random() * this.backends.length)]!;
    this.connections.set(backend.name, (this.connections.get(backend.name) ?? 0) + 1);
    const upstream = net.connect(backend.port, backend.host);
    for (const socket of [client, upstream]) {
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      socket.on('close', () => this.sockets.delete(socket));
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}
