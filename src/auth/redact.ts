import type { LoggerOptions } from 'pino';

/**
 * What pino must never write: bearer tokens (request headers, also the
 * custom headers of an endpoint), endpoint signing secrets, tokens, and the
 * secret settings. Paths are fast-redact paths: `*` is any one key, so the
 * same field is listed at the depths where it turns up (a request, an
 * endpoint, a claimed delivery holding an endpoint).
 */
const FIELDS = ['authorization', 'Authorization', 'cookie', 'x-api-key', 'secret', 'secrets', 'key', 'token', 'apiToken', 'mainSecret'];

export const LOG_REDACT: NonNullable<LoggerOptions['redact']> = {
  paths: FIELDS.flatMap((f) => {
    const k = /^[A-Za-z_$][\w$]*$/.test(f) ? f : `["${f}"]`;
    const dot = k.startsWith('[') ? '' : '.';
    return [k, `*${dot}${k}`, `*.*${dot}${k}`, `*.*.*${dot}${k}`];
  }),
  censor: '[redacted]',
};
