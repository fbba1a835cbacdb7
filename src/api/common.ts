import type { FastifyInstance, FastifyRequest } from 'fastify';
import { notFound } from '../errors.js';
import type { Hooklane } from '../hooklane.js';
import {
  STATUS_TEXT, type AppRow, type AttemptRow, type DeliveryRow, type EndpointRow, type EventTypeRow, type MessageRow, type Page, type PageQuery,
} from '../store/types.js';

/** What every route module receives. */
export interface RouteContext {
  app: FastifyInstance;
  hl: Hooklane;
}

export const MAX_LIMIT = 250;
export const DEFAULT_LIMIT = 50;

export function pageQuery(
  q: { limit?: number; iterator?: string | null; order?: 'ascending' | 'descending' | null },
  natural: 'asc' | 'desc',
): PageQuery {
  const limit = q.limit === undefined ? DEFAULT_LIMIT : Math.min(Math.max(q.limit, 1), MAX_LIMIT);
  const order = q.order === 'ascending' ? 'asc' : q.order === 'descending' ? 'desc' : natural;
  return { limit, iterator: q.iterator ?? null, order };
}

export const iso = (ms: number) => new Date(ms).toISOString();
export const ms = (isoDate: string | null | undefined): number | undefined => (isoDate ? Date.parse(isoDate) : undefined);

export function mapPage<T, U>(page: Page<T>, f: (t: T) => U): Page<U> {
  return { ...page, data: page.data.map(f) };
}

export async function loadApp(hl: Hooklane, idOrUid: string): Promise<AppRow> {
  const app = await hl.store.findApp(idOrUid);
  if (!app) throw notFound('Application');
  return app;
}

export async function loadEndpoint(hl: Hooklane, appIdOrUid: string, epIdOrUid: string): Promise<{ app: AppRow; endpoint: EndpointRow }> {
  const app = await loadApp(hl, appIdOrUid);
  const endpoint = await hl.store.findEndpoint(app.id, epIdOrUid);
  if (!endpoint) throw notFound('Endpoint');
  return { app, endpoint };
}

export async function loadMessage(hl: Hooklane, appIdOrUid: string, msgIdOrEventId: string): Promise<{ app: AppRow; message: MessageRow }> {
  const app = await loadApp(hl, appIdOrUid);
  const message = await hl.store.findMessage(app.id, msgIdOrEventId);
  if (!message) throw notFound('Message');
  return { app, message };
}

// --- wire shapes -----------------------------------------------------------

export const appOut = (a: AppRow) => ({
  id: a.id, uid: a.uid, name: a.name, metadata: a.metadata, throttleRate: a.throttleRate, createdAt: iso(a.createdAt), updatedAt: iso(a.updatedAt),
});

export const eventTypeOut = (e: EventTypeRow, withSchemas = true) => ({
  name: e.name, description: e.description, archived: e.archived, deprecated: e.deprecated, featureFlag: e.featureFlag,
  ...(withSchemas ? { schemas: e.schemas } : {}), createdAt: iso(e.createdAt), updatedAt: iso(e.updatedAt),
});

export const endpointOut = (e: EndpointRow) => ({
  id: e.id, uid: e.uid, url: e.url, description: e.description, disabled: e.disabled, eventTypes: e.eventTypes, filterTypes: e.eventTypes, channels: e.channels,
  metadata: e.metadata, throttleRate: e.throttleRate, version: 1, createdAt: iso(e.createdAt), updatedAt: iso(e.updatedAt),
});

export const messageOut = (m: MessageRow, withContent = true) => ({
  id: m.id, eventType: m.eventType, eventId: m.eventId, channels: m.channels,
  payload: withContent && m.payload !== null ? (JSON.parse(m.payload) as Record<string, unknown>) : {},
  timestamp: iso(m.createdAt),
});

export const deliveryState = (d: DeliveryRow) => ({
  status: d.status, statusText: STATUS_TEXT[d.status], nextAttempt: d.nextAttemptAt !== null && d.status === 1 ? iso(d.nextAttemptAt) : null,
});

export const attemptOut = (a: AttemptRow, withContent = true) => ({
  id: a.id, msgId: a.msgId, endpointId: a.endpointId, url: a.url, response: withContent ? a.response : '',
  responseStatusCode: a.statusCode, responseDurationMs: a.durationMs, status: a.status, statusText: STATUS_TEXT[a.status],
  triggerType: a.triggerType as 0 | 1, timestamp: iso(a.createdAt),
});

/** Standard error responses, for the OpenAPI document. */
export const errorResponses = {
  401: { $ref: 'HttpErrorOut#' },
  // An application token outside what it may do (src/auth/hook.ts).
  403: { $ref: 'HttpErrorOut#' },
  404: { $ref: 'HttpErrorOut#' },
  409: { $ref: 'HttpErrorOut#' },
  422: { $ref: 'HTTPValidationError#' },
};

export type Req<P = Record<string, string>, Q = unknown, B = unknown> = FastifyRequest<{ Params: P; Querystring: Q; Body: B }>;
