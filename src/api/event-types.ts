import { Type } from '@sinclair/typebox';
import { conflict, notFound } from '../errors.js';
import { UniqueViolation, type EventTypeRow } from '../store/types.js';
import { errorResponses, eventTypeOut, mapPage, pageQuery, type Req, type RouteContext } from './common.js';
import { EventTypeIn, EventTypeName, EventTypeOut, EventTypePatch, EventTypeUpdate, Iterator, Limit, ListResponse, Order } from './schemas.js';

const Params = Type.Object({ event_type_name: EventTypeName });
const tags = ['Event Type'];
type P = { event_type_name: string };

function fromInput(name: string, b: EventTypeUpdate, now: number, createdAt = now): EventTypeRow {
  return {
    name, description: b.description, archived: b.archived ?? false, deprecated: b.deprecated ?? false, featureFlag: b.featureFlag ?? null,
    schemas: (b.schemas as Record<string, unknown> | null | undefined) ?? null, createdAt, updatedAt: now,
  };
}

/** The global catalogue of event types. It documents; it does not gate messages. */
export function eventTypeRoutes({ app, hl }: RouteContext): void {
  const out = { $ref: 'EventTypeOut#' };

  app.get('/api/v1/event-type', {
    schema: {
      tags, summary: 'List event types',
      querystring: Type.Object({ limit: Limit, iterator: Iterator, order: Order, include_archived: Type.Optional(Type.Boolean()), with_content: Type.Optional(Type.Boolean()) }),
      response: { 200: ListResponse(Type.Ref(EventTypeOut), 'EventTypeOut'), ...errorResponses },
    },
  }, async (req: Req<never, { limit?: number; iterator?: string | null; order?: 'ascending' | 'descending' | null; include_archived?: boolean; with_content?: boolean }>) => {
    const page = await hl.store.listEventTypes(pageQuery(req.query, 'asc'), req.query.include_archived ?? false);
    return mapPage(page, (e) => eventTypeOut(e, req.query.with_content ?? false));
  });

  app.post('/api/v1/event-type', {
    schema: { tags, summary: 'Create an event type (unarchives an archived one)', body: EventTypeIn, response: { 201: out, ...errorResponses } },
  }, async (req: Req<never, unknown, EventTypeIn>, reply) => {
    const now = Date.now();
    const existing = await hl.store.findEventType(req.body.name);
    if (existing && !existing.archived) throw conflict('An event type with this name already exists');
    const row = fromInput(req.body.name, req.body, now, existing?.createdAt ?? now);
    try {
      if (existing) await hl.store.updateEventType(row);
      else await hl.store.insertEventType(row);
    } catch (e) {
      if (e instanceof UniqueViolation) throw conflict('An event type with this name already exists');
      throw e;
    }
    return reply.status(201).send(eventTypeOut(row));
  });

  app.get('/api/v1/event-type/:event_type_name', {
    schema: { tags, summary: 'Get an event type', params: Params, response: { 200: out, ...errorResponses } },
  }, async (req: Req<P>) => {
    const row = await hl.store.findEventType(req.params.event_type_name);
    if (!row) throw notFound('Event type');
    return eventTypeOut(row);
  });

  app.put('/api/v1/event-type/:event_type_name', {
    schema: { tags, summary: 'Update an event type, or create it', params: Params, body: EventTypeUpdate, response: { 200: out, 201: out, ...errorResponses } },
  }, async (req: Req<P, unknown, EventTypeUpdate>, reply) => {
    const now = Date.now();
    const existing = await hl.store.findEventType(req.params.event_type_name);
    const row = fromInput(req.params.event_type_name, req.body, now, existing?.createdAt ?? now);
    if (existing) {
      await hl.store.updateEventType(row);
      return reply.status(200).send(eventTypeOut(row));
    }
    await hl.store.insertEventType(row);
    return reply.status(201).send(eventTypeOut(row));
  });

  app.patch('/api/v1/event-type/:event_type_name', {
    schema: { tags, summary: 'Partly update an event type', params: Params, body: EventTypePatch, response: { 200: out, ...errorResponses } },
  }, async (req: Req<P, unknown, EventTypePatch>) => {
    const existing = await hl.store.findEventType(req.params.event_type_name);
    if (!existing) throw notFound('Event type');
    const b = req.body;
    const row: EventTypeRow = {
      ...existing,
      description: b.description ?? existing.description,
      archived: b.archived ?? existing.archived,
      deprecated: b.deprecated ?? existing.deprecated,
      featureFlag: b.featureFlag === undefined ? existing.featureFlag : b.featureFlag,
      schemas: b.schemas === undefined ? existing.schemas : (b.schemas as Record<string, unknown> | null),
      updatedAt: Date.now(),
    };
    await hl.store.updateEventType(row);
    return eventTypeOut(row);
  });

  app.delete('/api/v1/event-type/:event_type_name', {
    schema: {
      tags, summary: 'Archive an event type (or remove it with expunge=true)', params: Params,
      querystring: Type.Object({ expunge: Type.Optional(Type.Boolean()) }), response: { 204: { type: 'null' }, ...errorResponses },
    },
  }, async (req: Req<P, { expunge?: boolean }>, reply) => {
    const existing = await hl.store.findEventType(req.params.event_type_name);
    if (!existing) throw notFound('Event type');
    if (req.query.expunge) await hl.store.deleteEventType(existing.name);
    else await hl.store.updateEventType({ ...existing, archived: true, updatedAt: Date.now() });
    return reply.status(204).send();
  });
}
