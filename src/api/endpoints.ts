import { Type } from '@sinclair/typebox';
import { currentKey, DEFAULT_GRACE_SECONDS, examplePayload, reservedHeader, rotate, sensitiveHeader } from '../domain/endpoint-rules.js';
import { AddressPolicy, BlockedAddressError } from '../delivery/ssrf.js';
import { conflict, invalid } from '../errors.js';
import { newId } from '../ids.js';
import { generateKey, normaliseKey, receiverKey, signatureTypeOf } from '../signing/keys.js';
import { UniqueViolation, type EndpointRow } from '../store/types.js';
import { endpointOut, errorResponses, iso, loadApp, loadEndpoint, mapPage, messageOut, ms, pageQuery, type Req, type RouteContext } from './common.js';
import {
  EndpointHeadersIn, EndpointHeadersPatchIn, EndpointIn, EndpointOut, EndpointPatch, EndpointSecretRotateIn, EndpointUpdate, EventExampleIn, Iterator, Limit,
  ListResponse, Nullable, DateTime, Order, RecoverIn, Uid,
} from './schemas.js';

const AppParams = Type.Object({ app_id: Uid });
const EpParams = Type.Object({ app_id: Uid, endpoint_id: Uid });
type AP = { app_id: string };
type EP = { app_id: string; endpoint_id: string };
const tags = ['Endpoint'];

export function endpointRoutes(ctx: RouteContext): void {
  const { app, hl } = ctx;
  const out = { $ref: 'EndpointOut#' };
  const none = { type: 'null' };
  // The port actually listened on (HOOKLANE_PORT may be 0): Hooklane never delivers to itself.
  const listenPort = () => (hl.url ? Number(new URL(hl.url).port) : 0);
  const policy = AddressPolicy.fromConfig(hl.config, () => [listenPort()]);

  // Scheme, credentials, HTTPS-only, non-public IP literals in any spelling, loopback and
  // metadata names, Hooklane itself. Names are resolved only at dial time, checked there.
  const checkUrl = (url: string, field = 'url') => {
    try {
      policy.checkUrl(url, 'save');
    } catch (e) {
      if (e instanceof BlockedAddressError) throw invalid(['body', field], e.message);
      throw e;
    }
  };
  // Svix SDKs send the endpoint's event types as `filterTypes`; the Svix
  // server takes it as an alias of `eventTypes`, and so do we.
  const filterTypesAlias = async (req: { body: unknown }) => {
    const b = req.body as Record<string, unknown> | null;
    if (b === null || typeof b !== 'object' || Array.isArray(b) || !('filterTypes' in b)) return;
    if (!('eventTypes' in b)) b.eventTypes = b.filterTypes;
    delete b.filterTypes;
  };
  const checkUid = (uid: string | null | undefined) => {
    if (uid && uid.startsWith('ep_')) throw invalid(['body', 'uid'], 'uid must not start with ep_');
  };
  // A key given through the API (whsec_/bare base64: HMAC; whsk_: ed25519), or
  // a new one of the configured default scheme (HOOKLANE_DEFAULT_SIGNATURE_TYPE).
  const secretOf = (given: string | null | undefined, loc = ['body', 'secret']) => {
    if (!given) return generateKey(hl.config.defaultSignatureType);
    try {
      return normaliseKey(given);
    } catch (e) {
      throw invalid(loc, (e as Error).message);
    }
  };
  const save = async (row: EndpointRow, insert: boolean) => {
    try {
      if (insert) await hl.store.insertEndpoint(row);
      else await hl.store.updateEndpoint(row);
    } catch (e) {
      if (e instanceof UniqueViolation) throw conflict('An endpoint with this uid already exists in this application');
      throw e;
    }
  };

  app.get('/api/v1/app/:app_id/endpoint', {
    schema: { tags, summary: 'List endpoints', params: AppParams, querystring: Type.Object({ limit: Limit, iterator: Iterator, order: Order }), response: { 200: ListResponse(Type.Ref(EndpointOut), 'EndpointOut'), ...errorResponses } },
  }, async (req: Req<AP, { limit?: number; iterator?: string | null; order?: 'ascending' | 'descending' | null }>) => {
    const a = await loadApp(hl, req.params.app_id);
    return mapPage(await hl.store.listEndpoints(a.id, pageQuery(req.query, 'asc')), endpointOut);
  });

  app.post('/api/v1/app/:app_id/endpoint', {
    schema: { tags, summary: 'Create an endpoint', params: AppParams, body: EndpointIn, response: { 201: out, ...errorResponses } },
    preValidation: filterTypesAlias,
  }, async (req: Req<AP, unknown, EndpointIn>, reply) => {
    const a = await loadApp(hl, req.params.app_id);
    const b = req.body;
    checkUrl(b.url);
    checkUid(b.uid);
    const now = Date.now();
    const row: EndpointRow = {
      id: newId('ep', now), appId: a.id, uid: b.uid ?? null, url: b.url, description: b.description ?? '', disabled: b.disabled ?? false,
      eventTypes: b.eventTypes ?? null, channels: b.channels ?? null, metadata: b.metadata ?? {}, throttleRate: b.throttleRate ?? null,
      headers: {}, secrets: [{ key: secretOf(b.secret), expiresAt: null }], failingSince: null, createdAt: now, updatedAt: now,
    };
    await save(row, true);
    return reply.status(201).send(endpointOut(row));
  });

  app.get('/api/v1/app/:app_id/endpoint/:endpoint_id', {
    schema: { tags, summary: 'Get an endpoint', params: EpParams, response: { 200: out, ...errorResponses } },
  }, async (req: Req<EP>) => endpointOut((await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id)).endpoint));

  app.put('/api/v1/app/:app_id/endpoint/:endpoint_id', {
    schema: { tags, summary: 'Update an endpoint, or create it with this uid', params: EpParams, body: EndpointUpdate, response: { 200: out, 201: out, ...errorResponses } },
    preValidation: filterTypesAlias,
  }, async (req: Req<EP, unknown, EndpointUpdate>, reply) => {
    const a = await loadApp(hl, req.params.app_id);
    const b = req.body;
    checkUrl(b.url);
    checkUid(b.uid);
    const existing = await hl.store.findEndpoint(a.id, req.params.endpoint_id);
    const now = Date.now();
    if (!existing) {
      checkUid(req.params.endpoint_id);
      const row: EndpointRow = {
        id: newId('ep', now), appId: a.id, uid: b.uid ?? req.params.endpoint_id, url: b.url, description: b.description ?? '', disabled: b.disabled ?? false,
        eventTypes: b.eventTypes ?? null, channels: b.channels ?? null, metadata: b.metadata ?? {}, throttleRate: b.throttleRate ?? null,
        headers: {}, secrets: [{ key: secretOf(null), expiresAt: null }], failingSince: null, createdAt: now, updatedAt: now,
      };
      await save(row, true);
      return reply.status(201).send(endpointOut(row));
    }
    const row: EndpointRow = {
      ...existing, uid: b.uid === undefined ? existing.uid : b.uid, url: b.url, description: b.description ?? '', disabled: b.disabled ?? false,
      eventTypes: b.eventTypes ?? null, channels: b.channels ?? null, metadata: b.metadata ?? {}, throttleRate: b.throttleRate ?? null,
      failingSince: b.disabled === false ? null : existing.failingSince, updatedAt: now,
    };
    await save(row, false);
    return reply.status(200).send(endpointOut(row));
  });

  app.patch('/api/v1/app/:app_id/endpoint/:endpoint_id', {
    schema: { tags, summary: 'Partly update an endpoint', params: EpParams, body: EndpointPatch, response: { 200: out, ...errorResponses } },
    preValidation: filterTypesAlias,
  }, async (req: Req<EP, unknown, EndpointPatch>) => {
    const { endpoint: e } = await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id);
    const b = req.body;
    if (b.url !== undefined) checkUrl(b.url);
    checkUid(b.uid);
    const pick = <K extends keyof EndpointRow>(k: K, v: EndpointRow[K] | undefined): EndpointRow[K] => (v === undefined ? e[k] : v);
    const row: EndpointRow = {
      ...e,
      url: pick('url', b.url), description: pick('description', b.description), uid: pick('uid', b.uid), disabled: pick('disabled', b.disabled),
      eventTypes: b.eventTypes === undefined ? e.eventTypes : b.eventTypes && b.eventTypes.length > 0 ? b.eventTypes : null,
      channels: b.channels === undefined ? e.channels : b.channels && b.channels.length > 0 ? b.channels : null,
      metadata: pick('metadata', b.metadata), throttleRate: pick('throttleRate', b.throttleRate),
      secrets: b.secret ? [{ key: secretOf(b.secret), expiresAt: null }] : e.secrets,
      failingSince: b.disabled === false ? null : e.failingSince,
      updatedAt: Date.now(),
    };
    await save(row, false);
    return endpointOut(row);
  });

  app.delete('/api/v1/app/:app_id/endpoint/:endpoint_id', {
    schema: { tags, summary: 'Delete an endpoint', params: EpParams, response: { 204: none, ...errorResponses } },
  }, async (req: Req<EP>, reply) => {
    const { endpoint } = await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id);
    await hl.store.deleteEndpoint(endpoint.id);
    return reply.status(204).send();
  });

  // --- headers ------------------------------------------------------------

  const headersOut = (e: EndpointRow) => {
    const headers: Record<string, string> = {};
    const sensitive: string[] = [];
    for (const [k, v] of Object.entries(e.headers)) {
      if (sensitiveHeader(k)) sensitive.push(k);
      else headers[k] = v;
    }
    return { headers, sensitive };
  };
  const checkHeaders = (h: Record<string, unknown>) => {
    const names = Object.keys(h);
    if (names.length > 50) throw invalid(['body', 'headers'], 'at most 50 custom headers');
    for (const k of names) if (reservedHeader(k)) throw invalid(['body', 'headers', k], `header ${k} is set by Hooklane and cannot be overridden`);
  };

  app.get('/api/v1/app/:app_id/endpoint/:endpoint_id/headers', {
    schema: { tags, summary: 'Get the custom headers of an endpoint', params: EpParams, response: { 200: { $ref: 'EndpointHeadersOut#' }, ...errorResponses } },
  }, async (req: Req<EP>) => headersOut((await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id)).endpoint));

  app.put('/api/v1/app/:app_id/endpoint/:endpoint_id/headers', {
    schema: { tags, summary: 'Replace the custom headers of an endpoint', params: EpParams, body: EndpointHeadersIn, response: { 204: none, ...errorResponses } },
  }, async (req: Req<EP, unknown, EndpointHeadersIn>, reply) => {
    const { endpoint } = await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id);
    checkHeaders(req.body.headers);
    await save({ ...endpoint, headers: req.body.headers, updatedAt: Date.now() }, false);
    return reply.status(204).send();
  });

  app.patch('/api/v1/app/:app_id/endpoint/:endpoint_id/headers', {
    schema: { tags, summary: 'Set or remove (null) custom headers of an endpoint', params: EpParams, body: EndpointHeadersPatchIn, response: { 204: none, ...errorResponses } },
  }, async (req: Req<EP, unknown, EndpointHeadersPatchIn>, reply) => {
    const { endpoint } = await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id);
    checkHeaders(req.body.headers);
    const headers = { ...endpoint.headers };
    for (const [k, v] of Object.entries(req.body.headers)) {
      if (v === null) delete headers[k];
      else headers[k] = v;
    }
    checkHeaders(headers);
    await save({ ...endpoint, headers, updatedAt: Date.now() }, false);
    return reply.status(204).send();
  });

  // --- secret ------------------------------------------------------------

  app.get('/api/v1/app/:app_id/endpoint/:endpoint_id/secret', {
    schema: {
      tags, summary: 'Get the key a receiver verifies signatures with', params: EpParams, response: { 200: { $ref: 'EndpointSecretOut#' }, ...errorResponses },
      description: 'For an HMAC endpoint, the current `whsec_` secret (it both signs and verifies). For an ed25519 endpoint, the `whpk_` public key '
        + 'of the current `whsk_` private key; the private key is never returned by any route, so a generated one never leaves the server.',
    },
  }, async (req: Req<EP>) => ({ key: receiverKey(currentKey((await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id)).endpoint.secrets)) }));

  app.post('/api/v1/app/:app_id/endpoint/:endpoint_id/secret/rotate', {
    schema: {
      tags, summary: 'Rotate the signing secret; the old one keeps signing during the grace period', params: EpParams, body: EndpointSecretRotateIn, response: { 204: none, ...errorResponses },
      description: 'A given `key` may be of either scheme (`whsec_` HMAC or `whsk_` ed25519), so rotation also switches between them. Without `key`, '
        + 'a new key of the same scheme as the current one is generated. During the grace period every still-valid key signs, each adding its own '
        + '`v1,`/`v1a,` signature to `webhook-signature`; at most 10 old keys are kept.',
    },
  }, async (req: Req<EP, unknown, EndpointSecretRotateIn>, reply) => {
    const { endpoint } = await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id);
    const now = Date.now();
    const given = req.body?.key;
    const key = given ? secretOf(given, ['body', 'key']) : generateKey(signatureTypeOf(currentKey(endpoint.secrets)));
    const secrets = rotate(endpoint.secrets, key, req.body?.gracePeriodSeconds ?? DEFAULT_GRACE_SECONDS, now);
    await save({ ...endpoint, secrets, updatedAt: now }, false);
    return reply.status(204).send();
  });

  // --- recovery, examples, stats -----------------------------------------

  app.post('/api/v1/app/:app_id/endpoint/:endpoint_id/recover', {
    schema: { tags, summary: 'Resend every failed message since a time', params: EpParams, body: RecoverIn, response: { 202: { $ref: 'RecoverOut#' }, ...errorResponses } },
  }, async (req: Req<EP, unknown, RecoverIn>, reply) => {
    const { endpoint } = await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id);
    const now = Date.now();
    const since = ms(req.body.since)!;
    const until = ms(req.body.until) ?? now + 1;
    if (until <= since) throw invalid(['body', 'until'], 'until must be after since');
    const count = await hl.store.recover(endpoint.id, since, until, now);
    hl.log.info({ endpointId: endpoint.id, count }, 'recovering failed messages');
    hl.dispatcher?.wake();
    return reply.status(202).send({ id: newId('qtask', now), status: 'running', task: 'endpoint.recover', updatedAt: iso(now) });
  });

  app.post('/api/v1/app/:app_id/endpoint/:endpoint_id/send-example', {
    schema: { tags, summary: 'Send an example message of an event type to this endpoint only', params: EpParams, body: EventExampleIn, response: { 200: { $ref: 'MessageOut#' }, ...errorResponses } },
  }, async (req: Req<EP, unknown, EventExampleIn>) => {
    const { app: a, endpoint } = await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id);
    const et = await hl.store.findEventType(req.body.eventType);
    const now = Date.now();
    const message = {
      id: newId('msg', now), appId: a.id, eventId: null, eventType: req.body.eventType, channels: null,
      payload: JSON.stringify(examplePayload(req.body.eventType, et?.schemas ?? null)), createdAt: now,
    };
    await hl.outbox.submit({ message, endpointIds: [endpoint.id] }, [endpoint]);
    return messageOut(message);
  });

  app.get('/api/v1/app/:app_id/endpoint/:endpoint_id/stats', {
    schema: {
      tags, summary: 'Delivery counts of an endpoint by status', params: EpParams,
      querystring: Type.Object({ since: Type.Optional(Nullable(DateTime)), until: Type.Optional(Nullable(DateTime)) }),
      response: { 200: { $ref: 'EndpointStats#' }, ...errorResponses },
    },
  }, async (req: Req<EP, { since?: string | null; until?: string | null }>) => {
    const { endpoint } = await loadEndpoint(hl, req.params.app_id, req.params.endpoint_id);
    return hl.store.endpointStats(endpoint.id, ms(req.query.since) ?? null, ms(req.query.until) ?? null);
  });
}
