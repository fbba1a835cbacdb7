import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startReceiver } from '../helpers/receiver.js';
import { startServer, TEST_TOKEN, type TestServer } from '../helpers/server.js';

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
  expect((await s.api('POST', '/app', { name: 'Messages', uid: 'msgs' })).status).toBe(201);
});
afterAll(async () => {
  await s.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fresh application per test keeps list assertions exact. */
async function freshApp(uid: string): Promise<string> {
  const r = await s.api('POST', '/app', { name: uid, uid });
  expect(r.status).toBe(201);
  return uid;
}

describe('create and read', () => {
  test('POST is 202 with the MessageOut', async () => {
    const r = await s.api('POST', '/app/msgs/msg', { eventType: 'order.created', payload: { id: 7, items: ['a'] }, channels: ['eu'] });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ eventType: 'order.created', eventId: null, channels: ['eu'], payload: { id: 7, items: ['a'] } });
    expect(r.body.id).toMatch(/^msg_/);
    expect(Math.abs(Date.parse(r.body.timestamp) - Date.now())).toBeLessThan(60_000);
  });

  test('GET by id and by eventId', async () => {
    const r = await s.api('POST', '/app/msgs/msg', { eventType: 'order.paid', eventId: 'evt-123', payload: { paid: true } });
    expect(r.status).toBe(202);
    const byId = await s.api('GET', `/app/msgs/msg/${r.body.id}`);
    const byEvent = await s.api('GET', '/app/msgs/msg/evt-123');
    expect(byId.status).toBe(200);
    expect(byId.body).toEqual(r.body);
    expect(byEvent.body).toEqual(r.body);
    expect((await s.api('GET', '/app/msgs/msg/msg_unknown')).status).toBe(404);
  });

  test('a message of one application is not visible through another', async () => {
    await freshApp('msgs-other');
    const r = await s.api('POST', '/app/msgs/msg', { eventType: 'x.y', eventId: 'only-here', payload: {} });
    expect((await s.api('GET', `/app/msgs-other/msg/${r.body.id}`)).status).toBe(404);
    expect((await s.api('GET', '/app/msgs-other/msg/only-here')).status).toBe(404);
  });

  test('a duplicate eventId in one application is 409', async () => {
    expect((await s.api('POST', '/app/msgs/msg', { eventType: 'x.y', eventId: 'dup-evt', payload: { n: 1 } })).status).toBe(202);
    const r = await s.api('POST', '/app/msgs/msg', { eventType: 'x.y', eventId: 'dup-evt', payload: { n: 2 } });
    expect(r.status).toBe(409);
    expect(typeof r.body.code).toBe('string');
    expect((await s.api('GET', '/app/msgs/msg/dup-evt')).body.payload).toEqual({ n: 1 });
  });

  test('an unknown application is 404 without `application`', async () => {
    const r = await s.api('POST', '/app/not-yet-there/msg', { eventType: 'x.y', payload: {} });
    expect(r.status).toBe(404);
    expect(r.body.code).toBe('not_found');
    expect((await s.api('GET', '/app/not-yet-there')).status).toBe(404);
  });

  test('`application` creates the application named by the path uid on the fly', async () => {
    const r = await s.api('POST', '/app/made-by-msg/msg', { eventType: 'x.y', payload: { hi: 1 }, application: { name: 'Made by a message', metadata: { via: 'msg' } } });
    expect(r.status).toBe(202);
    const app = await s.api('GET', '/app/made-by-msg');
    expect(app.status).toBe(200);
    expect(app.body).toMatchObject({ uid: 'made-by-msg', name: 'Made by a message', metadata: { via: 'msg' } });
    expect((await s.api('GET', `/app/made-by-msg/msg/${r.body.id}`)).body.payload).toEqual({ hi: 1 });
    // A second message with `application` goes to the same application; the argument is ignored.
    const again = await s.api('POST', '/app/made-by-msg/msg', { eventType: 'x.y', payload: {}, application: { name: 'Ignored' } });
    expect(again.status).toBe(202);
    expect((await s.api('GET', '/app/made-by-msg')).body).toEqual(app.body);
    expect((await s.api('GET', '/app/made-by-msg/msg')).body.data).toHaveLength(2);
  });

  test('concurrent messages creating one application make one application holding all of them', async () => {
    const sent = await Promise.all(
      Array.from({ length: 10 }, (_, i) => s.api('POST', '/app/made-together/msg', { eventType: 'x.y', payload: { i }, application: { name: 'Together' } })),
    );
    expect(sent.map((r) => r.status)).toEqual(Array(10).fill(202));
    const apps = (await s.api('GET', '/app?limit=250')).body.data.filter((a: any) => a.uid === 'made-together');
    expect(apps).toHaveLength(1);
    const listed = (await s.api('GET', '/app/made-together/msg')).body.data.map((m: any) => m.id);
    expect(new Set(listed)).toEqual(new Set(sent.map((r) => r.body.id)));
  });
});

describe('idempotency-key', () => {
  test('a replay returns the identical status and body and creates no second message', async () => {
    const app = await freshApp('idem');
    const headers = { 'idempotency-key': 'key-1' };
    const first = await s.api('POST', `/app/${app}/msg`, { eventType: 'i.k', payload: { n: 1 } }, headers);
    expect(first.status).toBe(202);
    const raw = await fetch(`${s.url}/api/v1/app/${app}/msg`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ eventType: 'i.k', payload: { n: 1 } }),
    });
    expect(raw.status).toBe(202);
    expect(await raw.text()).toBe(JSON.stringify(first.body));
    const list = await s.api('GET', `/app/${app}/msg`);
    expect(list.body.data.map((m: any) => m.id)).toEqual([first.body.id]);
  });

  test('a replay with a different body still returns the first response', async () => {
    const app = await freshApp('idem-body');
    const headers = { 'idempotency-key': 'key-2' };
    const first = await s.api('POST', `/app/${app}/msg`, { eventType: 'i.k', payload: { n: 1 } }, headers);
    const second = await s.api('POST', `/app/${app}/msg`, { eventType: 'other', payload: { n: 2 } }, headers);
    expect(second.status).toBe(first.status);
    expect(second.body).toEqual(first.body);
    expect((await s.api('GET', `/app/${app}/msg`)).body.data).toHaveLength(1);
  });

  test('concurrent requests with one key create one message', async () => {
    const app = await freshApp('idem-race');
    const headers = { 'idempotency-key': 'key-race' };
    const all = await Promise.all(Array.from({ length: 5 }, () => s.api('POST', `/app/${app}/msg`, { eventType: 'i.k', payload: {} }, headers)));
    expect(new Set(all.map((r) => r.status))).toEqual(new Set([202]));
    expect(new Set(all.map((r) => r.body.id)).size).toBe(1);
    expect((await s.api('GET', `/app/${app}/msg`)).body.data).toHaveLength(1);
  });

  test('different keys create different messages', async () => {
    const app = await freshApp('idem-two');
    const a = await s.api('POST', `/app/${app}/msg`, { eventType: 'i.k', payload: {} }, { 'idempotency-key': 'k-a' });
    const b = await s.api('POST', `/app/${app}/msg`, { eventType: 'i.k', payload: {} }, { 'idempotency-key': 'k-b' });
    expect(a.body.id).not.toBe(b.body.id);
    expect((await s.api('GET', `/app/${app}/msg`)).body.data).toHaveLength(2);
  });

  test('application creation is idempotent too', async () => {
    const headers = { 'idempotency-key': 'app-key' };
    const first = await s.api('POST', '/app', { name: 'Idem app' }, headers);
    const second = await s.api('POST', '/app', { name: 'Idem app' }, headers);
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body).toEqual(first.body);
    const all = await s.api('GET', '/app?limit=250');
    expect(all.body.data.filter((a: any) => a.name === 'Idem app')).toHaveLength(1);
  });
});

describe('content', () => {
  test('with_content=false leaves the payload out of create, get and list', async () => {
    const app = await freshApp('no-content');
    const r = await s.api('POST', `/app/${app}/msg?with_content=false`, { eventType: 'c.t', payload: { secret: 'data' } });
    expect(r.status).toBe(202);
    expect(r.body.payload).toEqual({});
    expect((await s.api('GET', `/app/${app}/msg/${r.body.id}?with_content=false`)).body.payload).toEqual({});
    expect((await s.api('GET', `/app/${app}/msg?with_content=false`)).body.data[0].payload).toEqual({});
    // The payload was stored all the same.
    expect((await s.api('GET', `/app/${app}/msg/${r.body.id}`)).body.payload).toEqual({ secret: 'data' });
  });

  test('DELETE …/content expunges the payload and keeps the message', async () => {
    const app = await freshApp('expunge');
    const r = await s.api('POST', `/app/${app}/msg`, { eventType: 'c.t', eventId: 'exp-1', payload: { secret: 'data' } });
    const d = await s.api('DELETE', `/app/${app}/msg/${r.body.id}/content`);
    expect(d.status).toBe(204);
    const got = await s.api('GET', `/app/${app}/msg/exp-1`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ id: r.body.id, eventType: 'c.t', eventId: 'exp-1' });
    expect(JSON.stringify(got.body.payload)).not.toContain('data');
    expect((await s.api('DELETE', `/app/${app}/msg/msg_nope/content`)).status).toBe(404);
  });

  test('a message whose content was expunged cannot be resent', async () => {
    const rx = await startReceiver();
    try {
      const app = await freshApp('expunge-resend');
      const ep = await s.api('POST', `/app/${app}/endpoint`, { url: `${rx.url}/hook` });
      const msg = await s.api('POST', `/app/${app}/msg`, { eventType: 'c.t', payload: { secret: 'data' } });
      await rx.waitFor(1);
      expect((await s.api('DELETE', `/app/${app}/msg/${msg.body.id}/content`)).status).toBe(204);
      const r = await s.api('POST', `/app/${app}/msg/${msg.body.id}/endpoint/${ep.body.id}/resend`);
      expect(r.status).toBe(400);
      expect(r.body).toEqual({ code: expect.any(String), detail: expect.any(String) });
      // A message sent afterwards arrives alone: the expunged one was not sent again.
      const later = await s.api('POST', `/app/${app}/msg`, { eventType: 'c.t', payload: { later: true } });
      const got = await rx.waitFor(2);
      expect(got.map((g) => g.headers['webhook-id'])).toEqual([msg.body.id, later.body.id]);
    } finally {
      await rx.close();
    }
  });
});

describe('list filters', () => {
  let app: string;
  const ids: Record<string, string> = {};
  const stamps: string[] = [];
  beforeAll(async () => {
    app = await freshApp('filters');
    const plan = [
      { key: 'a1', eventType: 'type.a', channels: ['red'] },
      { key: 'b1', eventType: 'type.b', channels: ['blue'] },
      { key: 'c1', eventType: 'type.c' },
      { key: 'a2', eventType: 'type.a', channels: ['blue', 'green'] },
      { key: 'b2', eventType: 'type.b' },
    ];
    for (const p of plan) {
      const r = await s.api('POST', `/app/${app}/msg`, { eventType: p.eventType, channels: p.channels, payload: { key: p.key } });
      expect(r.status).toBe(202);
      ids[p.key] = r.body.id;
      stamps.push(r.body.timestamp);
      await sleep(5); // distinct timestamps for before/after
    }
  });
  const list = async (query: string) => {
    const r = await s.api('GET', `/app/${app}/msg?${query}`);
    expect(r.status).toBe(200);
    return r.body.data.map((m: any) => m.payload.key) as string[];
  };

  test('no filter lists everything, newest first', async () => {
    expect(await list('')).toEqual(['b2', 'a2', 'c1', 'b1', 'a1']);
  });

  test('event_types, repeated or comma-separated', async () => {
    expect(await list('event_types=type.a')).toEqual(['a2', 'a1']);
    expect(await list('event_types=type.a&event_types=type.c')).toEqual(['a2', 'c1', 'a1']);
    expect(await list('event_types=type.b,type.c')).toEqual(['b2', 'c1', 'b1']);
    expect(await list('event_types=type.none')).toEqual([]);
  });

  test('channel', async () => {
    expect(await list('channel=blue')).toEqual(['a2', 'b1']);
    expect(await list('channel=red')).toEqual(['a1']);
    expect(await list('channel=purple')).toEqual([]);
  });

  test('before and after (exclusive)', async () => {
    const mid = stamps[2]!; // c1
    expect(await list(`before=${encodeURIComponent(mid)}`)).toEqual(['b1', 'a1']);
    expect(await list(`after=${encodeURIComponent(mid)}`)).toEqual(['b2', 'a2']);
    expect(await list(`after=${encodeURIComponent(stamps[4]!)}`)).toEqual([]);
  });

  test('filters combine', async () => {
    expect(await list('event_types=type.a&channel=blue')).toEqual(['a2']);
  });

  test('an invalid date is 422 on the query', async () => {
    const r = await s.api('GET', `/app/${app}/msg?before=yesterday`);
    expect(r.status).toBe(422);
    expect(r.body.detail[0].loc).toEqual(['query', 'before']);
  });

  test('list of an unknown application is 404', async () => {
    expect((await s.api('GET', '/app/nobody/msg')).status).toBe(404);
  });
});
