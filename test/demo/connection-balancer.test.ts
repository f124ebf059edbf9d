import t from 'tap';
import { ConnectionBalancer } from '../../demo/connection-balancer.js';
import { createEchoClient, startEchoBackend, unaryCall, waitForReady } from '../helpers/grpc-echo.js';

t.test('like kube-proxy: every call of one connection lands on one backend; new connections spread', async (t) => {
  const backends = await Promise.all(['a', 'b', 'c'].map((n) => startEchoBackend(n)));
  t.teardown(() => Promise.all(backends.map((b) => b.close())));
  let next = 0;
  const picks = [0.1, 0.5, 0.9];
  const balancer = new ConnectionBalancer(
    backends.map((b) => ({ name: b.name, host: '127.0.0.1', port: b.port })),
    () => picks[next++ % picks.length]!,
  );
  const address = await balancer.listen();
  t.teardown(() => balancer.close());

  const seen: string[][] = [];
  for (let i = 0; i < 3; i++) {
    const client = createEchoClient(address);
    await waitForReady(client);
    const replies = await Promise.all(Array.from({ length: 20 }, () => unaryCall(client, { text: 'hi' })));
    seen.push([...new Set(replies.map((r) => r.backend))]);
    client.close();
  }
  t.same(seen, [['a'], ['b'], ['c']]);
  t.same(Object.fromEntries(balancer.connections), { a: 1, b: 1, c: 1 });
});
