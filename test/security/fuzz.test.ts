import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { eventually, TEST_TOKEN, type TestServer } from '../helpers/server.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { ENGINES, isHttpError, isValidationError, raw, startOnEngine, type EngineName, type RawResponse } from './support.js';

/**
 * Property-based fuzzing of the whole API. Every operation of the running
 * server's /api/v1/openapi.json gets generated hostile requests: path
 * parameters (real ids of application A, SQL, dot segments, NUL, binary,
 * over-long), query strings, headers and bodies (plausible objects with
 * wrong types and hostile values, random JSON, deep nesting, huge strings,
 * invalid UTF-8, binary junk). Only application A is ever named; B is the
 * bystander. Properties:
 *
 * - no answer is a 5xx, every 4xx has the API's error shape;
 * - the server is healthy at the end;
 * - nothing of B changes (app, endpoints, secrets, headers, messages);
 * - every message acknowledged (202) during the run is delivered: A's to a
 *   sink endpoint the fuzzer never names, and control messages sent to B
 *   between fuzz requests; and a message sent after the run arrives.
 *
 * Runs are reproducible: the seed is fixed (HOOKLANE_FUZZ_SEED) and a
 * failure reports the operation and fast-check's seed and path. To replay
 * one: HOOKLANE_FUZZ_SEED=<seed> HOOKLANE_FUZZ_ROUTE='<METHOD> <path>'
 * HOOKLANE_FUZZ_PATH=<path> npx vitest run test/security/fuzz.test.ts
 */

const SEED = Number(process.env.HOOKLANE_FUZZ_SEED ?? 20261204);
const TOTAL_RUNS = Number(process.env.HOOKLANE_FUZZ_RUNS ?? 2500);
const ONLY_ROUTE = process.env.HOOKLANE_FUZZ_ROUTE;
const REPLAY_PATH = process.env.HOOKLANE_FUZZ_PATH;
/** A control message goes to B after this many fuzz requests. */
const CONTROL_EVERY = 50;

let s: TestServer;
let receiver: Receiver;
interface Ids {
  appA: string;
  epFuzz: string;
  msgA: string;
  attemptA: string;
  appB: string;
  uidB: string;
  sinkId: string;
  sinkUid: string;
}
let ids: Ids;
let routes: { method: string; template: string; query: string[] }[];
let before: unknown;
const ackedA = new Set<string>();
const controlB = new Set<string>();
let requests = 0;
const statusCounts = new Map<number, number>();

// --- generators -----------------------------------------------------------------

const HOSTILE = [
  "'; DROP TABLE applications;--", "1' OR '1'='1", '" OR ""="', '../', '..', '../../etc/passwd', '..\\..\\windows', '%2e%2e', '%2e%2e%2f', '%252e%252e',
  '%00', '\u0000', 'a\u0000b', '%', '%E0%A4%A', '?', '#', '*', '/', '//', ' ', '\t', '\r\n', '\\', 'null', 'undefined', 'NaN', '__proto__', 'constructor',
  'prototype', '${jndi:ldap://127.0.0.1/a}', '<script>alert(1)</script>', '{{7*7}}', '😀', '\ud800', 'ａｐｐ', '-1', '0', '1e400', '99999999999999999999999',
  'app_00000000000000000000000000', 'msg_zzzzzzzzzzzzzzzzzzzzzzzz', 'x'.repeat(257), 'y'.repeat(600), 'true', '[]', '{}',
];

const anyText: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...HOSTILE) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  { weight: 2, arbitrary: fc.stringMatching(/^[a-zA-Z0-9._-]{1,40}$/) },
);
/** A uid no one else uses: creates things, never finds B or the sink. */
const freshUid = fc.stringMatching(/^fz-[a-z0-9]{1,12}$/);
const eventTypeName = fc.oneof(fc.constantFrom('fuzz.known', 'user.signup', 'a.b'), fc.stringMatching(/^[a-z]{1,8}\.[a-z]{1,8}$/));
const bool = fc.oneof(fc.boolean(), fc.constantFrom<unknown>('true', 0, 1, null, 'yes', []));
/** Number text that JavaScript cannot hold (1e400, 2^64): a marker that toJson() turns into the bare literal. */
const bareNumber = (literal: string) => `RAW<${literal}>`;
const toJson = (v: unknown) => JSON.stringify(v).replace(/"RAW<([-+.\deE]+)>"/g, '$1');
const numberish = fc.oneof(
  fc.integer({ min: -10, max: 70_000 }),
  fc.constantFrom<unknown>(0, 1, 65535, 65536, 604800, 604801, -1, 1.5, 2 ** 53 + 1, '5', null, true, [], {}, 1e308),
  fc.constantFrom('1e400', '-1e400', '18446744073709551616', '9223372036854775808', '1e-400', '-0', '1E5').map(bareNumber),
);
const dateish = fc.oneof(
  fc.constantFrom<unknown>(new Date().toISOString(), '2020-01-01T00:00:00Z', '2020-13-45T99:99:99Z', 'yesterday', '9999-12-31T23:59:59Z', '0000-01-01T00:00:00Z', '', null, 0),
  fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(4e12) }).map((d) => d.toISOString()),
);
const channel = fc.oneof(fc.constantFrom('c1', 'c2', 'project_1', 'bad channel', ''), anyText);
const textish = fc.oneof({ weight: 3, arbitrary: anyText }, { weight: 1, arbitrary: fc.constantFrom<unknown>(null, 5, true, [], {}) });
/** Deep JSON built as text: objects and arrays around a leaf. */
const payload = fc.oneof(
  { weight: 4, arbitrary: fc.object({ maxDepth: 3, maxKeys: 5 }) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>({ n: bareNumber('1e400') }, { s: 'a\u0000b' }, { '\u0000': 1 }, { big: bareNumber('12345678901234567890') }, { s: '\ud800' }, 'text', null, [1, 2]) },
);

function urlArb(receiverUrl: string): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.stringMatching(/^[a-z0-9]{1,10}$/).map((p) => `${receiverUrl}/gen/${p}`) },
    {
      weight: 3,
      arbitrary: fc.constantFrom<unknown>(
        'http://127.0.0.1:9/refused', 'javascript:alert(1)', 'file:///etc/passwd', 'http://169.254.169.254/latest/meta-data/', 'http://10.0.0.1/',
        'http://[::ffff:169.254.169.254]/', 'http://user:pass@127.0.0.1:9/', 'ftp://127.0.0.1/', 'not a url', 'http://', 'http://0x7f000001:9/', 'http://127.1:9/',
        'http://[::1]:9/', 'http://localhost:9/', 'https://nonexistent.invalid/', `http://127.0.0.1:9/${'p'.repeat(70_000)}`, 5, null, '',
      ),
    },
    { weight: 1, arbitrary: anyText },
  );
}

/** Every field any request body of the API has, each with good and hostile values. */
function fieldArbs(receiverUrl: string) {
  return {
    name: fc.oneof(eventTypeName, textish),
    uid: fc.oneof(freshUid, textish),
    url: urlArb(receiverUrl),
    description: textish,
    eventType: fc.oneof(eventTypeName, textish),
    // eventIds never look like a path's msg_id (those never start with ev-), so no fuzz request expunges an acknowledged message.
    eventId: fc.oneof(fc.stringMatching(/^ev-[a-z0-9]{4,12}$/), anyText.map((t) => `%${t}`), fc.constant(null)),
    payload,
    channels: fc.oneof(fc.array(channel, { maxLength: 12 }), textish),
    eventTypes: fc.oneof(fc.array(fc.oneof(eventTypeName, anyText), { maxLength: 6 }), textish),
    filterTypes: fc.array(eventTypeName, { maxLength: 3 }),
    metadata: fc.oneof(fc.dictionary(anyText, textish, { maxKeys: 60 }), textish),
    headers: fc.oneof(fc.dictionary(fc.oneof(fc.stringMatching(/^X-[A-Za-z]{1,10}$/), anyText), textish, { maxKeys: 55 }), textish),
    throttleRate: numberish,
    rateLimit: numberish,
    version: numberish,
    payloadRetentionPeriod: numberish,
    gracePeriodSeconds: numberish,
    secret: fc.oneof(fc.constantFrom('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'whsk_short', 'whpk_x'), textish),
    key: fc.oneof(fc.constant('whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'), textish),
    since: dateish,
    until: dateish,
    archived: bool,
    deprecated: bool,
    disabled: bool,
    featureFlag: textish,
    schemas: fc.oneof(fc.constant(null), fc.dictionary(fc.constantFrom('1', '2', 'x'), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 2 }), textish),
    application: fc.oneof(fc.record({ name: textish, uid: fc.oneof(freshUid, textish), metadata: fc.dictionary(anyText, anyText, { maxKeys: 3 }) }, { requiredKeys: [] }), textish),
    tags: fc.array(anyText, { maxLength: 7 }),
  };
}
type Fields = { [K in keyof ReturnType<typeof fieldArbs>]: ReturnType<typeof fieldArbs>[K] extends fc.Arbitrary<infer T> ? T : never };

/** A valid body for the operation, so that most mutations get past the first check. */
function validBase(route: { method: string; template: string }, f: Fields, receiverUrl: string): Record<string, unknown> {
  const t = route.template;
  const op = `${route.method} ${t}`;
  if (op === 'POST /api/v1/app/{app_id}/msg') return { eventType: 'fuzz.msg', payload: typeof f.payload === 'object' && f.payload !== null && !Array.isArray(f.payload) ? f.payload : { p: 1 } };
  if (op === 'POST /api/v1/app' || op === 'PUT /api/v1/app/{app_id}') return { name: 'fuzz app' };
  if (op === 'POST /api/v1/app/{app_id}/endpoint' || op === 'PUT /api/v1/app/{app_id}/endpoint/{endpoint_id}') return { url: `${receiverUrl}/gen/base` };
  if (op === 'POST /api/v1/event-type') return { name: 'fuzz.type', description: 'd' };
  if (op === 'PUT /api/v1/event-type/{event_type_name}') return { description: 'd' };
  if (t.endsWith('/headers')) return { headers: { 'X-Fuzz': 'v' } };
  if (t.endsWith('/recover')) return { since: new Date(Date.now() - 60_000).toISOString() };
  if (t.endsWith('/send-example')) return { eventType: 'fuzz.example' };
  return {};
}

/** A plausible JSON body: the valid base with a few fields changed (usually), or many hostile fields. */
function jsonObjectBody(route: { method: string; template: string }, receiverUrl: string): fc.Arbitrary<string> {
  const arbs = fieldArbs(receiverUrl);
  const names = Object.keys(arbs) as (keyof Fields)[];
  return fc
    .tuple(fc.record(arbs) as fc.Arbitrary<Fields>, fc.subarray(names, { maxLength: 3 }), fc.integer({ min: 0, max: 9 }), fc.dictionary(anyText, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 }))
    .map(([f, changed, dice, extra]) => {
      if (dice < 8) {
        const body: Record<string, unknown> = validBase(route, f, receiverUrl);
        for (const k of changed) body[k] = f[k];
        return toJson(body);
      }
      return toJson({ ...extra, ...f });
    });
}

/** Big or deep bodies are built when sent: counterexamples show `{big: i}` or `{deep: n}`, not megabytes. */
const BIG = [
  `{"eventType":"big","payload":{"s":"${'x'.repeat(1024 * 1024 + 10)}"}}`, // over the 1 MiB limit
  `{"eventType":"big","payload":{"s":"${'y'.repeat(300_000)}"}}`,
  `{"name":"${'n'.repeat(200_000)}"}`,
  `{"eventType":"deep","payload":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`,
  '['.repeat(500_000),
];
type Body = string | Buffer | { big: number } | { deep: number; arrays: boolean; wrap: boolean } | undefined;
function materialise(b: Body): string | Buffer | undefined {
  if (b === undefined || typeof b === 'string' || Buffer.isBuffer(b)) return b;
  if ('big' in b) return BIG[b.big]!;
  const inner = b.arrays ? '['.repeat(b.deep) + ']'.repeat(b.deep) : '{"a":'.repeat(b.deep) + '1' + '}'.repeat(b.deep);
  // Wrapped, it is a message whose payload nests deeply, so it gets past the schema to the code that stores it.
  return b.wrap ? `{"eventType":"deep","payload":{"d":${inner}}}` : inner;
}

function bodyArb(route: { method: string; template: string }, receiverUrl: string): fc.Arbitrary<Body> {
  const good = jsonObjectBody(route, receiverUrl);
  return fc.oneof(
    { weight: 16, arbitrary: good },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)) },
    {
      weight: 2,
      arbitrary: fc.record({
        deep: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 60, max: 70 }), fc.integer({ min: 1000, max: 150_000 })),
        arrays: fc.boolean(),
        wrap: fc.boolean(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ big: fc.nat({ max: BIG.length - 1 }) }) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constantFrom('{"__proto__":{"admin":true}}', '{"name":"x","constructor":{"prototype":{"admin":true}}}', '{"eventType":"e","payload":{"__proto__":{"x":1}}}') },
    {
      // A plausible body, broken: cut short, or with bytes that are not UTF-8, or a NUL or lone surrogate escape spliced in.
      weight: 3,
      arbitrary: fc.tuple(good, fc.nat(), fc.constantFrom('cut', 'bytes', 'nul', 'surrogate')).map(([b, at, how]) => {
        const i = at % (b.length + 1);
        if (how === 'cut') return b.slice(0, i);
        if (how === 'bytes') return Buffer.concat([Buffer.from(b.slice(0, i)), Buffer.from([0xff, 0xc0, 0xed, 0xa0, 0x80]), Buffer.from(b.slice(i))]);
        // Before one of the quotes: inside a key or a string value somewhere in the body.
        const quotes = [...b.matchAll(/(?<!\\)"/g)].map((m) => m.index);
        const q = quotes.length > 0 ? quotes[at % quotes.length]! : -1;
        return q < 0 ? b : b.slice(0, q) + (how === 'nul' ? '\\u0000' : '\\udc00') + b.slice(q);
      }),
    },
  );
}

const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,80}$/);
const headersArb = fc.record(
  {
    auth: fc.oneof({ weight: 17, arbitrary: fc.constant('admin') }, { weight: 1, arbitrary: fc.constantFrom('none', 'wrong', 'basic', 'long') }),
    contentType: fc.oneof(
      { weight: 12, arbitrary: fc.constantFrom<string | undefined>('application/json', 'application/json; charset=utf-8', 'application/JSON') },
      {
        weight: 2,
        arbitrary: fc.constantFrom<string | undefined>(
          undefined, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/json; charset=utf-16', 'garbage',
        ),
      },
    ),
    idempotencyKey: fc.option(fc.oneof(fc.stringMatching(/^[a-z0-9]{1,8}$/), headerValue), { nil: undefined }),
    extra: fc.dictionary(
      fc.oneof(fc.stringMatching(/^x-[a-z0-9-]{1,20}$/), fc.constantFrom('accept', 'accept-encoding', 'x-forwarded-for', 'x-request-id', 'content-encoding', 'origin', 'cookie')),
      headerValue,
      { maxKeys: 4 },
    ),
  },
  { requiredKeys: ['auth', 'contentType', 'extra'] },
);

/** Percent-encodes what `keep` does not match, byte by byte (lone surrogates become U+FFFD). */
function pct(text: string, keep: RegExp): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && keep.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
const UNRESERVED = /[A-Za-z0-9\-_.~]/;
/** "Raw": everything printable goes out as is, `/`, `?`, `#`, `%` and `..` included. */
const PRINTABLE = /[\x21-\x7e]/;

function queryValue(name: string): fc.Arbitrary<string> {
  const plausible: Record<string, fc.Arbitrary<string>> = {
    limit: fc.oneof(fc.integer({ min: -5, max: 400 }).map(String), fc.constantFrom('1e400', '99999999999999999999', 'abc', '', '1.5')),
    iterator: fc.oneof(fc.constantFrom('app_0', '-msg_0', 'user.signup', ''), anyText),
    order: fc.constantFrom('ascending', 'descending', 'sideways', ''),
    status: fc.constantFrom('0', '1', '2', '3', '4', '-1', 'x'),
    status_code_class: fc.constantFrom('0', '100', '200', '300', '400', '500', '600'),
    channel,
    event_types: fc.oneof(eventTypeName, fc.constantFrom('a.b,c.d', 'bad type', ',,,')),
  };
  const booleanish = fc.constantFrom('true', 'false', 'true', 'false', '1', '0', 'yes', '');
  const dateText = dateish.map((d) => String(d));
  const p = plausible[name] ?? (['with_content', 'expunge', 'get_if_exists', 'include_archived'].includes(name) ? booleanish : ['before', 'after', 'since', 'until'].includes(name) ? dateText : anyText);
  return fc.oneof({ weight: 3, arbitrary: p }, { weight: 1, arbitrary: anyText });
}

interface FuzzRequest {
  params: Record<string, string>;
  rawPath: boolean;
  query: [string, string][];
  rawQuery: boolean;
  headers: { auth: string; contentType: string | undefined; idempotencyKey?: string; extra: Record<string, string> };
  body: Body;
}

function paramArb(name: string, template: string, method: string): fc.Arbitrary<string> {
  const pools: Record<string, string[]> = {
    // Never A's uid (a PATCH may hand it to another app) and, for DELETE /app/{app_id}, never A at all.
    app_id: method === 'DELETE' && template === '/api/v1/app/{app_id}' ? [] : [ids.appA],
    endpoint_id: [ids.epFuzz, 'ep-fuzz'],
    msg_id: [ids.msgA],
    attempt_id: [ids.attemptA],
    event_type_name: ['fuzz.known', 'user.signup'],
  };
  const pool = pools[name] ?? [];
  const arbs: fc.WeightedArbitrary<string>[] = [
    { weight: 2, arbitrary: anyText.filter((t) => !t.startsWith('ev-')) },
    { weight: 1, arbitrary: freshUid },
  ];
  if (pool.length > 0) arbs.push({ weight: 5, arbitrary: fc.constantFrom(...pool) });
  return fc.oneof(...arbs);
}

function requestArb(route: { method: string; template: string; query: string[] }, receiverUrl: string): fc.Arbitrary<FuzzRequest> {
  const names = [...route.template.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
  const params = fc.record(Object.fromEntries(names.map((n) => [n, paramArb(n, route.template, route.method)])));
  const known = route.query.length > 0 ? route.query : ['limit'];
  const query = fc.oneof(
    { weight: 1, arbitrary: fc.constant<[string, string][]>([]) },
    {
      weight: 2,
      arbitrary: fc.array(
        fc.oneof(
          { weight: 4, arbitrary: fc.constantFrom(...known).chain((n) => queryValue(n).map((v) => [n, v] as [string, string])) },
          { weight: 1, arbitrary: fc.tuple(anyText, anyText) },
        ),
        { maxLength: 4 },
      ),
    },
  );
  return fc.record({ params, rawPath: fc.boolean(), query, rawQuery: fc.boolean(), headers: headersArb, body: bodyArb(route, receiverUrl) });
}

function build(route: { method: string; template: string }, r: FuzzRequest): { path: string; headers: Record<string, string> } {
  const path = route.template.replace(/\{(\w+)\}/g, (_, n: string) => pct(r.params[n]!, r.rawPath ? PRINTABLE : UNRESERVED));
  const qs = r.query.map(([k, v]) => `${pct(k, r.rawQuery ? PRINTABLE : UNRESERVED)}=${pct(v, r.rawQuery ? PRINTABLE : UNRESERVED)}`).join('&');
  const headers: Record<string, string> = { ...r.headers.extra };
  const auth = ({ admin: `Bearer ${TEST_TOKEN}`, none: undefined, wrong: 'Bearer not-the-token', basic: `Basic ${TEST_TOKEN}`, long: `Bearer ${'t'.repeat(4000)}` } as Record<string, string | undefined>)[r.headers.auth];
  if (auth) headers.authorization = auth;
  if (r.headers.contentType) headers['content-type'] = r.headers.contentType;
  if (r.headers.idempotencyKey !== undefined) headers['idempotency-key'] = r.headers.idempotencyKey;
  return { path: qs ? `${path}?${qs}` : path, headers };
}

/** True when the request could name B or the sink (after any decoding the server might do). */
function namesProtected(path: string): boolean {
  let decoded = path;
  for (let i = 0; i < 3; i++) {
    try {
      decoded += ` ${decodeURIComponent(decoded)}`;
    } catch {
      break;
    }
  }
  return [ids.appB, ids.uidB, ids.sinkId, ids.sinkUid].some((x) => decoded.includes(x));
}

// --- the bystander B ------------------------------------------------------------------

async function snapshotB(): Promise<unknown> {
  const app = (await s.api('GET', `/app/${ids.appB}`)).body;
  const eps = (await s.api('GET', `/app/${ids.appB}/endpoint?limit=250`)).body.data as { id: string }[];
  const endpoints = [];
  for (const e of eps) {
    endpoints.push({
      endpoint: e,
      secret: (await s.api('GET', `/app/${ids.appB}/endpoint/${e.id}/secret`)).body,
      headers: (await s.api('GET', `/app/${ids.appB}/endpoint/${e.id}/headers`)).body,
    });
  }
  const messages = ((await s.api('GET', `/app/${ids.appB}/msg?limit=250`)).body.data as { id: string }[]).filter((m) => !controlB.has(m.id));
  return { app, endpoints, messages };
}

async function setUp(engine: EngineName): Promise<void> {
  ackedA.clear();
  controlB.clear();
  statusCounts.clear();
  requests = 0;
  receiver = await startReceiver();
  // No rate limit here: the fuzzer should reach the routes (rate-limit.test.ts tests the limiter).
  s = await startOnEngine(engine, { rateLimitPerSecond: 0, retrySchedule: [0.2, 0.2] });
  const api = s.api;
  const appA = (await api('POST', '/app', { name: 'Fuzz target A', uid: 'fuzz-a' })).body;
  const appB = (await api('POST', '/app', { name: 'Bystander B', uid: 'bystander-b-Q7x', metadata: { tier: 'gold' } })).body;
  const epFuzz = (await api('POST', `/app/${appA.id}/endpoint`, { url: `${receiver.url}/a-fuzz`, uid: 'ep-fuzz' })).body;
  const sink = (await api('POST', `/app/${appA.id}/endpoint`, { url: `${receiver.url}/a-sink`, uid: 'sink-Zq93kd' })).body;
  const epB = (await api('POST', `/app/${appB.id}/endpoint`, { url: `${receiver.url}/b`, uid: 'ep-b', channels: ['c1'], metadata: { k: 'v' } })).body;
  await api('POST', `/app/${appB.id}/endpoint`, { url: `${receiver.url}/b-all`, uid: 'ep-b-all' });
  expect((await api('PUT', `/app/${appB.id}/endpoint/${epB.id}/headers`, { headers: { 'X-Tenant': 'b' } })).status).toBe(204);
  await api('POST', '/event-type', { name: 'fuzz.known', description: 'known' });
  const msgA = (await api('POST', `/app/${appA.id}/msg`, { eventType: 'fuzz.known', payload: { before: true } })).body;
  for (let i = 0; i < 3; i++) expect((await api('POST', `/app/${appB.id}/msg`, { eventType: 'b.before', payload: { i }, channels: ['c1'] })).status).toBe(202);
  const attempt = await eventually(async () => (await api('GET', `/app/${appA.id}/attempt/msg/${msgA.id}`)).body.data[0], 10_000, 'an attempt of A');
  ids = { appA: appA.id, epFuzz: epFuzz.id, msgA: msgA.id, attemptA: attempt.id, appB: appB.id, uidB: appB.uid, sinkId: sink.id, sinkUid: sink.uid };

  const doc = (await api('GET', '/openapi.json')).body;
  routes = [];
  for (const [template, ops] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(ops)) {
      const query = ((op.parameters ?? []) as { in: string; name: string }[]).filter((p) => p.in === 'query').map((p) => p.name);
      routes.push({ method: method.toUpperCase(), template, query });
    }
  }
  await eventually(() => receiver.requests.filter((r) => r.path === '/b' || r.path === '/b-all').length >= 6, 10_000, 'B deliveries before the run');
  before = await snapshotB();
}

describe.each(ENGINES)('fuzzing every API operation (%s)', (engine) => {
  beforeAll(() => setUp(engine), 60_000);
  afterAll(async () => {
    await s?.close();
    await receiver?.close();
  });

  test('the operations come from the running server', () => {
    expect(routes.length).toBeGreaterThanOrEqual(40);
    for (const r of ['POST /api/v1/app/{app_id}/msg', 'PATCH /api/v1/app/{app_id}/endpoint/{endpoint_id}', 'DELETE /api/v1/app/{app_id}', 'PUT /api/v1/event-type/{event_type_name}']) {
      expect(routes.map((x) => `${x.method} ${x.template}`)).toContain(r);
    }
  });

  test(`about ${TOTAL_RUNS} hostile requests: no 5xx, errors in the API's shape`, { timeout: 180_000 }, async () => {
    const selected = routes.filter((r) => !ONLY_ROUTE || `${r.method} ${r.template}` === ONLY_ROUTE);
    expect(selected.length, `no operation ${ONLY_ROUTE}`).toBeGreaterThan(0);
    // Message sending carries the delivery checks: it gets a bigger share.
    const weight = (r: { method: string; template: string }) => (r.method === 'POST' && r.template === '/api/v1/app/{app_id}/msg' ? 6 : 1);
    const totalWeight = selected.reduce((n, r) => n + weight(r), 0);
    const started = Date.now();
    for (const route of selected) {
      const name = `${route.method} ${route.template}`;
      const numRuns = Math.max(10, Math.round((TOTAL_RUNS * weight(route)) / totalWeight));
      const property = fc.asyncProperty(requestArb(route, receiver.url), async (req) => {
        const { path, headers } = build(route, req);
        fc.pre(!namesProtected(path));
        if (route.method === 'DELETE' && route.template === '/api/v1/app/{app_id}') {
          // A PATCH may have given A a uid the generators produce again: never delete A.
          const target = await raw(s.url, 'GET', path.split('?', 1)[0]!).catch(() => null);
          fc.pre(target?.body?.id !== ids.appA);
        }
        if (++requests % CONTROL_EVERY === 0) {
          const c = await s.api('POST', `/app/${ids.appB}/msg`, { eventType: 'b.control', payload: { n: requests }, channels: ['c1'] });
          expect(c.status).toBe(202);
          controlB.add(c.body.id);
        }
        const body = materialise(req.body);
        let r: RawResponse;
        try {
          r = await raw(s.url, route.method, path, { body, headers, anonymous: true, timeoutMs: 20_000 });
        } catch (e) {
          // A server may answer (e.g. GET, which ignores bodies) and close while a big body is still
          // going out; the client then sees EPIPE or a reset. Fine, as long as the server is well.
          const code = (e as NodeJS.ErrnoException).code;
          const early = (code === 'EPIPE' || code === 'ECONNRESET') && body !== undefined && body.length > 64 * 1024;
          if (early && (await fetch(`${s.url}/api/v1/health`)).status === 204) return;
          throw new Error(`${route.method} ${path}: no HTTP answer (${(e as Error).message})`);
        }
        statusCounts.set(r.status, (statusCounts.get(r.status) ?? 0) + 1);
        const show = `${route.method} ${path.slice(0, 300)} -> ${r.status} ${r.text.slice(0, 300)}`;
        if (r.status >= 500 || r.status < 200) throw new Error(`server error: ${show}`);
        if (r.status >= 400 && route.method !== 'HEAD' && !isHttpError(r.body) && !isValidationError(r.body)) throw new Error(`error without {code, detail}: ${show}`);
        if (r.headers['x-content-type-options'] !== 'nosniff') throw new Error(`no security headers: ${show}`);
        if (route.method === 'POST' && route.template === '/api/v1/app/{app_id}/msg' && req.params.app_id === ids.appA && r.status === 202) ackedA.add(r.body.id);
      });
      // One seed per operation, by its place in the full list, so that one operation replays alone.
      const seed = SEED + routes.indexOf(route);
      try {
        await fc.assert(property, { seed, numRuns, ...(REPLAY_PATH ? { path: REPLAY_PATH } : {}) });
      } catch (e) {
        const cause = (e as Error & { cause?: unknown }).cause;
        const msg = `${(e as Error).message}${cause instanceof Error ? `\nCaused by: ${cause.message}` : ''}`;
        const cut = msg.length > 6000 ? `${msg.slice(0, 6000)}... (${msg.length} characters)` : msg;
        throw new Error(`${name}: replay with HOOKLANE_FUZZ_SEED=${SEED} HOOKLANE_FUZZ_ROUTE='${name}' HOOKLANE_FUZZ_PATH=<path below> (fast-check seed ${seed})\n${cut}`);
      }
    }
    if (!ONLY_ROUTE) expect(requests).toBeGreaterThanOrEqual(TOTAL_RUNS * 0.8);
    console.log(`fuzz (${engine}): ${requests} requests in ${((Date.now() - started) / 1000).toFixed(1)} s; statuses ${JSON.stringify(Object.fromEntries([...statusCounts].sort((a, b) => a[0] - b[0])))}; ${ackedA.size} messages acknowledged to A`);
  });

  test('afterwards: healthy, B untouched, every acknowledged message delivered', { timeout: 90_000 }, async () => {
    expect((await fetch(`${s.url}/api/v1/health`)).status).toBe(204);
    expect(await snapshotB()).toEqual(before);

    const lastA = await s.api('POST', `/app/${ids.appA}/msg`, { eventType: 'after.fuzz', payload: { last: true } });
    expect(lastA.status).toBe(202);
    ackedA.add(lastA.body.id);
    const lastB = await s.api('POST', `/app/${ids.appB}/msg`, { eventType: 'after.fuzz', payload: { last: true }, channels: ['c1'] });
    expect(lastB.status).toBe(202);
    controlB.add(lastB.body.id);

    const seen = (path: string) => new Set(receiver.requests.filter((r) => r.path === path).map((r) => String(r.headers['webhook-id'])));
    const missing = (want: Set<string>, path: string) => [...want].filter((id) => !seen(path).has(id));
    await eventually(() => missing(ackedA, '/a-sink').length === 0, 60_000, 'every message acknowledged to A at its sink').catch((e) => {
      throw new Error(`${(e as Error).message}; missing ${missing(ackedA, '/a-sink').length} of ${ackedA.size}: ${missing(ackedA, '/a-sink').slice(0, 5).join(', ')}`);
    });
    await eventually(() => missing(controlB, '/b').length === 0 && missing(controlB, '/b-all').length === 0, 60_000, 'every control message at B');
    expect(ackedA.size).toBeGreaterThan(10);
    expect(controlB.size).toBeGreaterThan(10);
    // B's endpoints got B's messages only: nothing the fuzzer sent reached them.
    const bIds = new Set([...controlB, ...((before as { messages: { id: string }[] }).messages.map((m) => m.id))]);
    for (const r of receiver.requests.filter((x) => x.path === '/b' || x.path === '/b-all')) expect(bIds.has(String(r.headers['webhook-id']))).toBe(true);
  });
});
