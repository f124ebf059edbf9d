import type { FastifyInstance } from 'fastify';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { MESHLET_VERSION } from '../../common/version.js';
import { injectPod } from '../../inject/injector.js';
import { buildPatch } from '../../inject/patch.js';
import type { InjectorConfig } from '../../inject/settings.js';
import {
  ADMISSION_API_VERSION,
  ADMISSION_KIND,
  admissionReviewRequestSchema,
  admissionReviewResponseSchema,
  errorResponseSchema,
  type AdmissionResponse,
  type AdmissionReviewRequest,
  type AdmissionReviewResponse,
} from '../schemas.js';

const WARNING_PREFIX = 'meshlet: ';

type Decision = 'inject' | 'skip' | 'deny' | 'ignore' | 'error';

/** POST /mutate: AdmissionReview v1 in, AdmissionReview v1 out with the same uid. */
export function registerMutateRoute(app: FastifyInstance, config: InjectorConfig, log: Logger): void {
  app.post<{ Body: AdmissionReviewRequest }>(
    '/mutate',
    {
      schema: {
        body: admissionReviewRequestSchema,
        response: { 200: admissionReviewResponseSchema, '4xx': errorResponseSchema },
      },
    },
    async (httpRequest) => {
      const started = performance.now();
      const review = httpRequest.body.request;
      const object = review.object ?? undefined;
      const metadata = (object?.['metadata'] ?? {}) as { name?: string; generateName?: string; namespace?: string };
      const namespace = review.namespace ?? metadata.namespace ?? '';
      const { response, decision, reasons } = answer(review, object as V1Pod | undefined, namespace, config, log);
      log.info(
        {
          uid: review.uid,
          namespace,
          pod: metadata.name ?? metadata.generateName ?? review.name,
          decision,
          ...(reasons.length > 0 ? { reasons } : {}),
          ...(review.dryRun ? { dryRun: true } : {}),
          durationMs: Math.round((performance.now() - started) * 1000) / 1000,
        },
        'review',
      );
      const body: AdmissionReviewResponse = { apiVersion: ADMISSION_API_VERSION, kind: ADMISSION_KIND, response };
      return body;
    },
  );
}

function answer(
  review: AdmissionReviewRequest['request'],
  pod: V1Pod | undefined,
  namespace: string,
  config: InjectorConfig,
  log: Logger,
): { response: AdmissionResponse; decision: Decision; reasons: string[] } {
  const uid = review.uid;
  const allow = (decision: Decision, reasons: string[], warn: boolean) => ({
    response: { uid, allowed: true, ...(warn && reasons.length > 0 ? { warnings: reasons.map((r) => WARNING_PREFIX + r) } : {}) },
    decision,
    reasons,
  });
  if (review.kind.kind !== 'Pod') return allow('ignore', [`only Pods are meshed; ${review.kind.kind} passed unchanged`], true);
  if (review.operation !== 'CREATE') return allow('ignore', [`only Pod CREATE is meshed; ${review.operation} passed unchanged`], true);
  if (pod === undefined) return allow('ignore', ['the review carries no Pod object; passed unchanged'], true);
  try {
    const outcome = injectPod(pod, namespace, config, MESHLET_VERSION);
    switch (outcome.kind) {
      case 'skipped': {
        const noContainers = outcome.reasons.some((r) => r.code === 'no-containers');
        const alreadyInjected = outcome.reasons.some((r) => r.code === 'already-injected');
        return allow('skip', outcome.reasons.map((r) => r.message), (outcome.requested && !alreadyInjected) || noContainers);
      }
      case 'denied':
        return {
          response: { uid, allowed: false, status: { code: 422, reason: 'Invalid', message: outcome.message } },
          decision: 'deny',
          reasons: [outcome.message],
        };
      case 'injected': {
        const patch = buildPatch(pod, outcome.pod);
        return {
          response: { uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') },
          decision: 'inject',
          reasons: [],
        };
      }
    }
  } catch (err) {
    // Our own bug must not block the Pod: it is admitted unmeshed, loudly (README explains why).
    log.error({ err, uid, namespace }, 'building the patch failed');
    return allow('error', [`not meshed: the injector failed (${(err as Error).message}); see the meshlet webhook log`], true);
  }
}
