/**
 * Whether an error means "the database cannot be reached right now" rather
 * than a bug or a bad request: refused, reset or terminated connections, a
 * server shutting down or out of connection slots, a pool that could not get
 * a connection in time. The API answers these with 503 and the dispatcher
 * retries them with backoff; anything else stays an internal error.
 */
export function isDatabaseUnavailable(e: unknown): boolean {
  let err = e;
  for (let depth = 0; err && depth < 5; depth++) {
    const { code, message, errors, cause } = err as { code?: unknown; message?: unknown; errors?: unknown; cause?: unknown };
    if (typeof code === 'string' && (NET_CODES.has(code) || SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) return true;
    if (typeof message === 'string' && MESSAGES.some((m) => m.test(message))) return true;
    // Node reports a refused connection to every address of a host as one AggregateError.
    if (Array.isArray(errors) && errors.length > 0 && errors.every((x) => isDatabaseUnavailable(x))) return true;
    err = cause;
  }
  return false;
}

/** Socket-level failures (Node system error codes). */
const NET_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN',
]);

/**
 * PostgreSQL SQLSTATEs (besides class 08, connection exception): the session
 * was terminated (pg_terminate_backend, shutdown, crash), the server is
 * starting or stopping, or it has no connection slot left.
 */
const SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

/** The pg driver's own messages for a lost or unobtainable connection. */
const MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect$/,
  /^timeout expired$/,
  /^Query read timeout$/,
  /is not queryable$/,
  /^Cannot use a pool after calling end on the pool$/,
];
