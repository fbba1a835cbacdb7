import { Type } from '@sinclair/typebox';
import { matches } from '../domain/filter.js';
import { conflict, invalid, notFound } from '../errors.js';
import { newId } from '../ids.js';
import { UniqueViolation, type AppRow, type MessageRow } from '../store/types.js';
import { newApp } from './applications.js';
import { errorResponses, iso, loadMessage, mapPage, messageOut, ms, pageQuery, type Req, type RouteContext } from './common.js';
import { DateTime, EventTypesFilter, Iterator, Limit, ListResponse, MessageIn, MessageOut, Nullable, Uid, WithContent, Channel } from './schemas.js';

const AppParams = Type.Object({ app_id: Uid });
const MsgParams = Type.Object({ app_id: Uid, msg_id: Uid });
type AP = { app_id: string };
type MP = { app_id: string; msg_id: string };
const tags = ['Message'];

/** `event_types` may come repeated or comma-separated. */
export function eventTypesParam(v: string[] | undefined, loc = ['query', 'event_types']): string[] | undefined {
  if (!v) return undefined;
  const out = v.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  for (const t of out) if (!/^[a-zA-Z0-9\-_.]{1,256}$/.test(t)) throw invalid(loc, `invalid event type name ${JSON.stringify(t)}`);
  return out.length > 0 ? out : undefined;
}

/** MessageOut as JSON text, splicing the stored payload in without re-parsing it. */
function messageJson(m: MessageRow, withContent: boolean): string {
  return (
    `{"id":${JSON.stringify(m.id)},"eventType":${JSON.stringify(m.eventType)},"eventId":${JSON.stringify(m.eventId)},` +
    `"channels":${JSON.stringify(m.channels)},"payload":${withContent && m.payload !== null ? m.payload : '{}'},"timestamp":"${iso(m.createdAt)}"}`
  );
}

export function messageRoutes(ctx: RouteContext): void {
  const { app, hl } = ctx;

  app.post('/api/v1/app/:app_id/msg', {
    schema: {
      tags, summary: 'Send a message to every matching endpoint of the application',
      description: 'The message and its deliveries are on disk before the 202 is sent.',
      params: AppParams, querystring: Type.Object({ with_content: WithContent }), body: MessageIn,
      response: { 202: { $ref: 'MessageOut#' }, ...errorResponses },
    },
  }, async (req: Req<AP, { with_content?: boolean }, MessageIn>, reply) => {
    const b = req.body;
    const now = Date.now();
    let target: AppRow | null = await hl.store.findApp(req.params.app_id);
    let createApp: AppRow | undefined;
    if (!target) {
      if (!b.application) throw notFound('Application');
      if (req.params.app_id.startsWith('app_')) throw invalid(['path', 'app_id'], 'an application created with a message needs a uid, not an id');
      createApp = newApp({ ...b.application, uid: req.params.app_id }, now);
      target = createApp;
    }
    const channels = b.channels ?? null;
    const endpoints = createApp ? [] : await hl.store.appEndpoints(target.id);
    const message: MessageRow = {
      id: newId('msg', now), appId: target.id, eventId: b.eventId ?? null, eventType: b.eventType, channels,
      payload: JSON.stringify(b.payload), createdAt: now,
    };
    const body = messageJson(message, req.query.with_content ?? true);
    const key = req.idempotencyKey;
    if (key) req.idempotencyStored = true;
    try {
      const targets = endpoints.filter((e) => matches(e, b.eventType, channels));
      await hl.outbox.submit(
        { message, endpointIds: targets.map((e) => e.id), createApp, idempotency: key ? { key, statusCode: 202, body, createdAt: now } : undefined },
        targets,
      );
    } catch (e) {
      if (e instanceof UniqueViolation) throw conflict('A message with this eventId already exists in this application');
      throw e;
    }
    return reply.status(202).type('application/json').send(body);
  });

  app.get('/api/v1/app/:app_id/msg', {
    schema: {
      tags, summary: 'List messages, newest first', params: AppParams,
      querystring: Type.Object({
        limit: Limit, iterator: Iterator, channel: Type.Optional(Nullable(Channel)), before: Type.Optional(Nullable(DateTime)),
        after: Type.Optional(Nullable(DateTime)), with_content: WithContent, event_types: EventTypesFilter,
      }),
      response: { 200: ListResponse(Type.Ref(MessageOut), 'MessageOut'), ...errorResponses },
    },
  }, async (req: Req<AP, { limit?: number; iterator?: string | null; channel?: string | null; before?: string | null; after?: string | null; with_content?: boolean; event_types?: string[] }>) => {
    const q = req.query;
    const a = await hl.store.findApp(req.params.app_id);
    if (!a) throw notFound('Application');
    const page = await hl.store.listMessages(
      a.id,
      { channel: q.channel ?? undefined, eventTypes: eventTypesParam(q.event_types), before: ms(q.before), after: ms(q.after) },
      pageQuery(q, 'desc'),
    );
    return mapPage(page, (m) => messageOut(m, q.with_content ?? true));
  });

  app.get('/api/v1/app/:app_id/msg/:msg_id', {
    schema: { tags, summary: 'Get a message by id or eventId', params: MsgParams, querystring: Type.Object({ with_content: WithContent }), response: { 200: { $ref: 'MessageOut#' }, ...errorResponses } },
  }, async (req: Req<MP, { with_content?: boolean }>) => {
    const { message } = await loadMessage(hl, req.params.app_id, req.params.msg_id);
    return messageOut(message, req.query.with_content ?? true);
  });

  app.delete('/api/v1/app/:app_id/msg/:msg_id/content', {
    schema: { tags, summary: 'Delete the payload of a message', params: MsgParams, response: { 204: { type: 'null' }, ...errorResponses } },
  }, async (req: Req<MP>, reply) => {
    const { message } = await loadMessage(hl, req.params.app_id, req.params.msg_id);
    await hl.store.expungeMessage(message.id);
    return reply.status(204).send();
  });
}
