import { afterAll, beforeAll, expect, test } from 'vitest';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { eventually, startServer, type TestServer } from '../helpers/server.js';
import { at, attemptsOf, destination, expectAllSigned, header, makeEndpoint, send, settled, sleep, Status } from './support.js';

let s: TestServer;
let rx: Receiver;
/** Paths that answer 500 until removed from this set. */
const failing = new Set<string>(['/resend-down', '/recover']);
beforeAll(async () => {
  s = await startServer();
  rx = await startReceiver((req) => {
    // In /recover, a message whose payload says so always succeeds.
    if (req.path === '/recover' && (JSON.parse(req.body) as { ok?: boolean }).ok) return { status: 200 };
    return failing.has(req.path) ? { status: 500, body: 'down' } : { status: 200, body: 'ok' };
  });
});
afterAll(async () => {
  await rx.close();
  await s.close();
});

test('resend of a delivered message makes one more attempt, with triggerType 1', async () => {
  const t = await makeEndpoint(s.api, 'resend', { url: `${rx.url}/resend-ok` });
  const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { resend: 1 } });
  await settled(s.api, t.app, msgId, t.ep, Status.success);
  const r = await s.api('POST', `/app/${t.app}/msg/${msgId}/endpoint/${t.ep}/resend`);
  expect(r.status).toBe(202);
  const attempts = await eventually(async () => {
    const a = await attemptsOf(s.api, t.app, msgId, t.ep);
    return a.length === 2 ? a : null;
  }, 10_000, 'the manual attempt');
  expect(attempts!.map((a) => [a.triggerType, a.status, a.responseStatusCode])).toEqual([
    [0, Status.success, 200],
    [1, Status.success, 200],
  ]);
  const reqs = at(rx.requests, '/resend-ok');
  expect(reqs.map((q) => header(q, 'webhook-id'))).toEqual([msgId, msgId]);
  expect(reqs[1]!.body).toBe(reqs[0]!.body);
  expectAllSigned(t.secret, reqs);
  expect(await destination(s.api, t.app, msgId, t.ep)).toEqual({ status: Status.success, nextAttempt: null });
});

test('resend of a failed message: a failing manual attempt is not retried; a succeeding one ends the delivery in success', async () => {
  const t = await makeEndpoint(s.api, 'resend', { url: `${rx.url}/resend-down` });
  const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { resend: 2 } });
  expect(await settled(s.api, t.app, msgId, t.ep, Status.fail)).toHaveLength(3);

  expect((await s.api('POST', `/app/${t.app}/msg/${msgId}/endpoint/${t.ep}/resend`)).status).toBe(202);
  await eventually(async () => (await attemptsOf(s.api, t.app, msgId, t.ep)).length === 4, 10_000, 'the manual attempt');
  const afterFail = await settled(s.api, t.app, msgId, t.ep, Status.fail);
  expect(afterFail.map((a) => a.triggerType)).toEqual([0, 0, 0, 1]);
  await sleep(1000);
  expect(at(rx.requests, '/resend-down')).toHaveLength(4);

  failing.delete('/resend-down');
  expect((await s.api('POST', `/app/${t.app}/msg/${msgId}/endpoint/${t.ep}/resend`)).status).toBe(202);
  const done = await settled(s.api, t.app, msgId, t.ep, Status.success);
  expect(done.map((a) => [a.triggerType, a.responseStatusCode])).toEqual([[0, 500], [0, 500], [0, 500], [1, 500], [1, 200]]);
  expectAllSigned(t.secret, at(rx.requests, '/resend-down'));
});

test('resend of an unknown message or endpoint is a 404', async () => {
  const t = await makeEndpoint(s.api, 'resend', { url: `${rx.url}/resend-404` });
  const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: {} });
  expect((await s.api('POST', `/app/${t.app}/msg/msg_nope/endpoint/${t.ep}/resend`)).status).toBe(404);
  expect((await s.api('POST', `/app/${t.app}/msg/${msgId}/endpoint/ep_nope/resend`)).status).toBe(404);
});

test('recover resends the failed messages created since the given time, and only those', async () => {
  const t = await makeEndpoint(s.api, 'recover', { url: `${rx.url}/recover` });
  const old = await send(s.api, t.app, { eventType: 'a.b', payload: { n: 'old' } });
  await sleep(30);
  const since = new Date();
  await sleep(30);
  const f1 = await send(s.api, t.app, { eventType: 'a.b', payload: { n: 'f1' } });
  const f2 = await send(s.api, t.app, { eventType: 'a.b', payload: { n: 'f2' } });
  const ok = await send(s.api, t.app, { eventType: 'a.b', payload: { n: 'ok', ok: true } });
  for (const m of [old, f1, f2]) await settled(s.api, t.app, m, t.ep, Status.fail);
  await settled(s.api, t.app, ok, t.ep, Status.success);
  const countOf = (id: string) => at(rx.requests, '/recover').filter((q) => header(q, 'webhook-id') === id).length;
  expect([old, f1, f2, ok].map(countOf)).toEqual([3, 3, 3, 1]);

  failing.delete('/recover');
  const r = await s.api('POST', `/app/${t.app}/endpoint/${t.ep}/recover`, { since: since.toISOString() });
  expect(r.status).toBe(202);
  for (const m of [f1, f2]) await settled(s.api, t.app, m, t.ep, Status.success);
  await sleep(500);
  expect([old, f1, f2, ok].map(countOf)).toEqual([3, 4, 4, 1]);
  expect(await destination(s.api, t.app, old, t.ep)).toMatchObject({ status: Status.fail });
  const recovered = await attemptsOf(s.api, t.app, f1, t.ep);
  expect(recovered.map((a) => a.responseStatusCode)).toEqual([500, 500, 500, 200]);
  expectAllSigned(t.secret, at(rx.requests, '/recover'));
});
