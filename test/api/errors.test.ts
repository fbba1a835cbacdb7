import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { apiClient, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.js';

let s: TestServer;
let ep: string;
let msg: string;
beforeAll(async () => {
  s = await startServer();
  await s.api('POST', '/app', { name: 'Errors', uid: 'errs' });
  ep = (await s.api('POST', '/app/errs/endpoint', { url: 'http://127.0.0.1:9/hook', uid: 'ep' })).body.id;
  msg = (await s.api('POST', '/app/errs/msg', { eventType: 'e.t', payload: {} })).body.id;
});
afterAll(async () => {
  await s.close();
});

/** Sends a raw request to /api/v1 and parses the JSON answer. */
async function raw(method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${s.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${TEST_TOKEN}`, ...init.headers },
    body: init.body,
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: keep the text, the assertions will show it */
  }
  return { status: res.status, body };
}

describe('authentication', () => {
  // One route of each kind: collections, single resources, sub-resources, actions.
  const routes = (): [string, string, unknown?][] => [
    ['GET', '/app'],
    ['POST', '/app', { name: 'x' }],
    ['GET', '/app/errs'],
    ['PUT', '/app/errs', { name: 'x' }],
    ['PATCH', '/app/errs', { name: 'x' }],
    ['DELETE', '/app/errs'],
    ['GET', '/event-type'],
    ['POST', '/event-type', { name: 'a.b', description: 'x' }],
    ['DELETE', '/event-type/a.b'],
    ['GET', '/app/errs/endpoint'],
    ['POST', '/app/errs/endpoint', { url: 'http://127.0.0.1:9/' }],
    ['GET', `/app/errs/endpoint/${ep}`],
    ['DELETE', `/app/errs/endpoint/${ep}`],
    ['GET', `/app/errs/endpoint/${ep}/secret`],
    ['POST', `/app/errs/endpoint/${ep}/secret/rotate`, {}],
    ['GET', `/app/errs/endpoint/${ep}/headers`],
    ['PUT', `/app/errs/endpoint/${ep}/headers`, { headers: {} }],
    ['GET', `/app/errs/endpoint/${ep}/stats`],
    ['GET', '/app/errs/msg'],
    ['POST', '/app/errs/msg', { eventType: 'e.t', payload: {} }],
    ['GET', `/app/errs/msg/${msg}`],
    ['DELETE', `/app/errs/msg/${msg}/content`],
    ['GET', `/app/errs/attempt/msg/${msg}`],
    ['GET', `/app/errs/attempt/endpoint/${ep}`],
    ['GET', `/app/errs/msg/${msg}/endpoint`],
    ['POST', `/app/errs/msg/${msg}/endpoint/${ep}/resend`],
    ['GET', '/app/unknown-app'],
    ['GET', '/no/such/route'],
  ];

  test('every route is 401 without a token, with a wrong token, or with another scheme', async () => {
    const clients = {
      missing: (m: string, p: string, b?: unknown) => raw(m, p, { body: b === undefined ? undefined : JSON.stringify(b), headers: { authorization: '', 'content-type': 'application/json' } }),
      wrong: apiClient(s.url, 'not-the-token'),
      basic: (m: string, p: string, b?: unknown) => raw(m, p, { body: b === undefined ? undefined : JSON.stringify(b), headers: { authorization: `Basic ${TEST_TOKEN}`, 'content-type': 'application/json' } }),
    };
    for (const [name, call] of Object.entries(clients)) {
      for (const [method, path, body] of routes()) {
        const r = await call(method, path, body);
        expect(r.status, `${name} ${method} ${path}`).toBe(401);
        expect(typeof r.body.code, `${name} ${method} ${path}`).toBe('string');
        expect(typeof r.body.detail).toBe('string');
      }
    }
    // Nothing was changed by those requests.
    expect((await s.api('GET', '/app/errs')).status).toBe(200);
    expect((await s.api('GET', `/app/errs/endpoint/${ep}`)).status).toBe(200);
    expect((await s.api('GET', '/app/errs/msg')).body.data).toHaveLength(1);
    expect((await s.api('GET', '/app?limit=250')).body.data).toHaveLength(1);
  });

  test('health is public and answers 204', async () => {
    for (const path of ['/health', '/health/ping']) {
      const r = await fetch(`${s.url}/api/v1${path}`);
      expect(r.status, path).toBe(204);
      expect(await r.text()).toBe('');
    }
    expect((await fetch(`${s.url}/api/v1/health`, { method: 'HEAD' })).status).toBe(204);
  });

  test('the right token is accepted', async () => {
    expect((await s.api('GET', '/app')).status).toBe(200);
  });
});

describe('not found', () => {
  test.each([
    ['GET', '/app/no-such-app'],
    ['GET', '/app/app_00000000000000000000000000'],
    ['GET', '/app/no-such-app/endpoint'],
    ['GET', '/app/errs/endpoint/no-such-ep'],
    ['GET', '/app/errs/endpoint/ep_00000000000000000000000000/secret'],
    ['GET', '/app/errs/msg/no-such-msg'],
    ['GET', '/app/errs/attempt/msg/no-such-msg'],
    ['GET', '/app/errs/msg/no-such-msg/endpoint'],
    ['POST', '/app/errs/msg/no-such-msg/endpoint/ep/resend'],
    ['GET', '/event-type/no.such.type'],
  ])('%s %s is 404 not_found', async (method, path) => {
    const r = await s.api(method, path);
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ code: 'not_found', detail: expect.any(String) });
  });

  test('resend to an unknown endpoint is 404', async () => {
    const r = await s.api('POST', `/app/errs/msg/${msg}/endpoint/no-such-ep/resend`);
    expect(r.status).toBe(404);
    expect(r.body.code).toBe('not_found');
  });

  test('an unknown route is 404 with {code, detail}', async () => {
    const r = await s.api('GET', '/nothing/here');
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ code: 'not_found', detail: expect.any(String) });
  });
});

describe('validation: 422 {detail: [{loc, msg, type}]}', () => {
  const item = (r: { body: any }) => {
    expect(Array.isArray(r.body.detail)).toBe(true);
    expect(r.body.detail.length).toBeGreaterThan(0);
    for (const d of r.body.detail) {
      expect(Array.isArray(d.loc)).toBe(true);
      expect(d.loc.every((x: unknown) => typeof x === 'string')).toBe(true);
      expect(typeof d.msg).toBe('string');
      expect(typeof d.type).toBe('string');
    }
    return r.body.detail[0];
  };

  test('a wrong type is located at its field', async () => {
    const r = await s.api('POST', '/app', { name: 5 });
    expect(r.status).toBe(422);
    expect(item(r).loc).toEqual(['body', 'name']);
  });

  test('a missing field is located at its field', async () => {
    const r = await s.api('POST', '/app', { uid: 'nameless' });
    expect(r.status).toBe(422);
    const d = item(r);
    expect(d.loc).toEqual(['body', 'name']);
    expect(d.type).toMatch(/missing/);
    expect((await s.api('GET', '/app/nameless')).status).toBe(404);
  });

  test('message fields: missing payload, wrong eventType type, payload not an object', async () => {
    const missing = await s.api('POST', '/app/errs/msg', { eventType: 'e.t' });
    expect(missing.status).toBe(422);
    expect(item(missing).loc).toEqual(['body', 'payload']);
    const wrongType = await s.api('POST', '/app/errs/msg', { eventType: 42, payload: {} });
    expect(wrongType.status).toBe(422);
    expect(item(wrongType).loc).toEqual(['body', 'eventType']);
    const notObject = await s.api('POST', '/app/errs/msg', { eventType: 'e.t', payload: [1, 2] });
    expect(notObject.status).toBe(422);
    expect(item(notObject).loc).toEqual(['body', 'payload']);
  });

  test('nested fields have a deeper loc', async () => {
    const r = await s.api('POST', '/app/errs/endpoint', { url: 'http://127.0.0.1:9/', channels: ['ok', 7] });
    expect(r.status).toBe(422);
    expect(item(r).loc).toEqual(['body', 'channels', '1']);
  });

  test('query parameters are located in the query', async () => {
    const r = await s.api('GET', '/app?limit=lots');
    expect(r.status).toBe(422);
    expect(item(r).loc).toEqual(['query', 'limit']);
    const order = await s.api('GET', '/app?order=sideways');
    expect(order.status).toBe(422);
    expect(item(order).loc).toEqual(['query', 'order']);
  });

  test('a body that is not an object is 422, not 500', async () => {
    for (const body of ['[]', '"text"', '42', 'null']) {
      const r = await raw('POST', '/app', { body, headers: { 'content-type': 'application/json' } });
      expect(r.status, body).toBeGreaterThanOrEqual(400);
      expect(r.status, body).toBeLessThan(500);
    }
  });
});

describe('malformed requests', () => {
  test('malformed JSON is a 4xx with {code, detail}', async () => {
    for (const body of ['{"name": ', '{name: "x"}', "{'name': 'x'}", '{"name":"x",}']) {
      const r = await raw('POST', '/app', { body, headers: { 'content-type': 'application/json' } });
      expect(r.status, body).toBeGreaterThanOrEqual(400);
      expect(r.status, body).toBeLessThan(500);
      expect(r.body).toEqual({ code: expect.any(String), detail: expect.any(String) });
    }
  });

  test('an empty JSON body is a 4xx, not 500', async () => {
    const r = await raw('POST', '/app', { body: '', headers: { 'content-type': 'application/json' } });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(typeof r.body.code).toBe('string');
  });

  test('a body that is not JSON is a 4xx, not 500', async () => {
    const r = await raw('POST', '/app', { body: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(r.body).toEqual({ code: expect.any(String), detail: expect.any(String) });
  });

  test('a malformed or over-long path is a 4xx with {code, detail}', async () => {
    for (const path of ['/app/%E0%A4%A', `/app/${'a'.repeat(600)}`, `/app/errs/msg/${'m'.repeat(600)}`]) {
      const r = await raw('GET', path);
      expect(r.status, path).toBeGreaterThanOrEqual(400);
      expect(r.status, path).toBeLessThan(500);
      expect(r.body, path).toEqual({ code: expect.any(String), detail: expect.any(String) });
    }
  });

  test('a body over 1 MiB is 413 with {code, detail}, and the server keeps working', async () => {
    const big = JSON.stringify({ eventType: 'big.one', payload: { blob: 'x'.repeat(1024 * 1024 + 10) } });
    const r = await raw('POST', '/app/errs/msg', { body: big, headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(413);
    expect(r.body).toEqual({ code: expect.any(String), detail: expect.any(String) });
    const list = await s.api('GET', '/app/errs/msg?event_types=big.one');
    expect(list.status).toBe(200);
    expect(list.body.data).toEqual([]);
  });

  test('a body just under 1 MiB is accepted', async () => {
    const payload = { blob: 'y'.repeat(1024 * 1024 - 200) };
    const r = await s.api('POST', '/app/errs/msg', { eventType: 'big.ok', payload });
    expect(r.status).toBe(202);
    const got = await s.api('GET', `/app/errs/msg/${r.body.id}`);
    expect(got.body.payload.blob).toHaveLength(payload.blob.length);
  });
});
