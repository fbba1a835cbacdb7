import { afterAll, beforeAll, expect, test } from 'vitest';
import { startReceiver, type Receiver } from './helpers/receiver.js';
import { startServer, type TestServer } from './helpers/server.js';

let s: TestServer;
let rx: Receiver;
beforeAll(async () => {
  s = await startServer();
  rx = await startReceiver();
});
afterAll(async () => {
  await s.close();
  await rx.close();
});

test('a message posted to an app reaches its endpoint', async () => {
  const app = await s.api('POST', '/app', { name: 'Smoke', uid: 'smoke' });
  expect(app.status).toBe(201);
  const ep = await s.api('POST', '/app/smoke/endpoint', { url: `${rx.url}/hook` });
  expect(ep.status).toBe(201);
  const msg = await s.api('POST', '/app/smoke/msg', { eventType: 'x.y', payload: { n: 1 } });
  expect(msg.status).toBe(202);
  const [got] = await rx.waitFor(1);
  expect(got!.headers['webhook-id']).toBe(msg.body.id);
  expect(JSON.parse(got!.body)).toEqual({ n: 1 });
});
