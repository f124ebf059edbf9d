import type { FastifyInstance } from 'fastify';

/** Mutable readiness: false before certificates load and once shutdown has begun. */
export interface Readiness {
  ready: boolean;
}

/** /healthz: the process serves. /readyz: it should get new reviews. */
export function registerHealthRoutes(app: FastifyInstance, readiness: Readiness): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (readiness.ready) return { status: 'ready' };
    return reply.code(503).send({ status: 'not ready' });
  });
}
