import { Type } from '@sinclair/typebox';
import { HttpError, notFound } from '../errors.js';
import type { AttemptFilter } from '../store/types.js';
import { attemptOut, deliveryState, endpointOut, errorResponses, loadEndpoint, loadMessage, mapPage, messageOut, ms, pageQuery, type Req, type RouteContext } from './common.js';
import { eventTypesParam } from './messages.js';
import {
  Channel, DateTime, EndpointMessageOut, EventTypesFilter, Iterator, Limit, ListResponse, MessageAttemptOut, MessageEndpointOut, MessageStatusEnum, Nullable, Uid, WithContent,
} from './schemas.js';

const tags = ['Message Attempt'];
const StatusCodeClass = Type.Unsafe<number>({ type: 'integer', enum: [0, 100, 200, 300, 400, 500] });
const Filters = {
  limit: Limit, iterator: Iterator, status: Type.Optional(Nullable(MessageStatusEnum)), status_code_class: Type.Optional(Nullable(StatusCodeClass)),
  channel: Type.Optional(Nullable(Channel)), before: Type.Optional(Nullable(DateTime)), after: Type.Optional(Nullable(DateTime)),
  with_content: WithContent, event_types: EventTypesFilter,
};
interface FilterQuery {
  limit?: number; iterator?: string | null; status?: number | null; status_code_class?: number | null; channel?: string | null;
  before?: string | null; after?: string | null; with_content?: boolean; event_types?: string[]; endpoint_id?: string | null;
}
const filterOf = (q: FilterQuery): AttemptFilter => ({
  status: q.status ?? undefined, statusCodeClass: q.status_code_class ?? undefined, channel: q.channel ?? undefined,
  before: ms(q.before), after: ms(q.after), eventTypes: eventTypesParam(q.event_types),
});

export function attemptRoutes({ app, hl }: RouteContext): void {
  const attemptList = ListResponse(Type.Ref(MessageAttemptOut), 'MessageAttemptOut');

  app.get('/api/v1/app/:app_id/attempt/msg/:msg_id', {
    schema: {
      tags, summary: 'List the attempts of a message, newest first', params: Type.Object({ app_id: Uid, msg_id: Uid }),
      querystring: Type.Object({ ...Filters, endpoint_id: Type.Optional(Nullable(Uid)) }), response: { 200: attemptList, ...errorResponses },
    },
  }, async (req: Req<{ app_id: string; msg_id: string }, FilterQuery>) => {
    const { app: a, message } = await loadMessage(hl, req.params.app_id, req.params.msg_id);
    const filter = filterOf(req.query);
    if (req.query.endpoint_id) {
      const ep = await hl.store.findEndpoint(a.id, req.query.endpoint_id);
      if (!ep) throw notFound('Endpoint');
      filter.endpointId = ep.id;
    }
    const page = await hl.store.listAttemptsByMessage(message.id, filter, pageQuery(req.query, 'desc'));
    return mapPage(page, (x) => attemptOut(x, req.query.with_content ?? true));
  });

  app.get('/api/v1/app/:app_id/attempt/endpoint/:endpoint_id', {
    schema: {
      tags, summary: 'List the attempts made to an endpoint, newest first', params: Type.Object({ app_id: Uid, endpoint_id: Uid }),
      querystring: Type.Object(Filters), response: { 200: attemptList, ...errorResponses },
    },
  }, async (req: Req<{ app_id: string; endpoint_id: string }, FilterQuery>) => {
    const { endpoint } = await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id);
    const page = await hl.store.listAttemptsByEndpoint(endpoint.id, filterOf(req.query), pageQuery(req.query, 'desc'));
    return mapPage(page, (x) => attemptOut(x, req.query.with_content ?? true));
  });

  app.get('/api/v1/app/:app_id/msg/:msg_id/attempt/:attempt_id', {
    schema: { tags, summary: 'Get one attempt', params: Type.Object({ app_id: Uid, msg_id: Uid, attempt_id: Uid }), response: { 200: { $ref: 'MessageAttemptOut#' }, ...errorResponses } },
  }, async (req: Req<{ app_id: string; msg_id: string; attempt_id: string }>) => {
    const { message } = await loadMessage(hl, req.params.app_id, req.params.msg_id);
    const attempt = await hl.store.findAttempt(message.id, req.params.attempt_id);
    if (!attempt) throw notFound('Message attempt');
    return attemptOut(attempt);
  });

  app.delete('/api/v1/app/:app_id/msg/:msg_id/attempt/:attempt_id/content', {
    schema: { tags, summary: 'Delete the stored response body of an attempt', params: Type.Object({ app_id: Uid, msg_id: Uid, attempt_id: Uid }), response: { 204: { type: 'null' }, ...errorResponses } },
  }, async (req: Req<{ app_id: string; msg_id: string; attempt_id: string }>, reply) => {
    const { message } = await loadMessage(hl, req.params.app_id, req.params.msg_id);
    const attempt = await hl.store.findAttempt(message.id, req.params.attempt_id);
    if (!attempt) throw notFound('Message attempt');
    await hl.store.expungeAttempt(attempt.id);
    return reply.status(204).send();
  });

  app.get('/api/v1/app/:app_id/msg/:msg_id/endpoint', {
    schema: {
      tags, summary: 'List the endpoints a message was sent to, with their delivery status', params: Type.Object({ app_id: Uid, msg_id: Uid }),
      querystring: Type.Object({ limit: Limit, iterator: Iterator }), response: { 200: ListResponse(Type.Ref(MessageEndpointOut), 'MessageEndpointOut'), ...errorResponses },
    },
  }, async (req: Req<{ app_id: string; msg_id: string }, { limit?: number; iterator?: string | null }>) => {
    const { message } = await loadMessage(hl, req.params.app_id, req.params.msg_id);
    const page = await hl.store.listDestinations(message.id, pageQuery(req.query, 'asc'));
    return mapPage(page, ({ endpoint, delivery }) => ({ ...endpointOut(endpoint), ...deliveryState(delivery) }));
  });

  app.get('/api/v1/app/:app_id/endpoint/:endpoint_id/msg', {
    schema: {
      tags, summary: 'List the messages sent to an endpoint, with their delivery status', params: Type.Object({ app_id: Uid, endpoint_id: Uid }),
      querystring: Type.Object({ ...Filters }), response: { 200: ListResponse(Type.Ref(EndpointMessageOut), 'EndpointMessageOut'), ...errorResponses },
    },
  }, async (req: Req<{ app_id: string; endpoint_id: string }, FilterQuery>) => {
    const { endpoint } = await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id);
    const page = await hl.store.listEndpointMessages(endpoint.id, filterOf(req.query), pageQuery(req.query, 'desc'));
    return mapPage(page, ({ message, delivery }) => ({ ...messageOut(message, req.query.with_content ?? true), ...deliveryState(delivery) }));
  });

  app.post('/api/v1/app/:app_id/msg/:msg_id/endpoint/:endpoint_id/resend', {
    schema: {
      tags, summary: 'Send a message to an endpoint again (a manual attempt)', params: Type.Object({ app_id: Uid, msg_id: Uid, endpoint_id: Uid }),
      response: { 202: Type.Object({}), ...errorResponses },
    },
  }, async (req: Req<{ app_id: string; msg_id: string; endpoint_id: string }>, reply) => {
    const { app: a, message } = await loadMessage(hl, req.params.app_id, req.params.msg_id);
    const ep = await hl.store.findEndpoint(a.id, req.params.endpoint_id);
    if (!ep) throw notFound('Endpoint');
    // The contract: a message whose payload was deleted cannot be resent.
    if (message.payload === null) throw new HttpError(400, 'missing_payload', 'The payload of this message was deleted; it cannot be resent');
    await hl.store.resend(message.id, ep.id, Date.now());
    hl.dispatcher?.wake();
    return reply.status(202).send({});
  });
}
