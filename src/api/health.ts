import type { RouteContext } from './common.js';

export function healthRoutes({ app }: RouteContext): void {
  const schema = { tags: ['Health'], summary: 'Health check', security: [], response: { 204: { type: 'null', description: 'Healthy' } } };
  for (const url of ['/api/v1/health', '/api/v1/health/ping']) {
    app.route({ method: ['GET', 'HEAD'], url, schema, handler: async (_req, reply) => reply.status(204).send() });
  }
}
