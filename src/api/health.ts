import type { RouteContext } from './common.js';

/** Public liveness: 204 when the database answers, 503 when it does not. */
export function healthRoutes({ app, hl }: RouteContext): void {
  const schema = { tags: ['Health'], summary: 'Health check', security: [], response: { 204: { type: 'null', description: 'Healthy' }, 503: { $ref: 'HttpErrorOut#' } } };
  for (const url of ['/api/v1/health', '/api/v1/health/ping']) {
    app.route({
      method: ['GET', 'HEAD'],
      url,
      schema,
      handler: async (_req, reply) => {
        try {
          await hl.store.getSetting('health');
        } catch (e) {
          hl.log.error({ err: e }, 'health check: database unavailable');
          return reply.status(503).send({ code: 'unavailable', detail: 'database unavailable' });
        }
        return reply.status(204).send();
      },
    });
  }
}
