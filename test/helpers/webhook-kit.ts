import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCertificates, writeCertificates } from '../../src/certs/forge.js';
import { startWebhook, type RunningWebhook, type WebhookOptions } from '../../src/webhook/main.js';
import { PINNED_CONFIG } from './injector-fixtures.js';
import { captureLogs, type LogCapture } from './log-capture.js';

export interface CertDir {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  caPem: string;
}

/** A temp dir with a fresh CA + serving cert for 127.0.0.1 and localhost, made by our forge code. */
export async function makeCertDir(): Promise<CertDir & { cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-certs-'));
  const bundle = generateCertificates({ names: ['localhost', '127.0.0.1'] });
  const paths = await writeCertificates(dir, bundle);
  return { dir, ...paths, caPem: bundle.caCertPem, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface HttpsResult {
  status: number;
  body: any;
  raw: string;
}

/** A real TLS client that trusts only the given CA, with keep-alive. */
export class WebhookClient {
  readonly agent: Agent;
  constructor(
    readonly port: number,
    caPem: string,
  ) {
    this.agent = new Agent({ keepAlive: true, ca: caPem, maxSockets: 8 });
  }

  send(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<HttpsResult> {
    return new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: this.port, method, path, agent: this.agent, headers, servername: 'localhost', timeout: 10_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const raw = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = raw;
            try {
              parsed = JSON.parse(raw);
            } catch {
              // not JSON; the raw text is kept
            }
            resolve({ status: res.statusCode ?? 0, body: parsed, raw });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }

  review(review: unknown): Promise<HttpsResult> {
    return this.send('POST', '/mutate?timeout=5s', JSON.stringify(review));
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface WebhookUnderTest {
  webhook: RunningWebhook;
  client: WebhookClient;
  certs: CertDir;
  logs: LogCapture;
}

/** The real HTTPS webhook on 127.0.0.1:0 with fresh certs; everything is torn down by `stop`. */
export async function startTestWebhook(extra: Partial<WebhookOptions> = {}): Promise<WebhookUnderTest & { stop: () => Promise<void> }> {
  const certs = await makeCertDir();
  const logs = captureLogs();
  const webhook = await startWebhook(
    { host: '127.0.0.1', port: 0, certFile: certs.cert, keyFile: certs.key, caFile: certs.ca, shutdownDelayMs: 0, injector: PINNED_CONFIG, ...extra },
    logs.log,
  );
  const client = new WebhookClient(webhook.port, certs.caPem);
  return {
    webhook,
    client,
    certs,
    logs,
    stop: async () => {
      client.close();
      await webhook.shutdown();
      await certs.cleanup();
    },
  };
}

export function decodePatch(response: { patch?: string }): any[] {
  return response.patch === undefined ? [] : JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
}
