import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpError, notFound, unauthorized } from '../errors.js';
import type { Hooklane } from '../hooklane.js';
import type { Auth } from './tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller, set by the auth hook on every non-public route. */
    auth: Auth;
  }
}

/** Routes anyone may call. */
export const PUBLIC_PATHS = new Set(['/api/v1/health', '/api/v1/health/', '/api/v1/health/ping', '/api/v1/openapi.json']);

/** Routes without an application that an app token may call: reading the event type catalogue. */
const APP_TOKEN_GLOBAL_ROUTES = new Set(['/api/v1/event-type', '/api/v1/event-type/:event_type_name'].flatMap((u) => [`GET ${u}`, `HEAD ${u}`]));
/** Routes of its own application that an app token may not call: the application record belongs to the admin. */
const APP_TOKEN_DENIED_ROUTES = new Set(['PUT', 'PATCH', 'DELETE'].map((m) => `${m} /api/v1/app/:app_id`));

export const forbidden = (detail: string) => new HttpError(403, 'forbidden', detail);

/** `Authorization: Bearer <token>` (the scheme is case-insensitive). */
export function bearer(req: Pick<FastifyRequest, 'headers'>): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^bearer[ \t]+(.*?)[ \t]*$/i.exec(h);
  return m?.[1] || undefined;
}

/**
 * Authentication and application scope, in one onRequest hook, before body
 * parsing, idempotency replay and every handler:
 * - no or an unknown/revoked token: 401;
 * - an app token on a route with an `:app_id` parameter: the parameter (id
 *   or uid) must resolve to the token's application, else 404 exactly as for
 *   an application that does not exist (no existence oracle); endpoints,
 *   messages and attempts are then looked up within that application by the
 *   handlers, so nothing of another application is reachable;
 * - an app token on any other route: 403, except reading event types. New
 *   routes are therefore admin-only for app tokens until allowed here.
 */
export function registerAuth(app: FastifyInstance, hl: Hooklane): void {
  // Fastify wants the slot declared up front (null: reference types are set per request).
  app.decorateRequest('auth', null as never);
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?', 1)[0]!;
    if (PUBLIC_PATHS.has(path)) return;
    const token = bearer(req);
    const auth = token ? await hl.tokens.authenticate(token) : null;
    if (!auth) throw unauthorized();
    req.auth = auth;
    if (auth.kind === 'app') await checkAppScope(hl, req, auth.appId);
  });
}

async function checkAppScope(hl: Hooklane, req: FastifyRequest, appId: string): Promise<void> {
  const route = req.routeOptions.url;
  if (route === undefined) return; // no such route: the not-found handler answers, with no data
  const key = `${req.method} ${route}`;
  const param = (req.params as Record<string, string | undefined>).app_id;
  if (param === undefined) {
    if (APP_TOKEN_GLOBAL_ROUTES.has(key)) return;
    throw forbidden('This token is scoped to one application and cannot use this route');
  }
  const target = await hl.store.findApp(param);
  if (!target || target.id !== appId) throw notFound('Application');
  if (APP_TOKEN_DENIED_ROUTES.has(key)) throw forbidden('This token is scoped to one application and cannot change or delete the application itself');
}
