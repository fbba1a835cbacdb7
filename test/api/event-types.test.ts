import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s.close();
});

const names = async (query = '') => (await s.api('GET', `/event-type?limit=250${query}`)).body.data.map((e: any) => e.name) as string[];

describe('create and read', () => {
  test('POST creates an event type with 201', async () => {
    const r = await s.api('POST', '/event-type', { name: 'invoice.paid', description: 'An invoice was paid' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'invoice.paid', description: 'An invoice was paid', archived: false, deprecated: false, featureFlag: null });
    expect(Date.parse(r.body.createdAt)).not.toBeNaN();
  });

  test('GET returns it; an unknown name is 404', async () => {
    await s.api('POST', '/event-type', { name: 'user.created', description: 'A user signed up', schemas: { '1': { type: 'object', examples: [{ id: 1 }] } } });
    const r = await s.api('GET', '/event-type/user.created');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: 'user.created', description: 'A user signed up', schemas: { '1': { type: 'object' } } });
    const missing = await s.api('GET', '/event-type/no.such.type');
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('not_found');
  });

  test('a duplicate name is 409', async () => {
    expect((await s.api('POST', '/event-type', { name: 'dup.type', description: 'first' })).status).toBe(201);
    const r = await s.api('POST', '/event-type', { name: 'dup.type', description: 'second' });
    expect(r.status).toBe(409);
    expect(typeof r.body.code).toBe('string');
    expect((await s.api('GET', '/event-type/dup.type')).body.description).toBe('first');
  });

  test('list is sorted by name and includes schemas only with with_content=true', async () => {
    await s.api('POST', '/event-type', { name: 'aaa.first', description: 'x', schemas: { '1': { type: 'object' } } });
    const plain = await s.api('GET', '/event-type?limit=250');
    expect(plain.status).toBe(200);
    const listed: string[] = plain.body.data.map((e: any) => e.name);
    expect(listed).toContain('aaa.first');
    expect(listed).toEqual([...listed].sort());
    expect(plain.body.data.find((e: any) => e.name === 'aaa.first').schemas).toBeUndefined();
    const full = await s.api('GET', '/event-type?limit=250&with_content=true');
    expect(full.body.data.find((e: any) => e.name === 'aaa.first').schemas).toEqual({ '1': { type: 'object' } });
  });

  test('a name with characters outside [a-zA-Z0-9-_.] is 422', async () => {
    const r = await s.api('POST', '/event-type', { name: 'bad name!', description: 'x' });
    expect(r.status).toBe(422);
    expect(r.body.detail[0].loc).toEqual(['body', 'name']);
  });
});

describe('update', () => {
  test('PUT creates (201) then updates (200)', async () => {
    const c = await s.api('PUT', '/event-type/put.type', { description: 'v1' });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ name: 'put.type', description: 'v1', deprecated: false });
    const u = await s.api('PUT', '/event-type/put.type', { description: 'v2', deprecated: true });
    expect(u.status).toBe(200);
    expect(u.body).toMatchObject({ name: 'put.type', description: 'v2', deprecated: true });
    expect(u.body.createdAt).toBe(c.body.createdAt);
    expect((await s.api('GET', '/event-type/put.type')).body.description).toBe('v2');
  });

  test('PATCH changes only the given fields', async () => {
    await s.api('POST', '/event-type', { name: 'patch.type', description: 'keep me', featureFlag: 'beta' });
    const r = await s.api('PATCH', '/event-type/patch.type', { deprecated: true });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ description: 'keep me', featureFlag: 'beta', deprecated: true });
    expect((await s.api('PATCH', '/event-type/not.there', { deprecated: true })).status).toBe(404);
  });
});

describe('archive and expunge', () => {
  test('DELETE archives: still readable, hidden from the list unless include_archived', async () => {
    await s.api('POST', '/event-type', { name: 'old.type', description: 'going away' });
    expect(await names()).toContain('old.type');
    const d = await s.api('DELETE', '/event-type/old.type');
    expect(d.status).toBe(204);
    const got = await s.api('GET', '/event-type/old.type');
    expect(got.status).toBe(200);
    expect(got.body.archived).toBe(true);
    expect(await names()).not.toContain('old.type');
    expect(await names('&include_archived=true')).toContain('old.type');
  });

  test('POST of an archived name unarchives it', async () => {
    await s.api('POST', '/event-type', { name: 'back.again', description: 'v1' });
    await s.api('DELETE', '/event-type/back.again');
    const r = await s.api('POST', '/event-type', { name: 'back.again', description: 'v2' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ archived: false, description: 'v2' });
    expect(await names()).toContain('back.again');
  });

  test('DELETE with expunge=true removes it entirely', async () => {
    await s.api('POST', '/event-type', { name: 'gone.type', description: 'x' });
    expect((await s.api('DELETE', '/event-type/gone.type?expunge=true')).status).toBe(204);
    expect((await s.api('GET', '/event-type/gone.type')).status).toBe(404);
    expect(await names('&include_archived=true')).not.toContain('gone.type');
    expect((await s.api('DELETE', '/event-type/gone.type')).status).toBe(404);
  });
});

test('a message may carry an event type that is not registered', async () => {
  await s.api('POST', '/app', { name: 'Free types', uid: 'free-types' });
  const r = await s.api('POST', '/app/free-types/msg', { eventType: 'never.registered', payload: { a: 1 } });
  expect(r.status).toBe(202);
  expect(r.body.eventType).toBe('never.registered');
  expect((await s.api('GET', '/event-type/never.registered')).status).toBe(404);
});
