import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { eventually, startServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
let rx: Receiver;
beforeAll(async () => {
  s = await startServer();
  // Payloads carrying {fail: true} are refused, everything else accepted.
  rx = await startReceiver((req) => (JSON.parse(req.body).fail ? { status: 500, body: 'nope' } : { status: 200, body: 'ok' }));
  expect((await s.api('POST', '/app', { name: 'Endpoints', uid: 'eps' })).status).toBe(201);
});
afterAll(async () => {
  await s.close();
  await rx.close();
});

const hook = (path: string) => `${rx.url}/${path}`;
const delivered = (path: string) => rx.requests.filter((r) => r.path === `/${path}`);
/** Waits for the first request that reaches `/path`. */
async function firstTo(path: string) {
  await eventually(() => delivered(path).length > 0, 10_000, `a delivery to /${path}`);
  return delivered(path)[0]!;
}

describe('CRUD', () => {
  test('POST creates with 201 and defaults', async () => {
    const r = await s.api('POST', '/app/eps/endpoint', { url: hook('a'), description: 'first one' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ url: hook('a'), description: 'first one', disabled: false, uid: null, eventTypes: null, channels: null, metadata: {} });
    expect(r.body.id).toMatch(/^ep_/);
    expect(typeof r.body.version).toBe('number');
  });

  test('GET by id and by uid; list; unknown is 404', async () => {
    const c = await s.api('POST', '/app/eps/endpoint', { url: hook('b'), uid: 'ep-b', eventTypes: ['a.b'], channels: ['ch1'], metadata: { k: 'v' } });
    expect(c.status).toBe(201);
    const byId = await s.api('GET', `/app/eps/endpoint/${c.body.id}`);
    const byUid = await s.api('GET', '/app/eps/endpoint/ep-b');
    expect(byId.status).toBe(200);
    expect(byId.body).toEqual(c.body);
    expect(byUid.body).toEqual(c.body);
    const list = await s.api('GET', '/app/eps/endpoint?limit=250');
    expect(list.status).toBe(200);
    expect(list.body.data.map((e: any) => e.id)).toContain(c.body.id);
    const missing = await s.api('GET', '/app/eps/endpoint/ep_nothing');
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('not_found');
  });

  test('an endpoint of one application is not visible through another', async () => {
    await s.api('POST', '/app', { name: 'Other', uid: 'eps-other' });
    const c = await s.api('POST', '/app/eps/endpoint', { url: hook('c'), uid: 'ep-c' });
    expect((await s.api('GET', `/app/eps-other/endpoint/${c.body.id}`)).status).toBe(404);
    expect((await s.api('GET', '/app/eps-other/endpoint/ep-c')).status).toBe(404);
  });

  test('a duplicate uid in one application is 409', async () => {
    expect((await s.api('POST', '/app/eps/endpoint', { url: hook('d'), uid: 'ep-dup' })).status).toBe(201);
    expect((await s.api('POST', '/app/eps/endpoint', { url: hook('d2'), uid: 'ep-dup' })).status).toBe(409);
  });

  test('PUT creates (201) with the path as uid, then replaces (200)', async () => {
    const c = await s.api('PUT', '/app/eps/endpoint/ep-put', { url: hook('put'), description: 'v1', metadata: { a: '1' } });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ uid: 'ep-put', description: 'v1', metadata: { a: '1' } });
    const u = await s.api('PUT', '/app/eps/endpoint/ep-put', { url: hook('put2') });
    expect(u.status).toBe(200);
    expect(u.body).toMatchObject({ id: c.body.id, url: hook('put2'), description: '', metadata: {} });
  });

  test('PATCH changes only the given fields', async () => {
    const c = await s.api('POST', '/app/eps/endpoint', { url: hook('patch'), uid: 'ep-patch', description: 'keep', eventTypes: ['x.y'] });
    const r = await s.api('PATCH', '/app/eps/endpoint/ep-patch', { disabled: true });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: c.body.id, description: 'keep', eventTypes: ['x.y'], disabled: true, url: hook('patch') });
    expect((await s.api('GET', '/app/eps/endpoint/ep-patch')).body.disabled).toBe(true);
  });

  test('DELETE is 204, then 404', async () => {
    const c = await s.api('POST', '/app/eps/endpoint', { url: hook('del') });
    expect((await s.api('DELETE', `/app/eps/endpoint/${c.body.id}`)).status).toBe(204);
    expect((await s.api('GET', `/app/eps/endpoint/${c.body.id}`)).status).toBe(404);
    expect((await s.api('DELETE', `/app/eps/endpoint/${c.body.id}`)).status).toBe(404);
  });

  test('filterTypes (the Svix SDKs\' name) is an alias of eventTypes, in and out', async () => {
    const c = await s.api('POST', '/app/eps/endpoint', { url: hook('alias'), filterTypes: ['a.one'] });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ eventTypes: ['a.one'], filterTypes: ['a.one'] });
    const put = await s.api('PUT', `/app/eps/endpoint/${c.body.id}`, { url: hook('alias'), filterTypes: ['a.two'] });
    expect(put.body).toMatchObject({ eventTypes: ['a.two'], filterTypes: ['a.two'] });
    const patch = await s.api('PATCH', `/app/eps/endpoint/${c.body.id}`, { filterTypes: ['a.three'] });
    expect(patch.body).toMatchObject({ eventTypes: ['a.three'], filterTypes: ['a.three'] });
    expect((await s.api('GET', `/app/eps/endpoint/${c.body.id}`)).body.eventTypes).toEqual(['a.three']);
    const bad = await s.api('POST', '/app/eps/endpoint', { url: hook('alias'), filterTypes: ['not valid!'] });
    expect(bad.status).toBe(422);
  });

  test('an invalid URL is 422 on body.url', async () => {
    for (const url of ['not a url', 'ftp://127.0.0.1/x']) {
      const r = await s.api('POST', '/app/eps/endpoint', { url });
      expect(r.status).toBe(422);
      expect(r.body.detail[0].loc).toEqual(['body', 'url']);
    }
  });
});

describe('headers', () => {
  test('PUT replaces, PATCH merges and removes with null, GET hides sensitive values', async () => {
    await s.api('POST', '/app/eps/endpoint', { url: hook('headers'), uid: 'ep-headers' });
    const base = '/app/eps/endpoint/ep-headers/headers';
    expect((await s.api('GET', base)).body).toEqual({ headers: {}, sensitive: [] });

    const put = await s.api('PUT', base, { headers: { 'X-Tenant': 'acme', Authorization: 'Bearer s3cret' } });
    expect(put.status).toBe(204);
    const got = await s.api('GET', base);
    expect(got.status).toBe(200);
    expect(got.body.headers).toEqual({ 'X-Tenant': 'acme' });
    expect(got.body.sensitive).toEqual(['Authorization']);
    expect(JSON.stringify(got.body)).not.toContain('s3cret');

    const patch = await s.api('PATCH', base, { headers: { 'X-Extra': '1', 'X-Tenant': null } });
    expect(patch.status).toBe(204);
    const after = await s.api('GET', base);
    expect(after.body.headers).toEqual({ 'X-Extra': '1' });
    expect(after.body.sensitive).toEqual(['Authorization']);

    await s.api('PUT', base, { headers: { 'X-Only': 'this' } });
    expect((await s.api('GET', base)).body).toEqual({ headers: { 'X-Only': 'this' }, sensitive: [] });
  });

  test('custom headers, sensitive ones included, are sent with deliveries', async () => {
    await s.api('POST', '/app', { name: 'Header delivery', uid: 'hdr-app' });
    await s.api('POST', '/app/hdr-app/endpoint', { url: hook('hdr-delivery'), uid: 'ep' });
    await s.api('PUT', '/app/hdr-app/endpoint/ep/headers', { headers: { 'X-Tenant': 'acme', Authorization: 'Bearer s3cret' } });
    await s.api('POST', '/app/hdr-app/msg', { eventType: 'h.t', payload: {} });
    const got = await firstTo('hdr-delivery');
    expect(got.headers['x-tenant']).toBe('acme');
    expect(got.headers.authorization).toBe('Bearer s3cret');
  });

  test('reserved headers are refused with 422, on PUT and PATCH', async () => {
    await s.api('POST', '/app/eps/endpoint', { url: hook('reserved'), uid: 'ep-reserved' });
    const base = '/app/eps/endpoint/ep-reserved/headers';
    for (const name of ['webhook-id', 'Webhook-Signature', 'svix-id', 'content-type', 'host']) {
      const put = await s.api('PUT', base, { headers: { [name]: 'x' } });
      expect(put.status, name).toBe(422);
      expect(put.body.detail[0].loc.slice(0, 2)).toEqual(['body', 'headers']);
      expect((await s.api('PATCH', base, { headers: { [name]: 'x' } })).status, name).toBe(422);
    }
    expect((await s.api('GET', base)).body).toEqual({ headers: {}, sensitive: [] });
  });
});

describe('secret', () => {
  test('a generated secret has the whsec_ prefix and signs deliveries', async () => {
    const ep = await s.api('POST', '/app/eps/endpoint', { url: hook('secret-gen'), uid: 'ep-secret-gen', eventTypes: ['sec.gen'] });
    const sec = await s.api('GET', `/app/eps/endpoint/${ep.body.id}/secret`);
    expect(sec.status).toBe(200);
    expect(sec.body.key).toMatch(/^whsec_[A-Za-z0-9+/=]{32,}$/);
    const msg = await s.api('POST', '/app/eps/msg', { eventType: 'sec.gen', payload: { n: 1 } });
    const got = await firstTo('secret-gen');
    expect(got.headers['webhook-id']).toBe(msg.body.id);
    expect(new Webhook(sec.body.key).verify(got.body, got.headers as Record<string, string>)).toEqual({ n: 1 });
  });

  test('a custom secret given on create is kept and used to sign', async () => {
    const custom = 'whsec_' + Buffer.from('a custom secret of 32 bytes!!!!!').toString('base64');
    const ep = await s.api('POST', '/app/eps/endpoint', { url: hook('secret-custom'), secret: custom, eventTypes: ['sec.custom'] });
    expect(ep.status).toBe(201);
    expect((await s.api('GET', `/app/eps/endpoint/${ep.body.id}/secret`)).body.key).toBe(custom);
    await s.api('POST', '/app/eps/msg', { eventType: 'sec.custom', payload: { custom: true } });
    const got = await firstTo('secret-custom');
    expect(new Webhook(custom).verify(got.body, got.headers as Record<string, string>)).toEqual({ custom: true });
  });

  test('a malformed custom secret is 422', async () => {
    const r = await s.api('POST', '/app/eps/endpoint', { url: hook('secret-bad'), secret: 'whsec_short' });
    expect(r.status).toBe(422);
    expect(r.body.detail[0].loc).toEqual(['body', 'secret']);
  });
});

describe('filtering and stats', () => {
  test('an endpoint receives only the event types and channels it subscribed to', async () => {
    await s.api('POST', '/app', { name: 'Filters', uid: 'filters' });
    await s.api('POST', '/app/filters/endpoint', { url: hook('only-a'), eventTypes: ['type.a'] });
    await s.api('POST', '/app/filters/endpoint', { url: hook('only-ch'), channels: ['blue'] });
    await s.api('POST', '/app/filters/endpoint', { url: hook('all') });
    await s.api('POST', '/app/filters/msg', { eventType: 'type.b', payload: { n: 1 } });
    await s.api('POST', '/app/filters/msg', { eventType: 'type.a', payload: { n: 2 } });
    await s.api('POST', '/app/filters/msg', { eventType: 'type.b', channels: ['blue'], payload: { n: 3 } });
    await eventually(() => delivered('all').length === 3, 10_000, 'three deliveries to the catch-all');
    await eventually(() => delivered('only-a').length === 1 && delivered('only-ch').length === 1, 10_000, 'filtered deliveries');
    expect(JSON.parse(delivered('only-a')[0]!.body)).toEqual({ n: 2 });
    expect(JSON.parse(delivered('only-ch')[0]!.body)).toEqual({ n: 3 });
  });

  test('stats count deliveries by outcome', async () => {
    await s.api('POST', '/app', { name: 'Stats', uid: 'stats' });
    const ep = await s.api('POST', '/app/stats/endpoint', { url: hook('stats') });
    const statsPath = `/app/stats/endpoint/${ep.body.id}/stats`;
    expect((await s.api('GET', statsPath)).body).toEqual({ success: 0, pending: 0, fail: 0, sending: 0, canceled: 0 });
    for (let i = 0; i < 3; i++) await s.api('POST', '/app/stats/msg', { eventType: 's.t', payload: { i } });
    for (let i = 0; i < 2; i++) await s.api('POST', '/app/stats/msg', { eventType: 's.t', payload: { i, fail: true } });
    // The retry schedule of the tests is short: failures are final within a second or two.
    const final = await eventually(async () => {
      const r = await s.api('GET', statsPath);
      return r.body.success === 3 && r.body.fail === 2 ? r.body : null;
    }, 15_000, 'final stats');
    expect(final).toEqual({ success: 3, pending: 0, fail: 2, sending: 0, canceled: 0 });
    // Each failing message was tried three times (first try and two retries).
    expect(delivered('stats').filter((r) => JSON.parse(r.body).fail).length).toBe(6);
  });
});
