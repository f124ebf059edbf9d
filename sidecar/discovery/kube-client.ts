import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Agent as HttpAgent } from 'node:http';
import { readFileSync, statSync } from 'node:fs';

/**
 * The few calls the sidecar makes to the Kubernetes API — list a collection, watch it — over node:http
 * and node:https, with nothing else loaded. (@kubernetes/client-node costs a Node process about 67 MiB
 * of RSS just to import; see README "Footprint".) Requests are plain GETs; a watch is a chunked stream
 * of one JSON event per line.
 */

/** Where the API is and how we authenticate to it (built by ./kube-config.ts). */
export interface KubeEndpoint {
  /** `https://host:port` (or http for a local test server); no path. */
  server: string;
  /** PEM CA bundle that signed the server's certificate; the system CAs when absent. */
  caPem?: string | Buffer;
  insecureSkipTlsVerify?: boolean;
  /** The name to verify the server's certificate against, when not the host in `server` (kubeconfig tls-server-name). */
  tlsServerName?: string;
  /** Client certificate authentication (PEM). */
  certPem?: string | Buffer;
  keyPem?: string | Buffer;
  /** A bearer token given inline. */
  token?: string;
  /** A bearer token file, re-read whenever it changes (kubelet rotates projected tokens). */
  tokenFile?: string;
}

export interface KubeList<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

export interface KubeWatchEvent {
  type: string;
  object: unknown;
}

/** How a watch stream ended: `err` is undefined when the server closed it cleanly. */
export type WatchDone = (err?: Error) => void;

export interface WatchHandle {
  abort(): void;
}

/** The API answered with an error status (its Status body's message when it sent one). */
export class KubeApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

/** An error body larger than this is cut (Status objects are small). */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** A created object's answer (a review) larger than this is cut. */
const MAX_CREATED_BODY_BYTES = 1024 * 1024;
/** A watch line longer than this is a broken stream, not an object we want to hold. */
const MAX_WATCH_LINE_BYTES = 16 * 1024 * 1024;

export class KubeClient {
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly isHttps: boolean;
  private readonly base: URL;
  private token: string | undefined;
  private tokenVersion = '';

  constructor(
    readonly endpoint: KubeEndpoint,
    private readonly userAgent = 'meshlet-proxy',
  ) {
    this.base = new URL(endpoint.server);
    this.isHttps = this.base.protocol === 'https:';
    this.token = endpoint.token;
    this.agent = this.isHttps
      ? new HttpsAgent({
          keepAlive: true,
          ...(endpoint.caPem ? { ca: endpoint.caPem } : {}),
          ...(endpoint.certPem ? { cert: endpoint.certPem } : {}),
          ...(endpoint.keyPem ? { key: endpoint.keyPem } : {}),
          ...(endpoint.tlsServerName ? { servername: endpoint.tlsServerName } : {}),
          rejectUnauthorized: endpoint.insecureSkipTlsVerify !== true,
        })
      : new HttpAgent({ keepAlive: true });
  }

  /** GET a collection; rejects with KubeApiError on a non-2xx answer, or after `timeoutMs`. */
  list<T>(path: string, query: Record<string, string>, timeoutMs: number): Promise<KubeList<T>> {
    return new Promise((resolve, reject) => {
      const req = this.get(path, query);
      const timer = setTimeout(() => req.destroy(new Error(`list ${path} not answered within ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.on('response', (res) => {
        readBody(res, res.statusCode === 200 ? Infinity : MAX_ERROR_BODY_BYTES).then(
          (body) => {
            clearTimeout(timer);
            if (res.statusCode !== 200) return reject(apiError(res.statusCode ?? 0, body));
            try {
              resolve(JSON.parse(body) as KubeList<T>);
            } catch (err) {
              reject(new Error(`list ${path}: the answer is not JSON (${(err as Error).message})`));
            }
          },
          (err: Error) => {
            clearTimeout(timer);
            reject(err);
          },
        );
      });
    });
  }

  /** POST an object (a review: TokenReview, SubjectAccessReview); rejects with KubeApiError on a non-2xx answer, or after `timeoutMs`. */
  create<T>(path: string, body: unknown, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = this.send('POST', path, {}, JSON.stringify(body));
      const timer = setTimeout(() => req.destroy(new Error(`create ${path} not answered within ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.on('response', (res) => {
        const isOk = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
        readBody(res, isOk ? MAX_CREATED_BODY_BYTES : MAX_ERROR_BODY_BYTES).then(
          (text) => {
            clearTimeout(timer);
            if (!isOk) return reject(apiError(res.statusCode ?? 0, text));
            try {
              resolve(JSON.parse(text) as T);
            } catch (err) {
              reject(new Error(`create ${path}: the answer is not JSON (${(err as Error).message})`));
            }
          },
          (err: Error) => {
            clearTimeout(timer);
            reject(err);
          },
        );
      });
    });
  }

  /**
   * Opens a watch; `onOpen` once the server accepted it (200 and headers), `onEvent` per line, and
   * `onDone` exactly once when it ends (a non-200 answer ends it with a KubeApiError).
   */
  watch(path: string, query: Record<string, string>, handlers: { onOpen: () => void; onEvent: (event: KubeWatchEvent) => void; onDone: WatchDone }): WatchHandle {
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      handlers.onDone(err);
    };
    const req = this.get(path, { ...query, watch: 'true' });
    req.on('error', (err) => finish(err));
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        readBody(res, MAX_ERROR_BODY_BYTES).then(
          (body) => finish(apiError(res.statusCode ?? 0, body)),
          (err: Error) => finish(err),
        );
        return;
      }
      handlers.onOpen();
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (done) return;
        pending += chunk;
        let newline = pending.indexOf('\n');
        while (newline >= 0 && !done) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line.length > 0) {
            let event: KubeWatchEvent;
            try {
              event = JSON.parse(line) as KubeWatchEvent;
            } catch (err) {
              req.destroy();
              return finish(new Error(`watch ${path}: a line is not JSON (${(err as Error).message})`));
            }
            handlers.onEvent(event);
          }
          newline = pending.indexOf('\n');
        }
        if (pending.length > MAX_WATCH_LINE_BYTES) {
          req.destroy();
          finish(new Error(`watch ${path}: an event longer than ${MAX_WATCH_LINE_BYTES} bytes`));
        }
      });
      res.on('error', (err) => finish(err));
      res.on('end', () => finish());
      res.on('close', () => finish(res.complete ? undefined : new Error(`watch ${path}: connection lost`)));
    });
    return {
      abort: () => {
        done = true;
        req.destroy();
      },
    };
  }

  close(): void {
    this.agent.destroy();
  }

  private get(path: string, query: Record<string, string>): ClientRequest {
    return this.send('GET', path, query);
  }

  private send(method: 'GET' | 'POST', path: string, query: Record<string, string>, body?: string): ClientRequest {
    const url = new URL(path, this.base);
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    const token = this.currentToken();
    const options = {
      method,
      agent: this.agent,
      headers: {
        accept: 'application/json',
        'user-agent': this.userAgent,
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
      },
    };
    const req = this.isHttps ? httpsRequest(url, options) : httpRequest(url, options);
    req.end(body);
    return req;
  }

  /** The token file is stat-ed per request (few: lists and watches) and re-read when it changed. */
  private currentToken(): string | undefined {
    const file = this.endpoint.tokenFile;
    if (!file) return this.token;
    try {
      const stats = statSync(file);
      const version = `${stats.ino}:${stats.mtimeMs}:${stats.size}`;
      if (version !== this.tokenVersion) {
        this.token = readFileSync(file, 'utf8').trim();
        this.tokenVersion = version;
      }
    } catch {
      // Unreadable for a moment (mid-rotation): the last token read is the best we have.
    }
    return this.token;
  }
}

function readBody(res: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
    });
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
    res.on('close', () => {
      if (!res.complete) reject(new Error('connection lost while reading the answer'));
    });
  });
}

function apiError(statusCode: number, body: string): KubeApiError {
  let message = body.trim().slice(0, 500) || `HTTP ${statusCode}`;
  try {
    const status = JSON.parse(body) as { message?: unknown };
    if (typeof status.message === 'string') message = status.message;
  } catch {
    // Not a Status object: the raw text is the message.
  }
  return new KubeApiError(statusCode, message);
}
