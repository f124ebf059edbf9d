import * as grpc from '@grpc/grpc-js';
import { once } from 'node:events';

/**
 * A small real gRPC service for tests, demo and benchmarks, defined without .proto files: messages
 * are JSON objects carried as bytes. Every reply names the backend that produced it, so a test can
 * count where each call went.
 */
export interface EchoRequest {
  text?: string;
  /** Bytes of padding in the reply (large messages). */
  replySize?: number;
  /** Delay before replying, in milliseconds. */
  delayMs?: number;
  /** Reply with this gRPC status instead of OK. */
  failWith?: { code: number; message: string };
  /** ServerStream: how many messages to send. */
  count?: number;
}

export interface EchoReply {
  backend: string;
  text?: string;
  padding?: string;
  /** Metadata the backend received, echoed (for metadata-propagation tests). */
  seenMetadata?: Record<string, string>;
  index?: number;
}

const serialize = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const deserialize = (bytes: Buffer): any => JSON.parse(bytes.toString('utf8'));

function method(path: string, requestStream: boolean, responseStream: boolean) {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: serialize,
    requestDeserialize: deserialize,
    responseSerialize: serialize,
    responseDeserialize: deserialize,
  };
}

export const ECHO_SERVICE = {
  unary: method('/meshlet.test.Echo/Unary', false, false),
  serverStream: method('/meshlet.test.Echo/ServerStream', false, true),
  clientStream: method('/meshlet.test.Echo/ClientStream', true, false),
  bidi: method('/meshlet.test.Echo/Bidi', true, true),
} satisfies grpc.ServiceDefinition;

export const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
export type EchoClientInstance = InstanceType<typeof EchoClient>;

export interface EchoBackend {
  name: string;
  port: number;
  address: string;
  server: grpc.Server;
  /** Calls served, by method name. */
  calls: number;
  /** Calls the client cancelled, as seen by this server. */
  cancelled: number;
  /** Extra delay added to every unary reply (a "slow Pod"); change it at any time. */
  extraDelayMs: number;
  close(): Promise<void>;
}

function metadataToObject(metadata: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata.getMap())) {
    out[key] = Buffer.isBuffer(value) ? `base64:${value.toString('base64')}` : String(value);
  }
  return out;
}

/** Starts a real gRPC server on host:0 (loopback by default) that answers as `name`. */
export async function startEchoBackend(name: string, host = '127.0.0.1', port = 0): Promise<EchoBackend> {
  const server = new grpc.Server();
  const backend: EchoBackend = {
    name,
    port: 0,
    address: '',
    server,
    calls: 0,
    cancelled: 0,
    extraDelayMs: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => server.forceShutdown(), 2000).unref();
      }),
  };
  const reply = (request: EchoRequest, call: grpc.ServerUnaryCall<EchoRequest, EchoReply> | grpc.ServerReadableStream<EchoRequest, EchoReply>): EchoReply => ({
    backend: name,
    text: request.text,
    ...(request.replySize ? { padding: 'x'.repeat(request.replySize) } : {}),
    seenMetadata: metadataToObject(call.metadata),
  });
  server.addService(ECHO_SERVICE, {
    unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) {
      backend.calls++;
      const request = call.request;
      const delay = (request.delayMs ?? 0) + backend.extraDelayMs;
      let done = false;
      call.on('cancelled', () => {
        if (!done) backend.cancelled++;
        done = true;
      });
      const answer = () => {
        if (done) return;
        done = true;
        if (request.failWith) {
          callback({ code: request.failWith.code, details: request.failWith.message, metadata: new grpc.Metadata() });
          return;
        }
        const trailer = new grpc.Metadata();
        trailer.set('x-backend', name);
        callback(null, reply(request, call), trailer);
      };
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    },
    serverStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      backend.calls++;
      const count = call.request.count ?? 3;
      let index = 0;
      let cancelled = false;
      call.on('cancelled', () => {
        cancelled = true;
        backend.cancelled++;
      });
      const timer = setInterval(() => {
        if (cancelled) return clearInterval(timer);
        if (index >= count) {
          clearInterval(timer);
          call.end();
          return;
        }
        call.write({ backend: name, index: index++, text: call.request.text });
      }, call.request.delayMs ?? 1);
    },
    clientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) {
      backend.calls++;
      const texts: string[] = [];
      call.on('data', (request: EchoRequest) => texts.push(request.text ?? ''));
      call.on('end', () => callback(null, { backend: name, text: texts.join(',') }));
      call.on('error', () => undefined);
    },
    bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
      backend.calls++;
      let index = 0;
      call.on('data', (request: EchoRequest) => call.write({ backend: name, text: request.text, index: index++ }));
      call.on('end', () => call.end());
      call.on('error', () => undefined);
      call.on('cancelled', () => backend.cancelled++);
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  backend.port = bound;
  backend.address = `${host.includes(':') ? `[${host}]` : host}:${bound}`;
  return backend;
}

/** An unmodified client: one channel, default pick_first, plaintext. */
export function createEchoClient(target: string, options: grpc.ChannelOptions = {}): EchoClientInstance {
  return new EchoClient(target, grpc.credentials.createInsecure(), options);
}

export function unaryCall(client: EchoClientInstance, request: EchoRequest, options: { metadata?: grpc.Metadata; deadline?: Date } = {}): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    const callOptions: grpc.CallOptions = options.deadline ? { deadline: options.deadline } : {};
    (client as any).unary(request, options.metadata ?? new grpc.Metadata(), callOptions, (err: grpc.ServiceError | null, reply: EchoReply) =>
      err ? reject(err) : resolve(reply),
    );
  });
}

export async function waitForReady(client: EchoClientInstance, timeoutMs = 5000): Promise<void> {
  await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())));
}

export { once };
