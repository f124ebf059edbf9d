/**
 * Started inside a test's network namespace: listens on HOST:0, prints `{"port":N}` once listening,
 * and answers every connection with one JSON line — what readOriginalDst() says about it — then
 * closes it. Usage: node --import tsx test/sidecar/accept/original-dst-probe.ts HOST
 */
import { createServer } from 'node:net';
import { originalDstSupport, readOriginalDst } from '../../../sidecar/accept/original-dst.js';

const host = process.argv[2] ?? '0.0.0.0';
const server = createServer((socket) => {
  socket.on('error', () => undefined);
  const originalDst = readOriginalDst(socket) ?? null;
  socket.end(`${JSON.stringify({ originalDst, local: `${socket.localAddress}:${socket.localPort}` })}\n`);
});
server.listen({ host, port: 0, ipv6Only: false }, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ port, support: originalDstSupport() })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
