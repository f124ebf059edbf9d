import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';

/**
 * Plain HTTP/1.1 backends on loopback that answer with their name (and echo POST bodies), saying
 * which Host and path they saw; `?delay-ms=N` answers after N ms.
 */
export async function startHttpBackend(name: string): Promise<{ server: http.Server; address: string; requests: number; sockets: number; close(): Promise<void> }> {
  const state = { requests: 0, sockets: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('x-backend', name);
      res.setHeader('x-seen-host', req.headers.host ?? '');
      res.setHeader('x-seen-path', req.url ?? '');
      const delayMs = Number(new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('delay-ms') ?? 0);
      setTimeout(() => res.end(req.method === 'POST' ? `${name}:${Buffer.concat(chunks).toString()}` : name), delayMs);
    });
  });
  server.on('connection', () => state.sockets++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return Object.assign(state, {
    server,
    address: `127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  });
}

/** One keep-alive client connection (maxSockets 1) through the proxy. */
export function request(agent: http.Agent, port: number, path: string, options: { method?: string; body?: string; host?: string } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent, method: options.method ?? 'GET', headers: options.host ? { host: options.host } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}


/** A raw TCP client: writes `data`, and resolves with all it received once the proxy closes the connection. */
export async function exchangeRaw(port: number, data: string | Buffer): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setTimeout(15_000, () => socket.destroy(new Error('the proxy did not close the connection within 15 s')));
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.write(data);
  try {
    await once(socket, 'close');
  } finally {
    socket.destroy();
  }
  return Buffer.concat(chunks).toString('latin1');
}

/**
 * A raw HTTP/1.1 endpoint on loopback for tests that check bytes exactly: it reads request heads
 * (of requests without a body) as latin1 text and hands each to `onHead` with the socket to answer
 * on; `bytesReceived` counts every byte it was sent.
 */
export async function startRawEndpoint(onHead: (head: string, socket: net.Socket) => void): Promise<{ server: net.Server; address: string; bytesReceived(): number }> {
  let bytes = 0;
  const server = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      buffered += chunk.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end + 4);
        buffered = buffered.slice(end + 4);
        onHead(head, socket);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, bytesReceived: () => bytes };
}
