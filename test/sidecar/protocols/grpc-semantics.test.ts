import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { ECHO_SERVICE, createEchoClient, startEchoBackend, unaryCall, waitForReady, type EchoBackend, type EchoReply } from '../../helpers/grpc-echo.js';
import { TestSource, startTestProxy } from '../../helpers/proxy-harness.js';
import { waitUntil } from '../../helpers/wait.js';

/** Every gRPC semantic an app relies on survives the proxy: one unmodified client, one channel. */
const MiB = 1024 * 1024;
const backends: EchoBackend[] = [];
for (const name of ['a', 'b']) backends.push(await startEchoBackend(name));
const source = new TestSource(backends.map((b) => b.address));
const { proxy, target } = await startTestProxy(source);
const client = createEchoClient(target, { 'grpc.max_receive_message_length': 16 * MiB, 'grpc.max_send_message_length': 16 * MiB });
await waitForReady(client);
t.teardown(async () => {
  client.close();
  await proxy.close();
  await Promise.all(backends.map((b) => b.close()));
});

const any = client as any;

t.test('unary call returns the reply and trailers', async (t) => {
  const reply = await new Promise<{ reply: EchoReply; trailers: grpc.Metadata }>((resolve, reject) => {
    let trailers = new grpc.Metadata();
    const call = any.unary({ text: 'hello' }, (err: Error | null, reply: EchoReply) => (err ? reject(err) : setImmediate(() => resolve({ reply, trailers }))));
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
  t.equal(reply.reply.text, 'hello');
  t.ok(['a', 'b'].includes(reply.reply.backend));
  t.same(reply.trailers.get('x-backend'), [reply.reply.backend], 'trailer metadata arrives');
});

t.test('4 MiB messages pass both ways intact', async (t) => {
  const text = 'y'.repeat(4 * MiB - 1024);
  const reply = await unaryCall(client, { text, replySize: 4 * MiB });
  t.equal(reply.text?.length, text.length);
  t.equal(reply.padding?.length, 4 * MiB);
  t.ok(reply.padding === 'x'.repeat(4 * MiB));
});

t.test('server streaming delivers every message in order', async (t) => {
  const got: number[] = [];
  await new Promise<void>((resolve, reject) => {
    const call = any.serverStream({ count: 50, text: 's' });
    call.on('data', (m: EchoReply) => got.push(m.index!));
    call.on('error', reject);
    call.on('end', resolve);
  });
  t.same(got, Array.from({ length: 50 }, (_, i) => i));
});

t.test('client streaming collects every message in order', async (t) => {
  const reply = await new Promise<EchoReply>((resolve, reject) => {
    const call = any.clientStream((err: Error | null, r: EchoReply) => (err ? reject(err) : resolve(r)));
    for (let i = 0; i < 20; i++) call.write({ text: String(i) });
    call.end();
  });
  t.equal(reply.text, Array.from({ length: 20 }, (_, i) => String(i)).join(','));
});

t.test('bidirectional streaming: replies interleave with requests', async (t) => {
  const call = any.bidi();
  const replies: EchoReply[] = [];
  for (let i = 0; i < 10; i++) {
    call.write({ text: `m${i}` });
    const reply = await new Promise<EchoReply>((resolve) => call.once('data', resolve));
    replies.push(reply);
  }
  call.end();
  await new Promise((resolve) => call.on('end', resolve));
  t.same(replies.map((r) => r.text), Array.from({ length: 10 }, (_, i) => `m${i}`));
  t.equal(new Set(replies.map((r) => r.backend)).size, 1, 'one stream stays on one endpoint');
});

t.test('request metadata reaches the server, including binary (-bin) values', async (t) => {
  const md = new grpc.Metadata();
  md.set('x-user', 'plain ascii value; with = and spaces');
  md.set('x-trace-bin', Buffer.from([0, 1, 2, 255]));
  md.add('x-multi', 'one');
  md.add('x-multi', 'two');
  const reply = await unaryCall(client, { text: 'm' }, { metadata: md });
  t.equal(reply.seenMetadata?.['x-user'], 'plain ascii value; with = and spaces');
  t.equal(reply.seenMetadata?.['x-trace-bin'], `base64:${Buffer.from([0, 1, 2, 255]).toString('base64')}`);
  t.equal(reply.seenMetadata?.['x-multi'], 'one, two');
});

t.test('response headers and trailers reach the client, including binary (-bin) values', async (t) => {
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, {
    unary(call: grpc.ServerUnaryCall<unknown, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      const initial = new grpc.Metadata();
      initial.set('x-initial', 'hello');
      initial.set('x-initial-bin', Buffer.from([9, 8, 7]));
      call.sendMetadata(initial);
      const trailer = new grpc.Metadata();
      trailer.set('x-trailer-bin', Buffer.from([0xde, 0xad]));
      cb(null, { backend: 'meta' }, trailer);
    },
    serverStream: () => undefined,
    clientStream: () => undefined,
    bidi: () => undefined,
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const metaSource = new TestSource([`127.0.0.1:${port}`]);
  const { proxy: metaProxy, target: metaTarget } = await startTestProxy(metaSource);
  const metaClient = createEchoClient(metaTarget);
  t.teardown(async () => {
    metaClient.close();
    await metaProxy.close();
    server.forceShutdown();
  });
  const result = await new Promise<{ headers: grpc.Metadata; trailers: grpc.Metadata }>((resolve, reject) => {
    let headers = new grpc.Metadata();
    const call = (metaClient as any).unary({}, (err: Error | null) => err && reject(err));
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (s: grpc.StatusObject) => resolve({ headers, trailers: s.metadata }));
  });
  t.same(result.headers.get('x-initial'), ['hello']);
  t.same(result.headers.get('x-initial-bin'), [Buffer.from([9, 8, 7])]);
  t.same(result.trailers.get('x-trailer-bin'), [Buffer.from([0xde, 0xad])]);
});

t.test('a non-OK status keeps its code and a unicode message', async (t) => {
  const message = 'commande refusée — 注文は拒否されました ✗ 100%';
  const err = await unaryCall(client, { failWith: { code: grpc.status.FAILED_PRECONDITION, message } }).catch((e) => e);
  t.equal(err.code, grpc.status.FAILED_PRECONDITION);
  t.equal(err.details, message);
});

t.test('an unimplemented method reports UNIMPLEMENTED', async (t) => {
  const err = await new Promise<grpc.ServiceError>((resolve) =>
    client.makeUnaryRequest('/meshlet.test.Echo/Missing', (v: unknown) => Buffer.from(JSON.stringify(v)), (b: Buffer) => b, {}, (e) => resolve(e!)),
  );
  t.equal(err.code, grpc.status.UNIMPLEMENTED);
});

t.test('a client cancel is seen by the server within a second', async (t) => {
  const before = backends.reduce((n, b) => n + b.cancelled, 0);
  const call = any.serverStream({ count: 1000, delayMs: 50 });
  call.on('error', () => undefined);
  await new Promise((resolve) => call.once('data', resolve));
  call.cancel();
  await t.resolves(waitUntil(() => backends.reduce((n, b) => n + b.cancelled, 0) > before, 1000, 'a cancelled call on a backend'), 'server saw the cancellation');
});

t.test('an expired deadline gives DEADLINE_EXCEEDED and ends the upstream call', async (t) => {
  const before = backends.reduce((n, b) => n + b.cancelled, 0);
  const err = await unaryCall(client, { delayMs: 3000 }, { deadline: new Date(Date.now() + 200) }).catch((e) => e);
  t.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
  await t.resolves(waitUntil(() => backends.reduce((n, b) => n + b.cancelled, 0) > before, 1000, 'a cancelled call on a backend'), 'the server-side call was ended');
});

t.test('200 concurrent calls on one channel all succeed', async (t) => {
  const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => unaryCall(client, { text: String(i), delayMs: 20 })));
  t.same(replies.map((r) => r.text), Array.from({ length: 200 }, (_, i) => String(i)));
  t.same(new Set(replies.map((r) => r.backend)), new Set(['a', 'b']), 'both endpoints served them');
});
