import { afterAll, beforeAll, expect, test } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
let doc: any;
beforeAll(async () => {
  s = await startServer();
  const r = await fetch(`${s.url}/api/v1/openapi.json`); // no token: the document is public
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/application\/json/);
  doc = await r.json();
});
afterAll(async () => {
  await s.close();
});

test('is an OpenAPI 3 document', () => {
  expect(doc.openapi).toMatch(/^3\./);
  expect(typeof doc.info.title).toBe('string');
  expect(typeof doc.info.version).toBe('string');
  expect(doc.components.securitySchemes).toBeTruthy();
});

test.each([
  ['/api/v1/app', ['get', 'post']],
  ['/api/v1/app/{app_id}', ['get', 'put', 'patch', 'delete']],
  ['/api/v1/event-type', ['get', 'post']],
  ['/api/v1/event-type/{event_type_name}', ['get', 'put', 'patch', 'delete']],
  ['/api/v1/app/{app_id}/endpoint', ['get', 'post']],
  ['/api/v1/app/{app_id}/endpoint/{endpoint_id}', ['get', 'put', 'patch', 'delete']],
  ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret', ['get']],
  ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate', ['post']],
  ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers', ['get', 'put', 'patch']],
  ['/api/v1/app/{app_id}/msg', ['get', 'post']],
  ['/api/v1/app/{app_id}/msg/{msg_id}', ['get']],
  ['/api/v1/app/{app_id}/attempt/msg/{msg_id}', ['get']],
  ['/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend', ['post']],
  ['/api/v1/health', ['get']],
])('lists %s', (path, methods) => {
  expect(Object.keys(doc.paths)).toContain(path);
  for (const m of methods) expect(doc.paths[path][m], `${m} ${path}`).toBeTruthy();
});

test('documents the message create status and request body', () => {
  const op = doc.paths['/api/v1/app/{app_id}/msg'].post;
  expect(Object.keys(op.responses)).toContain('202');
  const body = op.requestBody.content['application/json'].schema;
  expect(body.required).toEqual(expect.arrayContaining(['eventType', 'payload']));
});

test('does not list itself', () => {
  expect(Object.keys(doc.paths)).not.toContain('/api/v1/openapi.json');
});

test('is the same with a token', async () => {
  const r = await s.api('GET', '/openapi.json');
  expect(r.status).toBe(200);
  expect(r.body).toEqual(doc);
});
