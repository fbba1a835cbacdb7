import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MAX_BODY_DEPTH, MAX_PAYLOAD_DEPTH, scanJson } from '../../src/api/json-body.js';
import { METADATA_MAX_KEYS, METADATA_MAX_KEY_LENGTH, METADATA_MAX_VALUE_LENGTH } from '../../src/api/schemas.js';
import { MAX_HEADER_BYTES } from '../../src/api/serving.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { ENGINES, isHttpError, isValidationError, raw, startOnEngine } from './support.js';

/**
 * Input limits: body size, header size and count, string lengths and
 * patterns (checked against the Svix contract), metadata sizes, JSON depth,
 * encodings, NUL bytes, huge numbers and hostile ids. Each refused request
 * is a 4xx with a useful body, stores nothing, and the server stays up.
 */

let s: TestServer;
let ep: string;
const APP = 'limits-app';

beforeAll(async () => {
  s = await startServer({ maxPayloadBytes: 128 * 1024 });
  expect((await s.api('POST', '/app', { name: 'Limits', uid: APP })).status).toBe(201);
  ep = (await s.api('POST', `/app/${APP}/endpoint`, { url: 'http://127.0.0.1:9/hook', uid: 'ep' })).body.id;
});
afterAll(async () => {
  await s?.close();
});

const json = (v: unknown) => ({ body: typeof v === 'string' ? v : JSON.stringify(v), headers: { 'content-type': 'application/json' } });
const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
  raw(s.url, 'POST', `/api/v1${path}`, { body, headers: { 'content-type': 'application/json', ...headers } });
const messageCount = async () => (await s.api('GET', `/app/${APP}/msg?limit=250`)).body.data.length as number;
const appCount = async () => (await s.api('GET', '/app?limit=250')).body.data.length as number;
const healthy = async () => expect((await fetch(`${s.url}/api/v1/health`)).status).toBe(204);

describe('body size: HOOKLANE_MAX_PAYLOAD_BYTES', () => {
  test('the default is 1 MiB and the setting is validated', () => {
    expect(loadConfig({}, {}).maxPayloadBytes).toBe(1024 * 1024);
    expect(loadConfig({}, { HOOKLANE_MAX_PAYLOAD_BYTES: '2048' }).maxPayloadBytes).toBe(2048);
    expect(() => loadConfig({}, { HOOKLANE_MAX_PAYLOAD_BYTES: 'lots' })).toThrow(/HOOKLANE_MAX_PAYLOAD_BYTES/);
    expect(() => loadConfig({}, { HOOKLANE_MAX_PAYLOAD_BYTES: '10' })).toThrow(ConfigError);
  });

  test('a body over the limit is 413 {code, detail} and nothing is stored', async () => {
    const before = await messageCount();
    const big = JSON.stringify({ eventType: 'big.one', payload: { blob: 'x'.repeat(128 * 1024) } });
    const r = await post(`/app/${APP}/msg`, big);
    expect(r.status).toBe(413);
    expect(r.body).toEqual({ code: 'payload_too_large', detail: expect.stringContaining(String(128 * 1024)) });
    expect(await messageCount()).toBe(before);
    await healthy();
  });

  test('a chunked body (no content-length) over the limit is 413 too', async () => {
    const r = await raw(s.url, 'POST', `/api/v1/app/${APP}/msg`, {
      body: JSON.stringify({ eventType: 'big.chunked', payload: { blob: 'x'.repeat(140 * 1024) } }),
      headers: { 'content-type': 'application/json' },
      chunked: true,
    });
    expect(r.status).toBe(413);
    expect(isHttpError(r.body)).toBe(true);
  });

  test('a body just under the limit is accepted', async () => {
    const r = await s.api('POST', `/app/${APP}/msg`, { eventType: 'big.ok', payload: { blob: 'y'.repeat(128 * 1024 - 200) } });
    expect(r.status).toBe(202);
  });
});

describe('request headers', () => {
  test(`headers over ${MAX_HEADER_BYTES} bytes are 431 {code, detail}, and the server stays up`, async () => {
    const r = await raw(s.url, 'GET', '/api/v1/app', { headers: { 'x-junk': 'j'.repeat(MAX_HEADER_BYTES + 100) } });
    expect(r.status).toBe(431);
    expect(r.body).toEqual({ code: 'headers_too_large', detail: expect.any(String) });
    await healthy();
  });

  test('hundreds of headers are fine; thousands are over the size limit: 431', async () => {
    const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h-${i}`, 'v']));
    expect((await raw(s.url, 'GET', `/api/v1/app/${APP}`, { headers: many(500) })).status).toBe(200);
    const r = await raw(s.url, 'GET', `/api/v1/app/${APP}`, { headers: many(3000) });
    expect(r.status).toBe(431);
    expect(isHttpError(r.body)).toBe(true);
    await healthy();
  });

  test('an unparsable HTTP request is a 400 {code, detail}', async () => {
    const { connect } = await import('node:net');
    const u = new URL(s.url);
    const text = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(u.port), u.hostname, () => sock.write('GET /api/v1/app HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n'));
      let out = '';
      sock.on('data', (d) => (out += d));
      sock.on('end', () => resolve(out));
      sock.on('error', reject);
    });
    expect(text).toMatch(/^HTTP\/1\.1 400/);
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toEqual({ code: 'bad_request', detail: expect.any(String) });
    await healthy();
  });
});

describe('string lengths and patterns follow the contract', () => {
  /** Our request schemas, from the running server's OpenAPI document, against the Svix contract's. */
  test('ids, uids, names, channels and event types have the contract pattern and no larger maxLength', async () => {
    const contract = JSON.parse(readFileSync(fileURLToPath(new URL('../../../shared/contract/svix-server-openapi.json', import.meta.url)), 'utf8'));
    const ours = (await s.api('GET', '/openapi.json')).body;
    const deref = (doc: any, sch: any): any => {
      for (let i = 0; sch?.$ref && i < 10; i++) {
        const ref: string = sch.$ref;
        sch = ref.startsWith('#/') ? ref.slice(2).split('/').reduce((o: any, k: string) => o?.[k], doc) : doc.components?.schemas?.[ref.replace(/#$/, '')];
      }
      return sch;
    };
    const checked = new Set<string>();
    const compare = (where: string, theirs: any, mine: any) => {
      theirs = deref(contract, theirs);
      mine = deref(ours, mine);
      if (!theirs || !mine) return;
      if (theirs.type === 'array') return compare(`${where}[]`, theirs.items, mine.items);
      if (typeof theirs.pattern !== 'string') return;
      expect(mine?.pattern, where).toBe(theirs.pattern);
      if (theirs.maxLength !== undefined) expect(mine.maxLength, where).toBeLessThanOrEqual(theirs.maxLength);
      expect(mine.maxLength ?? Infinity, `${where} needs a maxLength`).toBeLessThan(Infinity);
      checked.add(where);
    };
    // Path and query parameters of every operation both documents have.
    for (const [path, ops] of Object.entries<any>(contract.paths)) {
      const mine = ours.paths[path.replace(/\{(\w+)\}/g, '{$1}')];
      if (!mine) continue;
      for (const [method, op] of Object.entries<any>(ops)) {
        const myOp = mine[method];
        if (!myOp || !op.parameters) continue;
        for (const p of op.parameters) {
          const myParam = (myOp.parameters ?? []).find((q: any) => q.name === p.name && q.in === p.in);
          // event_types may also come comma-separated (each name is checked in code, eventTypesParam);
          // iterators may be empty and carry a `-` before a 256-character name (tested below).
          if (myParam && p.name !== 'event_types' && p.name !== 'iterator') compare(`${method.toUpperCase()} ${path} ${p.in}:${p.name}`, p.schema, myParam.schema);
        }
        const body = op.requestBody?.content?.['application/json']?.schema;
        const myBody = myOp.requestBody?.content?.['application/json']?.schema;
        if (body && myBody) {
          const t = deref(contract, body);
          const m = deref(ours, myBody);
          // Identifier-like fields; secrets (whsec_/whsk_ keys) have their own, wider pattern.
          const ids = ['uid', 'name', 'eventType', 'eventTypes', 'channels', 'eventId', 'featureFlag'];
          for (const [field, sch] of Object.entries<any>(t.properties ?? {})) if (ids.includes(field)) compare(`${method.toUpperCase()} ${path} body.${field}`, sch, m.properties?.[field]);
        }
      }
    }
    for (const name of ['app_id', 'endpoint_id', 'msg_id', 'event_type_name', 'body.uid', 'body.eventType', 'body.channels[]', 'body.eventTypes[]', 'body.eventId', 'body.featureFlag']) {
      expect([...checked].some((w) => w.includes(name)), `checked ${name}`).toBe(true);
    }
  });

  test.each([
    ['uid too long', '/app', { name: 'x', uid: 'u'.repeat(257) }, ['body', 'uid']],
    ['uid with a space', '/app', { name: 'x', uid: 'has space' }, ['body', 'uid']],
    ['uid with SQL', '/app', { name: 'x', uid: "x'; DROP TABLE applications;--" }, ['body', 'uid']],
    ['uid with a slash', '/app', { name: 'x', uid: '../etc' }, ['body', 'uid']],
    ['name too long', '/app', { name: 'n'.repeat(1025) }, ['body', 'name']],
    ['empty name', '/app', { name: '' }, ['body', 'name']],
    ['event type too long', `/app/${APP}/msg`, { eventType: 'e'.repeat(257), payload: {} }, ['body', 'eventType']],
    ['event type with a slash', `/app/${APP}/msg`, { eventType: 'a/b', payload: {} }, ['body', 'eventType']],
    ['channel too long', `/app/${APP}/msg`, { eventType: 'e', payload: {}, channels: ['c'.repeat(129)] }, ['body', 'channels', '0']],
    ['six message channels', `/app/${APP}/msg`, { eventType: 'e', payload: {}, channels: ['a', 'b', 'c', 'd', 'e', 'f'] }, ['body', 'channels']],
    ['eventId with a percent', `/app/${APP}/msg`, { eventType: 'e', payload: {}, eventId: '%00' }, ['body', 'eventId']],
    ['eleven endpoint channels', `/app/${APP}/endpoint`, { url: 'http://127.0.0.1:9/', channels: 'abcdefghijk'.split('') }, ['body', 'channels']],
    ['url too long', `/app/${APP}/endpoint`, { url: `http://127.0.0.1:9/${'p'.repeat(65536)}` }, ['body', 'url']],
    ['event type name with a space', '/event-type', { name: 'a b', description: '' }, ['body', 'name']],
  ])('%s is 422 at its field', async (_what, path, body, loc) => {
    const before = await appCount();
    const r = await s.api('POST', path, body);
    expect(r.status).toBe(422);
    expect(isValidationError(r.body)).toBe(true);
    expect(r.body.detail[0].loc).toEqual(loc);
    expect(await appCount()).toBe(before);
  });

  test('an iterator that is not an id or a name is 422', async () => {
    for (const it of ["x' OR 1=1--", '../..', 'a b', 'x\u0000']) {
      const r = await s.api('GET', `/app?iterator=${encodeURIComponent(it)}`);
      expect(r.status, it).toBe(422);
      expect(r.body.detail[0].loc).toEqual(['query', 'iterator']);
    }
  });

  test('custom header names and values must be sendable: no CR, LF, or names with spaces', async () => {
    const base = `/app/${APP}/endpoint/${ep}/headers`;
    for (const headers of [{ 'X-Ok': 'a\r\nX-Injected: 1' }, { 'X-Ok': 'line\nbreak' }, { 'Bad Name': 'v' }, { 'X-Ok': '日本' }, { 'X-Ok': 5 }]) {
      const put = await s.api('PUT', base, { headers });
      expect(put.status, JSON.stringify(headers)).toBe(422);
      const patch = await s.api('PATCH', base, { headers });
      expect(patch.status, JSON.stringify(headers)).toBe(422);
    }
    expect((await s.api('GET', base)).body.headers).toEqual({});
    expect((await s.api('PUT', base, { headers: { 'X-Tab': 'a\tb', 'X-Latin': 'café' } })).status).toBe(204);
  });
});

describe('metadata sizes', () => {
  const meta = (keys: number, keyLen = 3, valueLen = 3) =>
    Object.fromEntries(Array.from({ length: keys }, (_, i) => [`${i}`.padStart(keyLen, 'k'), 'v'.repeat(valueLen)]));

  test(`at most ${METADATA_MAX_KEYS} keys of ${METADATA_MAX_KEY_LENGTH} characters with values of ${METADATA_MAX_VALUE_LENGTH}`, async () => {
    const ok = await s.api('POST', '/app', { name: 'meta', metadata: meta(METADATA_MAX_KEYS, METADATA_MAX_KEY_LENGTH, METADATA_MAX_VALUE_LENGTH) });
    expect(ok.status).toBe(201);
    expect(Object.keys(ok.body.metadata)).toHaveLength(METADATA_MAX_KEYS);
    for (const [what, m] of [
      ['too many keys', meta(METADATA_MAX_KEYS + 1)],
      ['key too long', meta(1, METADATA_MAX_KEY_LENGTH + 1)],
      ['value too long', meta(1, 3, METADATA_MAX_VALUE_LENGTH + 1)],
      ['value not a string', { k: 1 }],
    ] as const) {
      for (const [method, path, body] of [
        ['POST', '/app', { name: 'm', metadata: m }],
        ['PATCH', `/app/${APP}`, { metadata: m }],
        ['POST', `/app/${APP}/endpoint`, { url: 'http://127.0.0.1:9/', metadata: m }],
        ['PATCH', `/app/${APP}/endpoint/${ep}`, { metadata: m }],
      ] as const) {
        const r = await s.api(method, path, body);
        expect(r.status, `${what}: ${method} ${path}`).toBe(422);
        expect(r.body.detail[0].loc.slice(0, 2), `${what}: ${method} ${path}`).toEqual(['body', 'metadata']);
      }
    }
    expect((await s.api('GET', `/app/${APP}`)).body.metadata).toEqual({});
  });
});

/** Bodies with NUL in a field (a PostgreSQL text column cannot hold it), and where the 422 points. */
const NUL_CASES = (app: string): [string, string, string[]][] => [
  ['/app', '{"name":"a\\u0000b"}', ['body', 'name']],
  ['/app', '{"name":"ok","metadata":{"k":"v\\u0000"}}', ['body', 'metadata', 'k']],
  ['/app', '{"name":"ok","metadata":{"k\\u0000":"v"}}', ['body', 'metadata', 'k\u0000']],
  [`/app/${app}/msg`, '{"eventType":"nul","payload":{"a":["x","\\u0000"]}}', ['body', 'payload', 'a', '1']],
  [`/app/${app}/msg`, '{"eventType":"nul","payload":{"\\u0000":1}}', ['body', 'payload', '\u0000']],
  [`/app/${app}/msg`, '{"eventType":"nul\\u0000","payload":{}}', ['body', 'eventType']],
  [`/app/${app}/endpoint`, '{"url":"http://127.0.0.1:9/","description":"d\\u0000"}', ['body', 'description']],
  ['/event-type', '{"name":"nul.type","description":"\\u0000"}', ['body', 'description']],
  ['/event-type', '{"name":"nul.type2","description":"","schemas":{"1":{"title":"\\u0000"}}}', ['body', 'schemas', '1', 'title']],
];

describe.each(ENGINES)('NUL, surrogates and huge numbers on %s', (engine) => {
  let e: TestServer;
  beforeAll(async () => {
    e = await startOnEngine(engine);
    expect((await e.api('POST', '/app', { name: 'engine', uid: 'eng' })).status).toBe(201);
  });
  afterAll(async () => {
    await e?.close();
  });

  test('every case is 422, nothing is stored, and the engine is fine afterwards', async () => {
    const send = (path: string, body: string) => raw(e.url, 'POST', `/api/v1${path}`, { body, headers: { 'content-type': 'application/json' } });
    for (const [path, body, loc] of [
      ...NUL_CASES('eng'),
      ['/app', '{"name":"\\ud800"}', ['body', 'name']],
      ['/app/eng/msg', '{"eventType":"e","payload":{"\\udfff":1}}', ['body', 'payload', '\udfff']],
      ['/app/eng/msg', '{"eventType":"e","payload":{"n":1e400}}', ['body', 'payload', 'n']],
    ] as [string, string, string[]][]) {
      const r = await send(path, body);
      expect(r.status, `${engine} ${body}`).toBe(422);
      expect(r.body.detail[0].loc, body).toEqual(loc);
    }
    expect((await e.api('GET', '/app?limit=250')).body.data).toHaveLength(1);
    expect((await e.api('GET', '/app/eng/msg')).body.data).toEqual([]);
    const ok = await send('/app/eng/msg', '{"eventType":"e","payload":{"s":"\\\\u0000 and \\ud83d\\ude00"}}');
    expect(ok.status).toBe(202);
    expect((await e.api('GET', `/app/eng/msg/${ok.body.id}`)).body.payload).toEqual({ s: '\\u0000 and 😀' });
  });
});

describe('JSON nesting depth', () => {
  const nested = (levels: number, open = '{"a":', close = '}', leaf = '1') => open.repeat(levels - 1) + leaf + close.repeat(levels - 1);

  test('the scanner counts depth outside strings only', () => {
    expect(scanJson('{"a":[1,{"b":"[[[[{{{{"}]}').depth).toBe(3);
    expect(scanJson('"\\"[[["').depth).toBe(0);
    expect(scanJson('{"a":"\\\\u0000"}').suspicious).toBe(false);
    expect(scanJson('{"a":"\\u0000"}').suspicious).toBe(true);
    expect(scanJson('{"a":"\\uD83D\\uDE00"}').suspicious).toBe(true);
    expect(scanJson('{"a":1e400}').suspicious).toBe(true);
    expect(scanJson('{"a":true,"b":false,"c":1.5}').suspicious).toBe(false);
  });

  test(`a payload may nest ${MAX_PAYLOAD_DEPTH} levels, not one more`, async () => {
    const ok = await post(`/app/${APP}/msg`, `{"eventType":"deep.ok","payload":${nested(MAX_PAYLOAD_DEPTH + 1)}}`);
    expect(ok.status).toBe(202);
    const got = await s.api('GET', `/app/${APP}/msg/${ok.body.id}`);
    expect(JSON.stringify(got.body.payload)).toBe(nested(MAX_PAYLOAD_DEPTH + 1));

    const before = await messageCount();
    for (const body of [
      `{"eventType":"deep.no","payload":${nested(MAX_PAYLOAD_DEPTH + 2)}}`,
      `{"eventType":"deep.no","payload":{"a":${nested(MAX_PAYLOAD_DEPTH + 1, '[', ']')}}}`,
    ]) {
      const r = await post(`/app/${APP}/msg`, body);
      expect(r.status).toBe(422);
      expect(r.body.detail[0]).toEqual({ loc: ['body'], msg: expect.stringContaining(String(MAX_BODY_DEPTH)), type: 'value_error.too_deep' });
    }
    expect(await messageCount()).toBe(before);
  });

  test('tens of thousands of levels (arrays or objects) are a quick 422, not a stack overflow', async () => {
    for (const body of ['['.repeat(50_000) + ']'.repeat(50_000), `{"eventType":"x","payload":${nested(20_000)}}`, '['.repeat(120_000)]) {
      const t0 = Date.now();
      const r = await post(`/app/${APP}/msg`, body);
      expect(r.status).toBe(422);
      expect(Date.now() - t0).toBeLessThan(2000);
    }
    // Deep event type schemas and metadata too.
    expect((await post('/event-type', `{"name":"deep.schema","description":"","schemas":{"1":${nested(200)}}}`)).status).toBe(422);
    expect((await s.api('GET', '/event-type/deep.schema')).status).toBe(404);
    await healthy();
  });
});

describe('numbers', () => {
  test('1e400 and integers beyond int64 are 422 for limit, throttleRate and gracePeriodSeconds', async () => {
    for (const q of ['1e400', '99999999999999999999999', '-1', '1.5', 'NaN', 'Infinity']) {
      const r = await s.api('GET', `/app?limit=${q}`);
      expect(r.status, q).toBe(422);
      expect(r.body.detail[0].loc).toEqual(['query', 'limit']);
    }
    for (const v of ['1e400', '18446744073709551616', '9223372036854775808', '-1e400', '65536', '1.5']) {
      const r = await post('/app', `{"name":"n","throttleRate":${v}}`);
      expect(r.status, v).toBe(422);
      expect(r.body.detail[0].loc).toEqual(['body', 'throttleRate']);
    }
    for (const v of ['1e400', '18446744073709551616', '604801', '-1', '1.5']) {
      const g = await post(`/app/${APP}/endpoint/${ep}/secret/rotate`, `{"gracePeriodSeconds":${v}}`);
      expect(g.status, v).toBe(422);
      expect(g.body.detail[0].loc).toEqual(['body', 'gracePeriodSeconds']);
    }
  });

  test('a payload number that does not fit a double is 422 (it would be stored as null)', async () => {
    const before = await messageCount();
    for (const n of ['1e400', '-1e400', '1' + '0'.repeat(400)]) {
      const r = await post(`/app/${APP}/msg`, `{"eventType":"num","payload":{"deep":{"n":[${n}]}}}`);
      expect(r.status, n).toBe(422);
      expect(r.body.detail[0].loc).toEqual(['body', 'payload', 'deep', 'n', '0']);
    }
    expect(await messageCount()).toBe(before);
    const ok = await post(`/app/${APP}/msg`, '{"eventType":"num","payload":{"small":1e-5,"big":1.5e300,"neg":-2E10}}');
    expect(ok.status).toBe(202);
    expect(ok.body.payload).toEqual({ small: 1e-5, big: 1.5e300, neg: -2e10 });
  });
});

describe('encodings and control characters', () => {
  test('a body that is not valid UTF-8 is 400 invalid_utf8 and stores nothing', async () => {
    const before = await messageCount();
    const bodies = [
      Buffer.concat([Buffer.from('{"eventType":"utf8","payload":{"s":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}}')]),
      Buffer.concat([Buffer.from('{"eventType":"utf8","payload":{"s":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}}')]), // overlong '/'
      Buffer.concat([Buffer.from('{"eventType":"utf8","payload":{"s":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}}')]), // encoded surrogate
      Buffer.concat([Buffer.from('{"eventType":"utf8","payload":{"s":"'), Buffer.from([0xe2, 0x82]), Buffer.from('"}}')]), // truncated
    ];
    for (const b of bodies) {
      const r = await post(`/app/${APP}/msg`, b);
      expect(r.status).toBe(400);
      expect(r.body).toEqual({ code: 'invalid_utf8', detail: expect.any(String) });
    }
    expect((await post('/app', Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0x80]), Buffer.from('"}')]))).status).toBe(400);
    expect(await messageCount()).toBe(before);
  });

  test('valid multi-byte UTF-8, a BOM and escaped surrogate pairs are kept exactly', async () => {
    const r = await post(`/app/${APP}/msg`, Buffer.from('\ufeff{"eventType":"utf8.ok","payload":{"s":"héllo 日本 😀","e":"\\ud83d\\ude00"}}'));
    expect(r.status).toBe(202);
    const got = await s.api('GET', `/app/${APP}/msg/${r.body.id}`);
    expect(got.body.payload).toEqual({ s: 'héllo 日本 😀', e: '😀' });
  });

  test('NUL in any string or key is 422 at its location; both engines could not store it alike', async () => {
    const appsBefore = await appCount();
    const msgsBefore = await messageCount();
    for (const [path, body, loc] of NUL_CASES(APP)) {
      const r = await post(path, body);
      expect(r.status, body).toBe(422);
      expect(r.body.detail[0].loc, body).toEqual(loc);
      expect(r.body.detail[0].msg).toMatch(/NUL/);
    }
    expect(await appCount()).toBe(appsBefore);
    expect(await messageCount()).toBe(msgsBefore);
    expect((await s.api('GET', '/event-type/nul.type')).status).toBe(404);
    // An escaped backslash followed by u0000 is plain text, not NUL.
    const ok = await post(`/app/${APP}/msg`, '{"eventType":"nul","payload":{"a":"\\\\u0000"}}');
    expect(ok.status).toBe(202);
    expect(ok.body.payload).toEqual({ a: '\\u0000' });
  });

  test('unpaired surrogate escapes are 422: they are not Unicode text', async () => {
    for (const s1 of ['\\ud800', '\\udc00x', 'a\\ud83d']) {
      const r = await post(`/app/${APP}/msg`, `{"eventType":"sur","payload":{"s":"${s1}"}}`);
      expect(r.status, s1).toBe(422);
      expect(r.body.detail[0].loc).toEqual(['body', 'payload', 's']);
    }
  });

  test('malformed JSON is 400 invalid_json saying where; __proto__ keys are refused', async () => {
    for (const body of ['{"name": ', '{"name":"x",}', "{'name':'x'}", '{"name":"x"} trailing', 'nul', '']) {
      const r = await post('/app', body);
      expect(r.status, body).toBe(400);
      expect(r.body, body).toEqual({ code: 'invalid_json', detail: expect.any(String) });
    }
    expect((await post('/app', '{"name":"x",}')).body.detail).toMatch(/JSON/);
    for (const body of ['{"name":"x","__proto__":{"admin":true}}', '{"name":"x","metadata":{"constructor":{"prototype":{"a":"b"}}}}']) {
      const r = await post('/app', body);
      expect(r.status, body).toBe(400);
      expect(r.body).toEqual({ code: 'forbidden_key', detail: expect.stringContaining('__proto__') });
    }
  });

  test('wrong types and unknown enum values are 422', async () => {
    const cases: [string, string, unknown][] = [
      ['GET', `/app/${APP}/attempt/endpoint/${ep}?status=7`, undefined],
      ['GET', `/app/${APP}/attempt/endpoint/${ep}?status_code_class=123`, undefined],
      ['GET', '/app?order=random', undefined],
      ['GET', `/app/${APP}/msg?with_content=maybe`, undefined],
      ['POST', '/app', { name: ['x'] }],
      ['POST', '/app', { name: 'x', metadata: [] }],
      ['POST', `/app/${APP}/msg`, { eventType: 'e', payload: 'text' }],
      ['POST', `/app/${APP}/msg`, { eventType: 'e', payload: {}, channels: 'one' }],
      ['POST', `/app/${APP}/endpoint`, { url: 'http://127.0.0.1:9/', disabled: 'yes' }],
      ['POST', `/app/${APP}/endpoint/${ep}/recover`, { since: 'yesterday' }],
      ['POST', '/event-type', { name: 'x.y', description: 5 }],
    ];
    for (const [method, path, body] of cases) {
      const r = await s.api(method, path, body);
      expect(r.status, `${method} ${path}`).toBe(422);
      expect(isValidationError(r.body), `${method} ${path}`).toBe(true);
    }
  });
});

describe('hostile ids in paths', () => {
  test.each([
    ["SQL in the app id", `/api/v1/app/${encodeURIComponent("x'; DROP TABLE applications;--")}`],
    ['SQL in the endpoint id', `/api/v1/app/${APP}/endpoint/${encodeURIComponent("1' OR '1'='1")}`],
    ['a NUL byte', `/api/v1/app/${APP}%00`],
    ['an encoded slash', `/api/v1/app/${APP}%2F..%2F..%2Fetc%2Fpasswd`],
    ['raw dot segments', `/api/v1/app/${APP}/endpoint/../../../../etc/passwd`],
    ['encoded dot segments', `/api/v1/app/%2e%2e/endpoint`],
    ['double-encoded', `/api/v1/app/%252e%252e%252f/msg`],
    ['a broken escape', `/api/v1/app/%E0%A4%A/msg`],
    ['a backslash', `/api/v1/app/..%5C..%5Cwindows/msg`],
    ['unicode', `/api/v1/app/${encodeURIComponent('ａｐｐ＿１')}`],
    ['an over-long id', `/api/v1/app/${'a'.repeat(2000)}`],
  ])('%s is a 4xx with a body, and nothing changes', async (_what, path) => {
    const before = await appCount();
    for (const method of ['GET', 'DELETE', 'PUT', 'POST']) {
      const r = await raw(s.url, method, path, method === 'PUT' || method === 'POST' ? json({ name: 'x', eventType: 'e', payload: {}, url: 'http://127.0.0.1:9/' }) : {});
      expect(r.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${method} ${path}`).toBeLessThan(500);
      expect(isHttpError(r.body) || isValidationError(r.body), `${method} ${path}: ${r.text}`).toBe(true);
    }
    expect(await appCount()).toBe(before);
    expect((await s.api('GET', `/app/${APP}/endpoint/${ep}`)).status).toBe(200);
  });
});
