import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { Outbox } from '../../src/delivery/outbox.js';
import { newId } from '../../src/ids.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { Status, type AppRow, type EndpointRow, type NewMessage, type Store } from '../../src/store/types.js';
import { isDatabaseUnavailable } from '../../src/store/unavailable.js';
import { startReceiver } from '../helpers/receiver.js';
import { eventually, startServer } from '../helpers/server.js';
import { ENGINES, type Harness } from '../store/engines.js';
import { noticeIfSkipped } from './support.js';

/**
 * The store and process pieces of graceful shutdown and outages, on every
 * engine: releaseLeases, the dispatcher's stop within the grace period, the
 * outbox refusing what it could not commit, and what counts as "database
 * unavailable".
 */

noticeIfSkipped('scale/release');

const T0 = Date.now() - 3_600_000;
const ALL = () => 1000;

async function seed(store: Store, n: number): Promise<{ app: AppRow; ep: EndpointRow; msgIds: string[] }> {
  const app: AppRow = { id: newId('app', T0), uid: null, name: 'A', metadata: {}, throttleRate: null, createdAt: T0, updatedAt: T0 };
  await store.insertApp(app);
  const ep: EndpointRow = {
    id: newId('ep', T0), appId: app.id, uid: null, url: 'https://example.com/hook', description: '', disabled: false, eventTypes: null, channels: null,
    metadata: {}, throttleRate: null, headers: {}, secrets: [{ key: 'whsec_' + 'a'.repeat(32), expiresAt: null }], failingSince: null, createdAt: T0, updatedAt: T0,
  };
  await store.insertEndpoint(ep);
  const items: NewMessage[] = Array.from({ length: n }, () => ({
    message: { id: newId('msg', T0), appId: app.id, eventId: null, eventType: 'e', channels: null, payload: '{}', createdAt: T0 },
    endpointIds: [ep.id],
  }));
  expect(await store.insertMessages(items)).toEqual(items.map(() => null));
  return { app, ep, msgIds: items.map((i) => i.message.id) };
}

describe.each(ENGINES)('releaseLeases: $name', (engine) => {
  describe.skipIf(!engine.available)(engine.name, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await engine.create();
    });
    afterEach(async () => {
      await h?.cleanup();
    });

    test('hands back only the owner\'s leases, due now, no attempt counted; they are claimable at once', async () => {
      const { store } = h;
      const { ep } = await seed(store, 3);
      const now = Date.now();
      const mine = await store.claimDue('w1', now, 2, 60_000, ALL);
      const theirs = await store.claimDue('w2', now, 10, 60_000, ALL);
      expect(mine).toHaveLength(2);
      expect(theirs).toHaveLength(1);
      const all = [...mine, ...theirs].map((c) => c.delivery.id);

      expect(await store.releaseLeases('w3', all)).toBe(0);
      expect(await store.releaseLeases('w1', [])).toBe(0);
      expect(await store.releaseLeases('w1', all)).toBe(2);
      // Released once: a second call (or a late outcome) finds nothing held.
      expect(await store.releaseLeases('w1', all)).toBe(0);
      expect(await store.completeAttempts('w1', [])).toBe(0);
      for (const c of mine) {
        expect(await store.findDelivery(c.message.id, ep.id)).toMatchObject({ status: Status.pending, attempts: 0 });
      }
      expect(await store.findDelivery(theirs[0]!.message.id, ep.id)).toMatchObject({ status: Status.sending });
      const owners = await h.sql<{ lease_owner: string | null; lease_until: number | null }>(
        'SELECT lease_owner, lease_until FROM deliveries WHERE id = $1', [mine[0]!.delivery.id],
      );
      expect(owners[0]).toEqual({ lease_owner: null, lease_until: null });
      // Due now, with no lease to wait for: another worker claims them straight away.
      expect(await store.nextDueAt()).toBeLessThanOrEqual(Date.now());
      const again = await store.claimDue('w2', Date.now(), 10, 60_000, ALL);
      expect(again.map((c) => c.message.id).sort()).toEqual(mine.map((c) => c.message.id).sort());
    });

    if (engine.name === 'postgres') {
      test('wakes the other workers (NOTIFY)', async () => {
        const other = await h.open();
        let woken = 0;
        const stop = await other.watchWork!(() => woken++);
        await seed(h.store, 1);
        const claimed = await h.store.claimDue('w1', Date.now(), 10, 60_000, ALL);
        await eventually(() => woken > 0, 5000, 'the insert notification');
        const before = woken;
        expect(await h.store.releaseLeases('w1', claimed.map((c) => c.delivery.id))).toBe(1);
        await eventually(() => woken > before, 5000, 'a notification for the release');
        await stop();
      });
    }
  });
});

test('the dispatcher stops within its grace period, releasing what is still being sent (SQLite, in process)', async () => {
  const rx = await startReceiver((req) => (req.path === '/hang' ? { hang: true } : { status: 200, delayMs: 200 }));
  const s = await startServer({ shutdownGraceMs: 1500 });
  try {
    const app = await s.api('POST', '/app', { name: 'grace' });
    await s.api('POST', `/app/${app.body.id}/endpoint`, { url: `${rx.url}/hang` });
    await s.api('POST', `/app/${app.body.id}/endpoint`, { url: `${rx.url}/slow` });
    expect((await s.api('POST', `/app/${app.body.id}/msg`, { eventType: 'e', payload: {} })).status).toBe(202);
    await rx.waitFor(2);
    const store = s.hl.store;
    const t0 = Date.now();
    await s.hl.dispatcher!.stop();
    const took = Date.now() - t0;
    // Well before the hang would end (never) or the old fixed 10 s wait.
    expect(took).toBeLessThan(1500 + 5000);
    const rows = (store as SqliteStore).db
      .prepare('SELECT e.url, d.status, d.attempts FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id ORDER BY e.url')
      .all();
    // The slow one finished and was recorded; the hanging one is pending again, with no attempt counted.
    expect(rows).toEqual([
      { url: `${rx.url}/hang`, status: Status.pending, attempts: 0 },
      { url: `${rx.url}/slow`, status: Status.success, attempts: 1 },
    ]);
  } finally {
    await s.close();
    await rx.close();
  }
});

test('the outbox rejects every message of a batch whose commit failed: no 202 for them', async () => {
  const down = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  const store = { insertMessages: async () => Promise.reject(down) } as unknown as Store;
  const outbox = new Outbox(store, null, 60_000);
  const item = (i: number): NewMessage => ({
    message: { id: `msg_${i}`, appId: 'app_1', eventId: null, eventType: 'e', channels: null, payload: '{}', createdAt: 0 },
    endpointIds: [],
  });
  const results = await Promise.allSettled([outbox.submit(item(1)), outbox.submit(item(2)), outbox.submit(item(3))]);
  expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
  expect(results.every((r) => r.status === 'rejected' && r.reason === down)).toBe(true);
});

test('what counts as the database being unavailable', () => {
  const yes = [
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
    Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
    Object.assign(new Error('sorry, too many clients already'), { code: '53300' }),
    Object.assign(new Error('connection failure'), { code: '08006' }),
    new Error('Connection terminated unexpectedly'),
    new Error('timeout exceeded when trying to connect'),
    new Error('Client has encountered a connection error and is not queryable'),
    new Error('wrapped', { cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) }),
    new AggregateError([Object.assign(new Error('a'), { code: 'ECONNREFUSED' }), Object.assign(new Error('b'), { code: 'ECONNREFUSED' })]),
  ];
  const no = [
    new Error('boom'),
    Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' }),
    Object.assign(new Error('syntax error'), { code: '42601' }),
    Object.assign(new Error('SQLITE_CONSTRAINT'), { code: 'SQLITE_CONSTRAINT_UNIQUE' }),
    null,
    'text',
  ];
  for (const e of yes) expect(isDatabaseUnavailable(e), String(e)).toBe(true);
  for (const e of no) expect(isDatabaseUnavailable(e), String(e)).toBe(false);
});
