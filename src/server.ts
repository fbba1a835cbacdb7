import swagger from '@fastify/swagger';
import { Ajv, type ErrorObject } from 'ajv';
import formats from 'ajv-formats';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import { applicationRoutes } from './api/applications.js';
import { attemptRoutes } from './api/attempts.js';
import { endpointRoutes } from './api/endpoints.js';
import { eventTypeRoutes } from './api/event-types.js';
import { healthRoutes } from './api/health.js';
import { idempotency } from './api/idempotency.js';
import { strictJsonParser } from './api/json-body.js';
import { messageRoutes } from './api/messages.js';
import { registerRateLimit } from './api/rate-limit.js';
import { frameworkHeaders, serverOptions, serving } from './api/serving.js';
import { EndpointHeadersOut, EndpointOut, EndpointSecretOut, EndpointStats, EndpointMessageOut, EventTypeOut, HttpErrorOut, MessageAttemptOut, MessageEndpointOut, MessageOut, RecoverOut, ValidationErrorOut, ApplicationOut } from './api/schemas.js';
import { registerAuth } from './auth/hook.js';
import { HttpError, ValidationError, type ValidationItem } from './errors.js';
import type { Hooklane } from './hooklane.js';
import { isDatabaseUnavailable } from './store/unavailable.js';
import { VERSION } from './version.js';

/** ajv for bodies: no coercion, so `"name": 5` is a 422, not the string "5". */
function makeAjv(coerce: boolean): Ajv {
  const ajv = new Ajv({ coerceTypes: coerce ? 'array' : false, useDefaults: true, removeAdditional: false, allErrors: false, strict: false });
  // ajv-formats is CommonJS; its default export arrives wrapped under ESM.
  (formats as unknown as { default: (a: Ajv) => void }).default(ajv);
  return ajv;
}

const LOC_PART: Record<string, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'header' };

export function validationItems(errors: ErrorObject[], context: string): ValidationItem[] {
  return errors.map((e) => {
    const loc = [LOC_PART[context] ?? context, ...e.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))];
    if (e.keyword === 'required') loc.push(String((e.params as { missingProperty: string }).missingProperty));
    const type = e.keyword === 'required' ? 'value_error.missing' : e.keyword === 'type' ? 'type_error' : `value_error.${e.keyword}`;
    return { loc, msg: e.message ?? 'invalid value', type };
  });
}

export async function buildServer(hl: Hooklane): Promise<FastifyInstance> {
  const app = Fastify({
    // Logger with request ids, body/header/time limits, TLS: see api/serving.ts.
    ...serverOptions(hl),
    // Ids and uids come from clients; keep route matching predictable.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 512 },
    ajv: undefined,
    // Bad percent-encoding or an over-long path parameter: the router answers
    // these itself, so give them the API's {code, detail} shape here.
    // No hooks run for these, so the security headers and request id are set here too.
    frameworkErrors: (err, req, reply) => void (reply as FastifyReply).headers(frameworkHeaders(hl, req.id)).status(err.statusCode ?? 400).send({ code: 'bad_request', detail: err.message }),
  } as FastifyServerOptions) as unknown as FastifyInstance;
  const bodyAjv = makeAjv(false);
  const queryAjv = makeAjv(true);
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : queryAjv).compile(schema));
  app.setSchemaErrorFormatter((errors, dataVar) => new ValidationError(validationItems(errors as ErrorObject[], dataVar)));

  for (const s of [HttpErrorOut, ValidationErrorOut, ApplicationOut, EventTypeOut, EndpointOut, EndpointSecretOut, EndpointHeadersOut, EndpointStats, RecoverOut, MessageOut, EndpointMessageOut, MessageEndpointOut, MessageAttemptOut]) {
    app.addSchema(s);
  }

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Hooklane API', version: VERSION, description: 'Webhooks sending API, compatible with the Svix server API v1.' },
      components: { securitySchemes: { HTTPBearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ HTTPBearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });

  // Input and serving guards, before authentication so that they cover its answers too.
  strictJsonParser(app);
  serving(app, hl.config.tlsCert !== undefined);
  await registerRateLimit(app, { perSecond: hl.config.rateLimitPerSecond, burst: hl.config.rateLimitBurst });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  // Tokens and application scope (src/auth/hook.ts): sets req.auth.
  registerAuth(app, hl);

  app.setErrorHandler((err: FastifyError | HttpError | ValidationError | Error, req, reply) => {
    if (err instanceof HttpError) {
      return reply.status(err.status).headers(err.headers).send({ code: err.code, detail: err.detail });
    }
    if (err instanceof ValidationError) return reply.status(422).send({ detail: err.items });
    const fe = err as FastifyError;
    if (fe.validation) {
      return reply.status(422).send({ detail: validationItems(fe.validation as ErrorObject[], fe.validationContext ?? 'body') });
    }
    if (fe.statusCode === 413) return reply.status(413).send({ code: 'payload_too_large', detail: `request body is larger than ${app.initialConfig.bodyLimit} bytes` });
    if (fe.statusCode === 415) return reply.status(415).send({ code: 'unsupported_media_type', detail: 'send the body as application/json' });
    if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
      const code = fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError ? 'invalid_json' : 'bad_request';
      return reply.status(fe.statusCode).send({ code, detail: fe.message });
    }
    if (isDatabaseUnavailable(err)) {
      // Not a bug: the database is down or unreachable. Clients (and load balancers) may retry.
      hl.log.debug({ err, reqId: req.id }, 'database unavailable');
      return reply.status(503).header('retry-after', '1').send({ code: 'database_unavailable', detail: 'the database is unavailable; try again shortly' });
    }
    hl.log.error({ err, reqId: req.id, url: req.url, method: req.method }, 'internal error');
    return reply.status(500).send({ code: 'internal_error', detail: 'internal server error' });
  });

  app.setNotFoundHandler((req, reply) => reply.status(404).send({ code: 'not_found', detail: `no route ${req.method} ${req.url.split('?', 1)[0]}` }));

  const ctx = { app, hl };
  idempotency(ctx);
  healthRoutes(ctx);
  applicationRoutes(ctx);
  eventTypeRoutes(ctx);
  endpointRoutes(ctx);
  messageRoutes(ctx);
  attemptRoutes(ctx);

  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.ready();
  return app;
}
