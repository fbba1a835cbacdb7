import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { RouteContext } from './common.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set on POSTs that carry an `idempotency-key` header. */
    idempotencyKey?: string;
    /** Set by a route that stored its response itself (in its own transaction). */
    idempotencyStored?: boolean;
  }
}

/** Keys are kept this long; a replay after that runs the request again. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;

/**
 * `idempotency-key` on POST: the first response with a 2xx status is stored
 * and every later request with the same key and path gets it back unchanged.
 * Concurrent requests with one key wait for the first to finish.
 */
export function idempotency({ app, hl }: RouteContext): void {
  const inflight = new Map<string, Promise<void>>();
  const release = new Map<string, () => void>();

  const keyOf = (req: FastifyRequest) => {
    const raw = req.headers['idempotency-key'];
    if (req.method !== 'POST' || typeof raw !== 'string' || raw === '') return undefined;
    const path = req.url.split('?', 1)[0];
    return createHash('sha256').update(`${path}\n${raw}`).digest('base64url');
  };

  app.addHook('preHandler', async (req, reply) => {
    const key = keyOf(req);
    if (!key) return;
    while (inflight.has(key)) await inflight.get(key);
    const hit = await hl.store.getIdempotent(key);
    if (hit && hit.createdAt > Date.now() - IDEMPOTENCY_TTL_MS) {
      reply.header('idempotent-replayed', 'true');
      return reply.status(hit.statusCode).type('application/json').send(hit.body);
    }
    req.idempotencyKey = key;
    inflight.set(key, new Promise<void>((resolve) => release.set(key, resolve)));
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const key = req.idempotencyKey;
    if (!key) return payload;
    try {
      if (!req.idempotencyStored && reply.statusCode >= 200 && reply.statusCode < 300) {
        const body = typeof payload === 'string' ? payload : payload == null ? '' : String(payload);
        await hl.store.putIdempotent({ key, statusCode: reply.statusCode, body, createdAt: Date.now() });
      }
    } finally {
      done(key);
    }
    return payload;
  });

  const done = (key: string) => {
    release.get(key)?.();
    release.delete(key);
    inflight.delete(key);
  };
  app.addHook('onResponse', async (req) => {
    if (req.idempotencyKey) done(req.idempotencyKey);
  });
}
