import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { Test } from 'tap';
import type { RunningProxy } from '../../sidecar/main.js';
import { F, T, listenOnLoopback, rawClient, type FrameReader, type RawFrame } from './h2-raw.js';
import { captureLogs, type LogCapture } from './log-capture.js';
import { TestSource, startTestProxy } from './proxy-harness.js';

/**
 * The setup every HTTP/2 relay test repeats: endpoints on loopback, a proxy in front of them, raw
 * or node:http2 app connections to it, and everything closed when the test ends, even on failure.
 */

/** Something the proxy can balance over: its loopback address and how to stop it. */
export interface TestEndpoint {
  address: string;
  close(): Promise<void>;
}

/** A node:http2 endpoint on 127.0.0.1:0; stream and session errors are expected in these tests and ignored. */
export async function startH2Endpoint(
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
  options: http2.ServerOptions = {},
): Promise<TestEndpoint & { server: http2.Http2Server }> {
  const server = http2.createServer(options);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => undefined);
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    onStream(stream, headers);
  });
  return { server, ...(await listenOnLoopback(server, sessions)) };
}

/** A raw app connection: frames written by hand on `socket`, frames read back by `reader`. */
export interface RawConnection {
  socket: Socket;
  reader: FrameReader;
}

export interface H2ProxyKit {
  proxy: RunningProxy;
  source: TestSource;
  /** `127.0.0.1:port` of the proxy's listener. */
  target: string;
  port: number;
  /** What the proxy logged at warn and above. */
  logs: LogCapture;
  /** A raw connection with the preface and an empty SETTINGS sent (the proxy's SETTINGS may not have arrived yet). */
  connect(): Promise<RawConnection>;
  /** connect(), then the proxy's SETTINGS received (and acknowledged): the connection is set up. */
  handshake(): Promise<RawConnection & { settings: RawFrame }>;
  /** A node:http2 app session to the proxy; its errors are ignored (tests look at the streams). */
  session(options?: http2.ClientSessionOptions): http2.ClientHttp2Session;
  /** Requests the balancers count in flight, over every endpoint. */
  inFlight(): number;
}

/**
 * A proxy (logging warn and up) over `endpoints`. When `t` ends, every connection and session
 * opened through the kit is destroyed, then the proxy and the endpoints are closed.
 */
export async function startH2Proxy(t: Test, endpoints: TestEndpoint[], flags: Record<string, string> = {}): Promise<H2ProxyKit> {
  const logs = captureLogs('warn');
  const source = new TestSource(endpoints.map((e) => e.address));
  const { proxy, target } = await startTestProxy(source, flags, logs.log);
  const sockets = new Set<Socket>();
  const sessions = new Set<http2.ClientHttp2Session>();
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    for (const s of sessions) s.destroy();
    await proxy.close();
    for (const e of endpoints) await e.close();
  });
  const connect = async (): Promise<RawConnection> => {
    const connection = await rawClient(proxy.address.port);
    sockets.add(connection.socket);
    connection.socket.on('close', () => sockets.delete(connection.socket));
    return connection;
  };
  return {
    proxy,
    source,
    target,
    port: proxy.address.port,
    logs,
    connect,
    handshake: async () => {
      const connection = await connect();
      const settings = await connection.reader.waitFor((f) => f.type === T.SETTINGS && (f.flags & F.ACK) === 0, 5000, 'proxy SETTINGS');
      return { ...connection, settings };
    },
    session: (options = {}) => {
      const session = http2.connect(`http://${target}`, options);
      session.on('error', () => undefined);
      sessions.add(session);
      session.on('close', () => sessions.delete(session));
      return session;
    },
    inFlight: () => {
      let n = 0;
      for (const balancer of proxy.registry.all()) for (const endpoint of balancer.endpoints()) n += endpoint.inFlight;
      return n;
    },
  };
}
