/**
 * Started inside a test's network namespace: connects to HOST PORT and prints what the server sends.
 * With MESSAGE it sends it and stops once as many bytes came back (an echo); without, it reads until
 * the server closes. Exits 1 with the error on stderr when the connection fails or takes over 5 s.
 * Usage: node --import tsx test/helpers/tcp-client.ts HOST PORT [MESSAGE]
 */
import { connect } from 'node:net';

const CLIENT_TIMEOUT_MS = 5_000;
const [host, port, message] = process.argv.slice(2);
const timer = setTimeout(() => {
  process.stderr.write(`no answer from ${host}:${port} within ${CLIENT_TIMEOUT_MS}ms\n`);
  process.exit(1);
}, CLIENT_TIMEOUT_MS);
const socket = connect({ host: host!, port: Number(port) });
let received = Buffer.alloc(0);
const expected = message === undefined ? undefined : Buffer.byteLength(message);
let finished = false;
const finish = () => {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  process.stdout.write(received);
  socket.destroy();
};
socket.on('connect', () => {
  if (message !== undefined) socket.write(message);
});
socket.on('data', (chunk: Buffer) => {
  received = Buffer.concat([received, chunk]);
  if (expected !== undefined && received.length >= expected) finish();
});
socket.on('close', finish);
socket.on('error', (err) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
