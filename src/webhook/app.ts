import fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { SecureContextOptions } from 'node:tls';
import { InvalidReviewError } from '../common/errors.js';
import type { PinoLogger } from '../common/logger.js';
import type { InjectorConfig } from '../inject/settings.js';
import { registerHealthRoutes, type Readiness } from './routes/health.js';
import { registerMutateRoute } from './routes/mutate.js';
import { ADMISSION_API_VERSION, ADMISSION_KIND } from './schemas.js';

/**
 * The largest review body accepted. etcd keeps objects up to 1.5 MiB and a review can carry the
 * object twice (object + oldObject), plus its envelope.
 */
export const MAX_REVIEW_BYTES = 4 * 1024 * 1024;
/** Longer than the webhook configuration's timeoutSeconds: the API server gives up first. */
const REQUEST_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 75_000;

export interface WebhookAppDeps {
  logger: PinoLogger;
  /** TLS material; absent only in tests that use app.inject(). */
  https?: SecureContextOptions;
  readiness?: Readiness;
}

/** The webhook as a fastify instance, routes registered; it never listens (main.ts does). */
export function buildApp(config: InjectorConfig, deps: WebhookAppDeps): FastifyInstance {
  const log = deps.logger.child({ component: 'webhook' });
  const options: FastifyServerOptions & { https?: SecureContextOptions } = {
    loggerInstance: log,
    // One line per review comes from the route; fastify's per-request lines are off.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_REVIEW_BYTES,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    ...(deps.https ? { https: deps.https } : {}),
  };
  const app = fastify(options) as unknown as FastifyInstance;
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const { statusCode, message } = describeError(error);
    if (statusCode >= 500) log.error({ err: error, url: request.url }, 'request failed');
    else log.warn({ statusCode, url: request.url, reason: message }, 'rejected request');
    return reply.code(statusCode).send({ statusCode, error: reasonPhrase(statusCode), message });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `${request.method} ${request.url} is not served; use POST /mutate, GET /healthz or GET /readyz` }),
  );
  app.addHook('onRequest', async (request) => {
    log.debug({ reqId: request.id, method: request.method, url: request.url }, 'request received');
  });
  registerHealthRoutes(app, deps.readiness ?? { ready: true });
  registerMutateRoute(app, config, log);
  return app;
}

const EXPECTED = `send an ${ADMISSION_API_VERSION} ${ADMISSION_KIND} as JSON`;

function describeError(error: FastifyError): { statusCode: number; message: string } {
  if (error.validation) {
    const details = error.validation.map((v) => {
      const where = `${error.validationContext ?? 'body'}${v.instancePath.replaceAll('/', '.')}`;
      const allowed = (v.params as { allowedValue?: unknown }).allowedValue;
      return `${where} ${v.message}${allowed !== undefined ? ` (${JSON.stringify(allowed)})` : ''}`;
    });
    return { statusCode: 400, message: `not an AdmissionReview we can answer: ${details.join('; ')}; ${EXPECTED}` };
  }
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { statusCode: 400, message: `the body is not valid JSON; ${EXPECTED}` };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { statusCode: 413, message: `the body is larger than ${MAX_REVIEW_BYTES} bytes, the most a review may carry` };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { statusCode: 415, message: `Content-Type is not accepted; ${EXPECTED} (Content-Type: application/json)` };
  }
  if (error instanceof InvalidReviewError) return { statusCode: 400, message: error.message };
  const statusCode = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
  return { statusCode, message: statusCode >= 500 ? 'internal error; see the meshlet webhook log' : error.message };
}

function reasonPhrase(statusCode: number): string {
  const phrases: Record<number, string> = { 400: 'Bad Request', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 404: 'Not Found', 503: 'Service Unavailable' };
  return phrases[statusCode] ?? (statusCode >= 500 ? 'Internal Server Error' : 'Client Error');
}
