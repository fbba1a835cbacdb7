import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { LogController, type FastifyInstance } from 'fastify';
import type { Hooklane } from '../hooklane.js';
import { loadTls } from '../tls.js';

/**
 * How the API is served: response security headers, request ids, one log
 * line per request, and `{code, detail}` answers to requests too broken to
 * reach a route (over-large headers, timeouts, unparsable HTTP).
 */

/** Request headers larger than this in total are refused with 431 (node's default, stated). */
export const MAX_HEADER_BYTES = 16 * 1024;
/**
 * Request headers past this count are dropped by node's parser (node's
 * default, stated). The size limit bounds the count anyway; a lower count
 * would drop the Host header that node's client sends last, and turn a
 * request with many headers into a bodiless 400.
 */
export const MAX_HEADERS_COUNT = 2000;
/** The whole request (headers and body) must arrive within this time, or 408. */
export const REQUEST_TIMEOUT_MS = 60_000;
/** HSTS max-age when the server itself speaks TLS: one year, this host only. */
const HSTS = 'max-age=31536000';

/**
 * Static headers for JSON API answers. The values follow what helmet sets
 * for an API; they are fixed strings set once per request rather than a
 * helmet middleware rebuilt per request (@fastify/helmet does that).
 */
export function securityHeaders(tls: boolean): Record<string, string> {
  return {
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    // JSON loads nothing and may not be framed.
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
    'referrer-policy': 'no-referrer',
    'cross-origin-resource-policy': 'same-origin',
    // Answers carry secrets (endpoint keys) and per-tenant data.
    'cache-control': 'no-store',
    ...(tls ? { 'strict-transport-security': HSTS } : {}),
  };
}

/** Headers for answers made before any hook runs (fastify's frameworkErrors). */
export const frameworkHeaders = (hl: Hooklane, reqId: string): Record<string, string> => ({
  ...securityHeaders(hl.config.tlsCert !== undefined),
  'x-request-id': reqId,
});

/** Our own ids, not the client's: a client cannot forge or collide the ids in our logs. */
export const genReqId = (): string => `req_${randomUUID().replace(/-/g, '')}`;

/**
 * Adds the security headers and x-request-id to every answer, and logs each
 * finished request with its id: errors (5xx) at error, client errors (4xx)
 * at info, the rest at debug. The route pattern is logged, not the URL, so
 * ids in paths and query strings stay out of the logs.
 */
export function serving(app: FastifyInstance, tls: boolean): void {
  const headers = securityHeaders(tls);
  app.server.maxHeadersCount = MAX_HEADERS_COUNT;
  app.addHook('onRequest', (req, reply, done) => {
    reply.headers(headers);
    reply.header('x-request-id', req.id);
    done();
  });
  app.addHook('onResponse', (req, reply, done) => {
    const status = reply.statusCode;
    const level = status >= 500 ? 'error' : status >= 400 ? 'info' : 'debug';
    req.log[level]({ method: req.method, route: req.routeOptions.url ?? null, statusCode: status, ms: Math.round(reply.elapsedTime) }, 'request completed');
    done();
  });
}

/**
 * Answers HTTP-level client errors before any route runs. Fastify's default
 * answers with its own body shape; this one keeps the API's `{code, detail}`.
 */
export function clientErrorHandler(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, detail] =
    err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'headers_too_large', `request headers are larger than ${MAX_HEADER_BYTES} bytes`]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'request_timeout', `the request did not arrive within ${REQUEST_TIMEOUT_MS / 1000} s`]
        : [400, 'bad_request', 'malformed HTTP request'];
  this.log.debug({ err: { code: err.code, message: err.message } }, 'client error');
  const body = JSON.stringify({ code, detail });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/**
 * Fastify options for serving: the process logger with request ids, limits
 * on the body, headers and request time, and TLS when it is configured.
 */
export function serverOptions(hl: Hooklane) {
  const tls = loadTls(hl.config.tlsCert, hl.config.tlsKey);
  return {
    loggerInstance: hl.log,
    // One line per request comes from serving()'s onResponse hook instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId,
    bodyLimit: hl.config.maxPayloadBytes,
    requestTimeout: REQUEST_TIMEOUT_MS,
    clientErrorHandler,
    ...(tls ? { https: { ...tls, maxHeaderSize: MAX_HEADER_BYTES } } : { http: { maxHeaderSize: MAX_HEADER_BYTES } }),
  };
}
