import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { NDJSON_CONTENT_TYPE, SUBSCRIPTIONS_PATH, type ClientCommand, type ServerMessage } from '../../sidecar/discovery/shared-protocol.js';
import { DISCOVERY_TOKEN_AUDIENCE } from '../../src/common/contract.js';
import { KubeApiServer, type KubeApiOptions } from './kube-api.js';

/** The token the shared watcher itself uses with the replay API server (sidecars' tokens cannot list). */
export const WATCHER_API_TOKEN = 'watcher-api-token';
/** A sidecar's projected token, bound to the audience meshlet-discovery. */
export const SIDECAR_TOKEN = 'sidecar-token-client-default';
/** A token the API server knows, bound to another audience (e.g. the API's own). */
export const OTHER_AUDIENCE_TOKEN = 'sidecar-token-for-the-api';

/** A replay API server that accepts the tokens above, and a temp dir with the watcher's kubeconfig and the sidecar's token file. */
export async function startSharedWatcherWorld(t: Test, options: KubeApiOptions = {}): Promise<{ api: KubeApiServer; dir: string; kubeconfig: string; tokenFile: string }> {
  const api = await KubeApiServer.start({ token: WATCHER_API_TOKEN, ...options });
  t.teardown(() => api.close());
  api.acceptToken(SIDECAR_TOKEN, 'system:serviceaccount:client:default', [DISCOVERY_TOKEN_AUDIENCE]);
  api.acceptToken(OTHER_AUDIENCE_TOKEN, 'system:serviceaccount:client:default', ['https://kubernetes.default.svc']);
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-shared-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = await api.writeKubeconfig(dir);
  const tokenFile = join(dir, 'discovery-token');
  await writeFile(tokenFile, `${SIDECAR_TOKEN}\n`, { mode: 0o600 });
  return { api, dir, kubeconfig, tokenFile };
}

/** A hand-driven subscription stream: what a sidecar (or a misbehaving caller) sends and reads. */
export interface RawSubscriber {
  status: number;
  /** The text/plain answer of a refused subscription. */
  refusal: string;
  messages: ServerMessage[];
  res: IncomingMessage | undefined;
  ended: Promise<void>;
  send(command: ClientCommand | string): void;
  close(): void;
}

export async function openRawSubscriber(port: number, token: string | undefined, options: { read?: boolean } = {}): Promise<RawSubscriber> {
  const req = request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: SUBSCRIPTIONS_PATH,
    agent: false,
    headers: { 'content-type': NDJSON_CONTENT_TYPE, 'transfer-encoding': 'chunked', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  req.on('error', () => undefined);
  req.flushHeaders();
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  const subscriber: RawSubscriber = {
    status: res.statusCode ?? 0,
    refusal: '',
    messages: [],
    res,
    ended: new Promise((resolve) => {
      res.once('close', () => resolve());
      res.once('end', () => resolve());
    }),
    send: (command) => {
      if (!req.destroyed) req.write(typeof command === 'string' ? command : `${JSON.stringify(command)}\n`);
    },
    close: () => req.destroy(),
  };
  res.on('error', () => undefined);
  if (options.read === false) {
    res.pause();
    return subscriber;
  }
  let pending = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    if (subscriber.status !== 200) {
      subscriber.refusal += chunk;
      return;
    }
    pending += chunk;
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      subscriber.messages.push(JSON.parse(pending.slice(0, newline)) as ServerMessage);
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
    }
  });
  if (subscriber.status !== 200) await subscriber.ended;
  return subscriber;
}
