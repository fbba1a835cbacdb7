import { isUtf8 } from 'node:buffer';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpError, ValidationError } from '../errors.js';

/**
 * The JSON body parser of the API, stricter than fastify's default one:
 *
 * - the body must be valid UTF-8 (the default parser decodes with
 *   replacement characters, so bad bytes would be stored silently changed):
 *   400 `invalid_utf8`;
 * - JSON nesting is limited (a scan of the text before parsing, so no deep
 *   structure ever reaches JSON.parse, ajv, JSON.stringify or the store):
 *   422 at `["body"]`;
 * - strings and keys may not hold NUL (`\u0000`) or unpaired UTF-16
 *   surrogates (`\ud800`): PostgreSQL text and json cannot store the first,
 *   and neither engine keeps the second, so both engines refuse them alike;
 *   numbers must be finite (`1e400` would turn into `null` when stored):
 *   422 at the field's location;
 * - malformed JSON is a 400 `invalid_json` that says where it broke;
 * - `__proto__` and `constructor.prototype` keys stay refused, as fastify's
 *   default parser does (it parses the text here).
 */

/** Levels of objects and arrays a message payload may nest; the payload object is level 1. */
export const MAX_PAYLOAD_DEPTH = 64;
/** Levels any request body may nest: the request object around a 64-level payload. */
export const MAX_BODY_DEPTH = MAX_PAYLOAD_DEPTH + 1;

interface Scan {
  /** Deepest nesting seen, or MAX_BODY_DEPTH + 1 when the scan stopped early. */
  depth: number;
  /**
   * A `\u0000` escape, an escaped surrogate, an exponent or a very long
   * number was seen: the parsed value needs a closer look.
   */
  suspicious: boolean;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * One pass over the JSON text: nesting depth outside strings, and escapes
 * inside strings. Raw surrogates cannot occur (the text came from valid
 * UTF-8), so only escaped ones are looked at.
 */
export function scanJson(text: string, maxDepth = MAX_BODY_DEPTH): Scan {
  let depth = 0;
  let deepest = 0;
  let suspicious = false;
  let digits = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) {
      // Over 300 digits may not fit a double.
      if (++digits > 300) suspicious = true;
      continue;
    }
    if ((c === 0x65 || c === 0x45) /* e E */ && (digits > 0 || text.charCodeAt(i - 1) === 0x2e)) suspicious = true;
    digits = 0;
    if (c === QUOTE) {
      // Inside a string until the closing quote.
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === QUOTE) break;
        if (d !== BACKSLASH) continue;
        i++;
        if (text.charCodeAt(i) === 0x75 /* u */) {
          const hex = text.slice(i + 1, i + 5);
          const first = hex.charCodeAt(0) | 0x20;
          // \u0000, or \uD800-\uDFFF (a surrogate: checked after parsing, as pairs are fine).
          if (hex === '0000' || (first === 0x64 /* d */ && /^[89a-fA-F]$/.test(hex[1] ?? ''))) suspicious = true;
          i += 4;
        }
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > maxDepth) return { depth: deepest, suspicious };
      }
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return { depth: deepest, suspicious };
}

const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function badString(s: string): string | null {
  if (s.includes('\u0000')) return 'NUL characters (\\u0000) are not allowed';
  if (UNPAIRED_SURROGATE.test(s)) return 'unpaired UTF-16 surrogates (\\ud800-\\udfff) are not valid Unicode';
  return null;
}

/** The location and reason of the first string, key or number that may not be stored, if any. */
export function findUnstorable(value: unknown): { loc: string[]; msg: string } | null {
  const stack: [unknown, string[]][] = [[value, []]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      const msg = badString(v);
      if (msg) return { loc: path, msg };
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) return { loc: path, msg: 'number out of range (it does not fit a 64-bit float)' };
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], [...path, String(i)]]);
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, item] = entries[i]!;
        const msg = badString(k);
        if (msg) return { loc: [...path, k], msg: `key: ${msg}` };
        stack.push([item, [...path, k]]);
      }
    }
  }
  return null;
}

/** Why the text was refused: V8's syntax error, or null when it parses (then it had a forbidden key). */
function syntaxMessage(text: string): string | null {
  try {
    JSON.parse(text);
    return null;
  } catch (e) {
    // V8 quotes a stretch of the input; keep the message short.
    const msg = (e as Error).message;
    return msg.length > 200 ? `${msg.slice(0, 200)}...` : msg;
  }
}

/** Replaces fastify's application/json parser with the strict one above. */
export function strictJsonParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req: FastifyRequest, body: Buffer | string, done) => {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    if (!isUtf8(buf)) return done(new HttpError(400, 'invalid_utf8', 'the request body is not valid UTF-8'), undefined);
    const text = buf.toString('utf8');
    const scan = scanJson(text);
    if (scan.depth > MAX_BODY_DEPTH) {
      return done(new ValidationError([{
        loc: ['body'], msg: `JSON nests deeper than ${MAX_BODY_DEPTH} levels (a message payload may nest at most ${MAX_PAYLOAD_DEPTH})`, type: 'value_error.too_deep',
      }]), undefined);
    }
    parse(req, text, (err: Error | null, value?: unknown) => {
      if (err) {
        const code = (err as { code?: string }).code;
        if (code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
          const why = syntaxMessage(text);
          if (why === null) return done(new HttpError(400, 'forbidden_key', 'the request body has a "__proto__" or "constructor.prototype" key, which is refused'), undefined);
          return done(new HttpError(400, 'invalid_json', `the request body is not valid JSON: ${why}`), undefined);
        }
        if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return done(new HttpError(400, 'invalid_json', 'the request body is empty but content-type is application/json'), undefined);
        return done(new HttpError(400, 'invalid_json', err.message), undefined);
      }
      if (scan.suspicious) {
        const bad = findUnstorable(value);
        if (bad) return done(new ValidationError([{ loc: ['body', ...bad.loc], msg: bad.msg, type: 'value_error' }]), undefined);
      }
      done(null, value);
    });
  });
}
