import t from 'tap';
import { createEchoClient, startEchoBackend, unaryCall, waitForReady } from '../helpers/grpc-echo.js';
import { TestSource, startTestProxy } from '../helpers/proxy-harness.js';

/**
 * Without native sidecars the app and the proxy get SIGTERM together. An app with no connection
 * open at that moment may still connect while it shuts down; the proxy must serve those last calls.
 */
t.test('after SIGTERM with no app connection open, a new connection in the quiet window is served', async (t) => {
  const backend = await startEchoBackend('b0');
  t.teardown(() => backend.close());
  const { proxy, target } = await startTestProxy(new TestSource([backend.address]), { 'shutdown-quiet-ms': '2000' });
  t.teardown(() => proxy.close());
  t.equal(proxy.listener.openConnections, 0, 'the app has no connection open');

  let shutDown = false;
  const shutdown = proxy.shutdown(20_000).then(() => (shutDown = true));
  // Absence over time is the check: 300 ms into the 2 s quiet window, the shutdown must not have finished.
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(shutDown, false, 'still serving inside the quiet window');

  const client = createEchoClient(target);
  await waitForReady(client);
  const reply = await unaryCall(client, { text: 'last call' });
  t.equal(reply.text, 'last call', "the app's last call after SIGTERM went through");
  client.close();

  await shutdown;
  t.equal(shutDown, true, 'the proxy finished once the app stayed away for the quiet window');
});
