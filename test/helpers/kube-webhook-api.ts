import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { generateCertificates } from '../../src/certs/forge.js';

const COLLECTION = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/';

export interface RecordedRequest {
  method: string;
  url: string;
  contentType?: string;
  authorization?: string;
  body?: unknown;
}

/**
 * A small stand-in for the kube-apiserver on loopback (HTTPS, with its own CA in the kubeconfig,
 * since the client refuses plain HTTP) that serves GET and PATCH
 * (application/json-patch+json) of MutatingWebhookConfigurations the way the real one answers,
 * so the real @kubernetes/client-node does the talking. `failNext` makes the next requests fail
 * with a 503 Status, as an apiserver that is not reachable yet would.
 */
export class KubeWebhookApi {
  readonly requests: RecordedRequest[] = [];
  readonly objects = new Map<string, any>();
  failNext = 0;
  private server: Server | undefined;
  private dir: string | undefined;
  private resourceVersion = 100;

  constructor(readonly token = 'test-token-for-loopback') {}

  put(object: any): void {
    this.objects.set(object.metadata.name, { ...structuredClone(object), metadata: { ...object.metadata, resourceVersion: String(this.resourceVersion++) } });
  }

  /** Starts listening on 127.0.0.1:0 and returns a kubeconfig file that points at it. */
  async start(): Promise<string> {
    const tls = generateCertificates({ names: ['127.0.0.1'] });
    this.server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      void this.handle(req).then(({ status, body }) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    const port = (this.server.address() as AddressInfo).port;
    this.dir = await mkdtemp(join(tmpdir(), 'meshlet-kubeconfig-'));
    const kubeconfig = join(this.dir, 'kubeconfig.yaml');
    await writeFile(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: loopback',
        `  cluster: { server: "https://127.0.0.1:${port}", certificate-authority-data: "${Buffer.from(tls.caCertPem).toString('base64')}" }`,
        'users:',
        '- name: webhook',
        `  user: { token: "${this.token}" }`,
        'contexts:',
        '- name: loopback',
        '  context: { cluster: loopback, user: webhook }',
        'current-context: loopback',
        '',
      ].join('\n'),
    );
    return kubeconfig;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve) ?? resolve(undefined));
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; body: unknown }> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const recorded: RecordedRequest = { method: req.method ?? '', url: req.url ?? '' };
    if (req.headers['content-type']) recorded.contentType = req.headers['content-type'];
    if (req.headers.authorization) recorded.authorization = req.headers.authorization;
    if (text) recorded.body = JSON.parse(text);
    this.requests.push(recorded);

    if (this.failNext > 0) {
      this.failNext--;
      return status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request');
    }
    if (req.headers.authorization !== `Bearer ${this.token}`) return status(401, 'Unauthorized', 'Unauthorized');
    const path = (req.url ?? '').split('?')[0]!;
    if (!path.startsWith(COLLECTION)) return status(404, 'NotFound', 'the server could not find the requested resource');
    const name = decodeURIComponent(path.slice(COLLECTION.length));
    const current = this.objects.get(name);
    if (!current) return status(404, 'NotFound', `mutatingwebhookconfigurations.admissionregistration.k8s.io "${name}" not found`);
    if (req.method === 'GET') return { status: 200, body: current };
    if (req.method === 'PATCH') {
      if (req.headers['content-type'] !== 'application/json-patch+json') return status(415, 'UnsupportedMediaType', `unsupported patch type ${req.headers['content-type']}`);
      try {
        const next = fastJsonPatch.applyPatch(structuredClone(current), recorded.body as Operation[], true, false).newDocument;
        next.metadata.resourceVersion = String(this.resourceVersion++);
        this.objects.set(name, next);
        return { status: 200, body: next };
      } catch (err) {
        return status(422, 'Invalid', `the patch could not be applied: ${(err as Error).message}`);
      }
    }
    return status(405, 'MethodNotAllowed', `${req.method} is not supported here`);
  }
}

function status(code: number, reason: string, message: string) {
  return { status: code, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code } };
}
