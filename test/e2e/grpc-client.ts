/**
 * An unmodified gRPC application for the end-to-end test, started inside the "client Pod"
 * namespace: ONE @grpc/grpc-js channel (default pick_first) to TARGET, COUNT unary calls one after
 * another, then one JSON line: how many calls each backend answered, and any errors.
 * Usage: node --import tsx test/e2e/grpc-client.ts TARGET COUNT
 */
import { createEchoClient, unaryCall, waitForReady } from '../helpers/grpc-echo.js';

const CALL_DEADLINE_MS = 5_000;
const [target, countText] = process.argv.slice(2) as [string, string];
const client = createEchoClient(target);
const backends: Record<string, number> = {};
const errors: string[] = [];
try {
  await waitForReady(client, CALL_DEADLINE_MS);
  for (let i = 0; i < Number(countText); i++) {
    try {
      const reply = await unaryCall(client, { text: `call ${i}` }, { deadline: new Date(Date.now() + CALL_DEADLINE_MS) });
      backends[reply.backend] = (backends[reply.backend] ?? 0) + 1;
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
} catch (err) {
  errors.push(`channel not ready: ${(err as Error).message}`);
}
client.close();
process.stdout.write(`${JSON.stringify({ backends, errors })}\n`);
