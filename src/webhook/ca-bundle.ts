import { AdmissionregistrationV1Api, KubeConfig } from '@kubernetes/client-node';
import { Backoff } from '../common/backoff.js';
import type { Logger } from '../common/logger.js';

const INITIAL_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

export interface CaBundleTarget {
  /** The MutatingWebhookConfiguration whose webhooks get our CA. */
  name: string;
  /** A kubeconfig file; in-cluster credentials (or $KUBECONFIG) when absent. */
  kubeconfig?: string;
}

/**
 * Writes the CA into every webhook's clientConfig.caBundle of one MutatingWebhookConfiguration:
 * a GET, then a JSON Patch that tests each webhook's name before setting its caBundle (so a
 * concurrent edit fails the patch instead of writing to the wrong entry). Needs only get + patch
 * on that one object. Returns how many webhooks changed (0 when already current).
 */
export async function publishCaBundle(target: CaBundleTarget, caPem: string): Promise<number> {
  const kubeConfig = new KubeConfig();
  if (target.kubeconfig) kubeConfig.loadFromFile(target.kubeconfig);
  else kubeConfig.loadFromDefault();
  const api = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  const caBundle = Buffer.from(caPem, 'utf8').toString('base64');
  const current = await api.readMutatingWebhookConfiguration({ name: target.name });
  const ops: object[] = [];
  (current.webhooks ?? []).forEach((webhook, index) => {
    if (webhook.clientConfig?.caBundle === caBundle) return;
    ops.push({ op: 'test', path: `/webhooks/${index}/name`, value: webhook.name });
    ops.push({ op: 'add', path: `/webhooks/${index}/clientConfig/caBundle`, value: caBundle });
  });
  if (ops.length === 0) return 0;
  await api.patchMutatingWebhookConfiguration({ name: target.name, body: ops });
  return ops.length / 2;
}

/** Publishes the CA, retrying with backoff until it succeeds or the signal aborts. */
export async function publishCaBundleWithRetry(target: CaBundleTarget, caPem: string, log: Logger, signal: AbortSignal): Promise<boolean> {
  const backoff = new Backoff({ initialMs: INITIAL_BACKOFF_MS, maxMs: MAX_BACKOFF_MS });
  while (!signal.aborted) {
    try {
      const changed = await publishCaBundle(target, caPem);
      log.info({ webhookConfiguration: target.name, changed }, changed > 0 ? 'caBundle published' : 'caBundle already current');
      return true;
    } catch (err) {
      const delayMs = backoff.next();
      log.warn({ err: summarize(err), webhookConfiguration: target.name, attempt: backoff.attempts, retryInMs: delayMs }, 'publishing caBundle failed');
      await sleep(delayMs, signal);
    }
  }
  return false;
}

/** client-node's ApiException carries the whole response; keep the log line short. */
function summarize(err: unknown): { message: string; code?: number } {
  const e = err as { message?: string; code?: number };
  return { message: String(e?.message ?? err).slice(0, 500), ...(typeof e?.code === 'number' ? { code: e.code } : {}) };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
