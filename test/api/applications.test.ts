import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s.close();
});

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

describe('create and read', () => {
  test('POST /app creates with 201 and returns the full ApplicationOut', async () => {
    const r = await s.api('POST', '/app', { name: 'Acme', uid: 'acme', metadata: { plan: 'gold' } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ uid: 'acme', name: 'Acme', metadata: { plan: 'gold' } });
    expect(r.body.id).toMatch(/^app_/);
    expect(r.body.createdAt).toMatch(ISO);
    expect(r.body.updatedAt).toMatch(ISO);
  });

  test('an application without uid gets uid null and metadata {}', async () => {
    const r = await s.api('POST', '/app', { name: 'No uid' });
    expect(r.status).toBe(201);
    expect(r.body.uid).toBeNull();
    expect(r.body.metadata).toEqual({});
  });

  test('GET by id and by uid return the same application', async () => {
    const created = await s.api('POST', '/app', { name: 'Both ways', uid: 'both-ways' });
    const byId = await s.api('GET', `/app/${created.body.id}`);
    const byUid = await s.api('GET', '/app/both-ways');
    expect(byId.status).toBe(200);
    expect(byUid.status).toBe(200);
    expect(byId.body).toEqual(created.body);
    expect(byUid.body).toEqual(created.body);
  });

  test('GET of an unknown application is 404 not_found', async () => {
    const r = await s.api('GET', '/app/does-not-exist');
    expect(r.status).toBe(404);
    expect(r.body.code).toBe('not_found');
  });

  test('list contains created applications in the list envelope', async () => {
    const a = await s.api('POST', '/app', { name: 'Listed', uid: 'listed' });
    const r = await s.api('GET', '/app?limit=250');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ done: true });
    expect(Array.isArray(r.body.data)).toBe(true);
    expect(r.body.data.map((x: any) => x.id)).toContain(a.body.id);
    expect('iterator' in r.body && 'prevIterator' in r.body).toBe(true);
  });

  test('a duplicate uid is 409 with {code, detail}', async () => {
    expect((await s.api('POST', '/app', { name: 'One', uid: 'dup-app' })).status).toBe(201);
    const r = await s.api('POST', '/app', { name: 'Two', uid: 'dup-app' });
    expect(r.status).toBe(409);
    expect(typeof r.body.code).toBe('string');
    expect(typeof r.body.detail).toBe('string');
    expect((await s.api('GET', '/app/dup-app')).body.name).toBe('One');
  });

  test('get_if_exists returns the existing application with 200, or creates one with 201', async () => {
    const first = await s.api('POST', '/app', { name: 'Maybe', uid: 'maybe' });
    const again = await s.api('POST', '/app?get_if_exists=true', { name: 'Other name', uid: 'maybe' });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    const fresh = await s.api('POST', '/app?get_if_exists=true', { name: 'Fresh', uid: 'maybe-fresh' });
    expect(fresh.status).toBe(201);
    expect(fresh.body.name).toBe('Fresh');
  });
});

describe('update', () => {
  test('PUT on an unknown uid creates (201) and on an existing one updates (200)', async () => {
    const created = await s.api('PUT', '/app/put-made', { name: 'Put v1', metadata: { a: '1' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ uid: 'put-made', name: 'Put v1', metadata: { a: '1' } });

    const updated = await s.api('PUT', '/app/put-made', { name: 'Put v2' });
    expect(updated.status).toBe(200);
    expect(updated.body.id).toBe(created.body.id);
    expect(updated.body.name).toBe('Put v2');
    // PUT replaces: metadata not given is reset.
    expect(updated.body.metadata).toEqual({});
    expect((await s.api('GET', `/app/${created.body.id}`)).body.name).toBe('Put v2');
  });

  test('PATCH changes only the given fields', async () => {
    const a = await s.api('POST', '/app', { name: 'Patch me', uid: 'patch-me', metadata: { keep: 'yes' } });
    const r = await s.api('PATCH', '/app/patch-me', { name: 'Patched' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: a.body.id, uid: 'patch-me', name: 'Patched', metadata: { keep: 'yes' } });
    expect(Date.parse(r.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(a.body.updatedAt));
    expect((await s.api('GET', '/app/patch-me')).body.name).toBe('Patched');
  });

  test('PATCH to a uid another application holds is 409', async () => {
    await s.api('POST', '/app', { name: 'Holder', uid: 'uid-holder' });
    await s.api('POST', '/app', { name: 'Mover', uid: 'uid-mover' });
    const r = await s.api('PATCH', '/app/uid-mover', { uid: 'uid-holder' });
    expect(r.status).toBe(409);
  });

  test('PATCH of an unknown application is 404', async () => {
    expect((await s.api('PATCH', '/app/never-made', { name: 'x' })).status).toBe(404);
  });
});

describe('delete', () => {
  test('DELETE is 204, then GET and DELETE are 404', async () => {
    const a = await s.api('POST', '/app', { name: 'Doomed', uid: 'doomed' });
    const d = await s.api('DELETE', '/app/doomed');
    expect(d.status).toBe(204);
    expect(d.body).toBeNull();
    expect((await s.api('GET', `/app/${a.body.id}`)).status).toBe(404);
    expect((await s.api('GET', '/app/doomed')).status).toBe(404);
    expect((await s.api('DELETE', '/app/doomed')).status).toBe(404);
  });

  test('deleting an application removes its endpoints and messages, and frees its uid', async () => {
    await s.api('POST', '/app', { name: 'Cascade', uid: 'cascade' });
    const ep = await s.api('POST', '/app/cascade/endpoint', { url: 'http://127.0.0.1:9/hook' });
    expect(ep.status).toBe(201);
    const msg = await s.api('POST', '/app/cascade/msg', { eventType: 'x.y', payload: {} });
    expect(msg.status).toBe(202);
    expect((await s.api('DELETE', '/app/cascade')).status).toBe(204);

    const again = await s.api('POST', '/app', { name: 'Cascade 2', uid: 'cascade' });
    expect(again.status).toBe(201);
    expect((await s.api('GET', `/app/cascade/endpoint/${ep.body.id}`)).status).toBe(404);
    expect((await s.api('GET', `/app/cascade/msg/${msg.body.id}`)).status).toBe(404);
    expect((await s.api('GET', '/app/cascade/msg')).body.data).toEqual([]);
  });
});
