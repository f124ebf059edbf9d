/**
 * A "backend Pod" for the end-to-end test, started inside its own network namespace: a real gRPC
 * echo service on HOST:50051 answering as NAME, and plain TCP echo servers on HOST:7007 and
 * HOST:7008. Prints `{"ready":true,...}` once all listen.
 * Usage: node --import tsx test/e2e/backend-pod.ts NAME HOST
 */
import { once } from 'node:events';
import { createServer } from 'node:net';
import { startEchoBackend } from '../helpers/grpc-echo.js';

export const GRPC_PORT = 50051;
export const ECHO_PORTS = [7007, 7008] as const;

const [name, host] = process.argv.slice(2) as [string, string];
const grpc = await startEchoBackend(name, host, GRPC_PORT);
const echoes = await Promise.all(
  ECHO_PORTS.map(async (port) => {
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    server.listen(port, host);
    await once(server, 'listening');
    return server;
  }),
);
process.stdout.write(`${JSON.stringify({ ready: true, name, grpc: grpc.address, echo: ECHO_PORTS })}\n`);
process.on('SIGTERM', () => {
  for (const server of echoes) server.close();
  void grpc.close().then(() => process.exit(0));
});
