import Fastify, { type FastifyInstance } from 'fastify';
import { healthRoutes } from './api/health.js';
import { HttpErrorOut } from './api/schemas.js';
import type { Hooklane } from './hooklane.js';

/**
 * What a worker process (HOOKLANE_ROLE=worker) serves: health only, so that
 * orchestrators and load balancers can probe it. Everything else is 404:
 * the API is served by the api (or all) processes.
 */
export async function buildWorkerServer(hl: Hooklane): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.addSchema(HttpErrorOut);
  healthRoutes({ app, hl });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({
      code: 'not_found',
      detail: `no route ${req.method} ${req.url.split('?', 1)[0]}: this process has HOOKLANE_ROLE=worker and serves only health; the API is on the api processes`,
    }),
  );
  await app.ready();
  return app;
}
