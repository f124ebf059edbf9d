import { once } from 'node:events';
import { dirname, join } from 'node:path';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { CommandSpec, ParsedCommand } from '../common/config.js';
import { DEFAULT_LOG_LEVEL, ENV, LOG_LEVELS, WEBHOOK_PORT } from '../common/contract.js';
import { createLogger, type PinoLogger } from '../common/logger.js';
import { parsePort } from '../common/values.js';
import { MESHLET_VERSION } from '../common/version.js';
import { CERT_FILES } from '../certs/forge.js';
import { INJECTOR_FLAGS, parseInjectorConfig, type InjectorConfig } from '../inject/settings.js';
import { buildApp } from './app.js';
import { CertificateReloader, loadCertificates } from './cert-reloader.js';
import { WEBHOOK_TLS_OPTIONS } from './tls.js';
import type { Readiness } from './routes/health.js';

/** How long a certificate rotation waits for the new CA to reach the API server before serving it anyway. */
const CA_PUBLISH_WAIT_MS = 10_000;

function delay<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms).unref());
}

export const command: CommandSpec = {
  name: 'webhook',
  summary: 'Run the mutating admission webhook (HTTPS) that meshes opted-in Pods',
  usage: '--cert FILE --key FILE',
  flags: {
    port: { type: 'string', placeholder: 'PORT', description: 'HTTPS port', default: String(WEBHOOK_PORT), env: 'MESHLET_WEBHOOK_PORT' },
    host: { type: 'string', placeholder: 'ADDRESS', description: 'Address to listen on', default: '0.0.0.0', env: 'MESHLET_WEBHOOK_HOST' },
    cert: { type: 'string', placeholder: 'FILE', description: 'Serving certificate (PEM); reloaded when it changes', env: 'MESHLET_WEBHOOK_CERT' },
    key: { type: 'string', placeholder: 'FILE', description: 'Private key of the certificate (PEM); reloaded when it changes', env: 'MESHLET_WEBHOOK_KEY' },
    ca: { type: 'string', placeholder: 'FILE', description: `CA certificate for --ca-bundle-for (default: ${CERT_FILES.ca} beside --cert)` },
    'ca-bundle-for': {
      type: 'string',
      placeholder: 'NAME',
      description: 'On start and on every certificate change, write the CA into this MutatingWebhookConfiguration',
      env: 'MESHLET_CA_BUNDLE_FOR',
    },
    kubeconfig: { type: 'string', placeholder: 'FILE', description: 'kubeconfig for --ca-bundle-for (default: in-cluster or $KUBECONFIG)' },
    'shutdown-delay': {
      type: 'string',
      placeholder: 'SECONDS',
      description: 'After SIGTERM, keep serving (not ready) this long so the Service stops sending reviews, then drain',
      default: '5',
    },
    'log-level': { type: 'string', placeholder: 'LEVEL', description: `Log level: ${LOG_LEVELS.join(', ')}`, default: DEFAULT_LOG_LEVEL, env: ENV.logLevel },
    ...INJECTOR_FLAGS,
  },
  details: 'Serves POST /mutate (AdmissionReview v1), GET /healthz and GET /readyz.',
};

export interface WebhookOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  caFile?: string;
  caBundleFor?: string;
  kubeconfig?: string;
  shutdownDelayMs: number;
  injector: InjectorConfig;
}

export interface RunningWebhook {
  port: number;
  /** Re-reads the certificate files now (the watcher does this on its own). */
  reloadCertificates(): Promise<boolean>;
  /** Resolves when the first caBundle publication has finished (true) or was abandoned (false). */
  caBundlePublished: Promise<boolean>;
  /** Not ready, wait the shutdown delay, finish in-flight reviews, close. */
  shutdown(): Promise<void>;
}

/** Starts the HTTPS webhook; the caller decides when to shut it down. */
export async function startWebhook(options: WebhookOptions, logger: PinoLogger): Promise<RunningWebhook> {
  const log = logger.child({ component: 'webhook' });
  const files = { certFile: options.certFile, keyFile: options.keyFile, ...(options.caBundleFor && options.caFile ? { caFile: options.caFile } : {}) };
  const initial = await loadCertificates(files);
  const readiness: Readiness = { ready: false };
  const app = buildApp(options.injector, { logger, https: { ...WEBHOOK_TLS_OPTIONS, cert: initial.cert, key: initial.key }, readiness });
  const server = app.server as HttpsServer;
  const abort = new AbortController();
  const target = options.caBundleFor ? { name: options.caBundleFor, ...(options.kubeconfig ? { kubeconfig: options.kubeconfig } : {}) } : undefined;
  // The Kubernetes client is loaded only when --ca-bundle-for asks for it (it takes seconds to load).
  const publish = async (caPem: string | undefined) => {
    if (!target || !caPem) return false;
    const { publishCaBundleWithRetry } = await import('./ca-bundle.js');
    return publishCaBundleWithRetry(target, caPem, log, abort.signal);
  };
  let servedCa = initial.ca;
  const reloader = new CertificateReloader(
    files,
    initial,
    async (loaded) => {
      if (target && loaded.ca && loaded.ca !== servedCa) {
        // On rotation the API server must trust the new CA before we present the new certificate;
        // the old CA stays in the bundle for replicas that have not reloaded yet.
        const bundle = `${loaded.ca.trimEnd()}\n${servedCa ? servedCa.trimEnd() + '\n' : ''}`;
        const published = await Promise.race([publish(bundle), delay(CA_PUBLISH_WAIT_MS, false)]);
        if (!published) log.warn({ webhookConfiguration: target.name }, 'serving the new certificate before its CA could be published');
      }
      servedCa = loaded.ca;
      // New handshakes get the new certificate; connections and reviews in flight are untouched.
      server.setSecureContext({ ...WEBHOOK_TLS_OPTIONS, cert: loaded.cert, key: loaded.key });
    },
    log,
  );

  await app.listen({ host: options.host, port: options.port });
  reloader.start();
  readiness.ready = true;
  const port = (server.address() as AddressInfo).port;
  log.info({ host: options.host, port, version: MESHLET_VERSION, nativeSidecar: options.injector.nativeSidecar, proxyImage: options.injector.proxyImage }, 'listening');
  const caBundlePublished = publish(initial.ca);

  let closing: Promise<void> | undefined;
  const shutdown = () => {
    closing ??= (async () => {
      readiness.ready = false;
      log.info({ delayMs: options.shutdownDelayMs }, 'shutting down');
      if (options.shutdownDelayMs > 0) await delay(options.shutdownDelayMs, undefined);
      abort.abort();
      reloader.stop();
      await app.close();
      log.info('closed');
    })();
    return closing;
  };
  return { port, reloadCertificates: () => reloader.reload(), caBundlePublished, shutdown };
}

export function parseWebhookOptions(parsed: ParsedCommand): WebhookOptions {
  const v = parsed.values;
  const portText = String(v['port']);
  const delayText = String(v['shutdown-delay']);
  const cert = v['cert'] as string | undefined;
  const injector = parseInjectorConfig(parsed, [
    () => (parsePort(portText).ok || portText === '0' ? undefined : `--port: "${portText}" is not valid; allowed: a whole number from 0 to 65535`),
    () => (cert ? undefined : '--cert FILE is required (make one with: meshlet certs --out DIR --dns NAME)'),
    () => (v['key'] ? undefined : '--key FILE is required'),
    () => (/^\d+(\.\d+)?$/.test(delayText) ? undefined : `--shutdown-delay: "${delayText}" is not valid; allowed: seconds, e.g. 5 or 0.5`),
    () => (LOG_LEVELS.includes(String(v['log-level']) as never) ? undefined : `--log-level: "${v['log-level']}" is not valid; allowed: one of ${LOG_LEVELS.join(', ')}`),
  ]);
  return {
    host: String(v['host']),
    port: Number(portText),
    certFile: cert!,
    keyFile: String(v['key']),
    caFile: (v['ca'] as string | undefined) ?? join(dirname(cert!), CERT_FILES.ca),
    ...(v['ca-bundle-for'] ? { caBundleFor: String(v['ca-bundle-for']) } : {}),
    ...(v['kubeconfig'] ? { kubeconfig: String(v['kubeconfig']) } : {}),
    shutdownDelayMs: Math.round(Number(delayText) * 1000),
    injector,
  };
}

export async function run(parsed: ParsedCommand): Promise<number> {
  const options = parseWebhookOptions(parsed);
  const logger = createLogger({ level: parsed.values['log-level'] as never });
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  const stopSignal = Promise.race([once(process, 'SIGTERM'), once(process, 'SIGINT')]);
  const webhook = await startWebhook(options, logger);
  await stopSignal;
  await webhook.shutdown();
  logger.flush();
  return 0;
}
