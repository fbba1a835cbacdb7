import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { eventually, startServer, type TestServer } from '../helpers/server.js';
import { at, attemptsOf, destination, expectAllSigned, header, makeEndpoint, send, settled, sleep, Status } from './support.js';

let s: TestServer;
let rx: Receiver;
beforeAll(async () => {
  s = await startServer();
  rx = await startReceiver((req) => (req.path === '/failing' ? { status: 500 } : { status: 200, body: 'ok' }));
});
afterAll(async () => {
  await rx.close();
  await s.close();
});

const idsAt = (path: string) => at(rx.requests, path).map((r) => header(r, 'webhook-id')).sort();

test('event types, channels and the disabled flag decide which endpoints get a message', async () => {
  const byType = await makeEndpoint(s.api, 'filter', { url: `${rx.url}/by-type`, eventTypes: ['user.created', 'user.updated'] });
  const byChannel = await makeEndpoint(s.api, 'filter', { url: `${rx.url}/by-channel`, channels: ['project_1', 'project_2'] });
  const both = await makeEndpoint(s.api, 'filter', { url: `${rx.url}/both`, eventTypes: ['user.created'], channels: ['project_1'] });
  const all = await makeEndpoint(s.api, 'filter', { url: `${rx.url}/all` });
  const disabled = await makeEndpoint(s.api, 'filter', { url: `${rx.url}/disabled`, disabled: true });
  const app = all.app;

  const m1 = await send(s.api, app, { eventType: 'user.created', payload: { n: 1 } });
  const m2 = await send(s.api, app, { eventType: 'user.deleted', payload: { n: 2 }, channels: ['project_1'] });
  const m3 = await send(s.api, app, { eventType: 'order.paid', payload: { n: 3 }, channels: ['project_9'] });
  const m4 = await send(s.api, app, { eventType: 'user.created', payload: { n: 4 }, channels: ['project_9', 'project_2'] });
  const m5 = await send(s.api, app, { eventType: 'user.created', payload: { n: 5 }, channels: ['project_1'] });
  const m6 = await send(s.api, app, { eventType: 'user.updated', payload: { n: 6 } });

  const expected: Record<string, string[]> = {
    '/by-type': [m1, m4, m5, m6],
    '/by-channel': [m2, m4, m5],
    '/both': [m5],
    '/all': [m1, m2, m3, m4, m5, m6],
  };
  await eventually(() => Object.entries(expected).every(([path, ids]) => idsAt(path).length >= ids.length), 20_000, 'every expected delivery');
  // Let anything wrongly queued show up before judging.
  await s.hl.dispatcher!.whenIdle();
  for (const [path, ids] of Object.entries(expected)) expect(idsAt(path), path).toEqual(ids.slice().sort());
  expect(idsAt('/disabled')).toEqual([]);

  // The API's view agrees: a delivery row exists only for matching, enabled endpoints.
  const eps = { byType, byChannel, both, all, disabled };
  const want: Record<string, string[]> = { byType: expected['/by-type']!, byChannel: expected['/by-channel']!, both: expected['/both']!, all: expected['/all']!, disabled: [] };
  for (const [name, t] of Object.entries(eps)) {
    const r = await s.api('GET', `/app/${app}/endpoint/${t.ep}/msg?limit=250`);
    expect(r.status).toBe(200);
    expect((r.body.data as { id: string; status: number }[]).map((m) => m.id).sort(), name).toEqual(want[name]!.slice().sort());
    for (const m of r.body.data as { status: number }[]) expect(m.status).toBe(Status.success);
  }
  for (const [path, t] of [['/by-type', byType], ['/by-channel', byChannel], ['/both', both], ['/all', all]] as const) expectAllSigned(t.secret, at(rx.requests, path));
});

describe('disabling an endpoint with a retry pending', () => {
  let slow: TestServer;
  beforeAll(async () => {
    // Retries at least 0.8 s apart, so the PATCH below surely lands before the first retry.
    slow = await startServer({ retrySchedule: [1, 1] });
  });
  afterAll(async () => {
    await slow.close();
  });

  test('the pending retry ends failed without another request', async () => {
    const t = await makeEndpoint(slow.api, 'filter-disable', { url: `${rx.url}/failing` });
    const msgId = await send(slow.api, t.app, { eventType: 'a.b', payload: { x: 1 } });
    await eventually(() => at(rx.requests, '/failing').length >= 1, 10_000, 'first attempt');
    await eventually(async () => (await attemptsOf(slow.api, t.app, msgId)).length === 1, 10_000, 'first attempt recorded');
    expect(await destination(slow.api, t.app, msgId, t.ep)).toMatchObject({ status: Status.pending });
    const patch = await slow.api('PATCH', `/app/${t.app}/endpoint/${t.ep}`, { disabled: true });
    expect(patch.status).toBe(200);
    const attempts = await settled(slow.api, t.app, msgId, t.ep, Status.fail);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]!.responseStatusCode).toBe(500);
    await sleep(1000);
    expect(at(rx.requests, '/failing')).toHaveLength(1);
    expectAllSigned(t.secret, at(rx.requests, '/failing'));

    // Messages posted while it is disabled get no delivery at all.
    const later = await send(slow.api, t.app, { eventType: 'a.b', payload: { x: 2 } });
    expect(await destination(slow.api, t.app, later, t.ep)).toBeNull();
  });
});
