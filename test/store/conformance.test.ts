import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { newId } from '../../src/ids.js';
import {
  Status, Trigger, UniqueViolation,
  type AppRow, type AttemptResult, type ClaimedDelivery, type EndpointRow, type EventTypeRow, type MessageRow, type PageQuery, type Store,
} from '../../src/store/types.js';
import { SecretBox } from '../../src/auth/secret-box.js';
import { ENGINES, PG_URL, type Harness } from './engines.js';

/**
 * One suite of Store behaviours, run against every engine. Each test gets a
 * database of its own (a SQLite file, a PostgreSQL schema).
 */

if (!PG_URL) console.warn('PostgreSQL conformance skipped: set HOOKLANE_TEST_DATABASE_URL');

const HOUR = 3_600_000;
/** Records are created an hour ago, so they are due at any "now" of a test. */
const T0 = Date.now() - HOUR;
const ALL = () => 1000;
const page = (limit: number, iterator: string | null = null, order: 'asc' | 'desc' = 'asc'): PageQuery => ({ limit, iterator, order });

function app(over: Partial<AppRow> = {}): AppRow {
  return { id: newId('app', T0), uid: null, name: 'App', metadata: {}, throttleRate: null, createdAt: T0, updatedAt: T0, ...over };
}
function endpoint(appId: string, over: Partial<EndpointRow> = {}): EndpointRow {
  return {
    id: newId('ep', T0), appId, uid: null, url: 'https://example.com/hook', description: '', disabled: false, eventTypes: null, channels: null,
    metadata: {}, throttleRate: null, headers: {}, secrets: [{ key: 'whsec_' + 'a'.repeat(32), expiresAt: null }], failingSince: null,
    createdAt: T0, updatedAt: T0, ...over,
  };
}
function message(appId: string, over: Partial<MessageRow> = {}): MessageRow {
  const createdAt = over.createdAt ?? T0;
  return { id: newId('msg', createdAt), appId, eventId: null, eventType: 'user.created', channels: null, payload: '{"n":1}', createdAt, ...over };
}
function eventType(name: string, over: Partial<EventTypeRow> = {}): EventTypeRow {
  return { name, description: 'd', archived: false, deprecated: false, featureFlag: null, schemas: null, createdAt: T0, updatedAt: T0, ...over };
}

/** The dispatcher's result for one claimed delivery. */
function outcome(c: ClaimedDelivery, kind: 'ok' | 'retry' | 'fail' | 'gone' | 'skipped', at: number, over: Partial<AttemptResult> = {}): AttemptResult {
  const ok = kind === 'ok';
  const code = ok ? 200 : kind === 'gone' ? 410 : 500;
  return {
    deliveryId: c.delivery.id,
    endpointId: c.endpoint.id,
    attempt:
      kind === 'skipped'
        ? null
        : {
            id: newId('atmpt', at), msgId: c.message.id, endpointId: c.endpoint.id, appId: c.message.appId, url: c.endpoint.url,
            status: ok ? Status.success : Status.fail, statusCode: code, response: `r${code}`, durationMs: 12,
            triggerType: c.delivery.manual ? Trigger.manual : Trigger.scheduled, error: null, createdAt: at,
          },
    status: ok ? Status.success : kind === 'retry' ? Status.pending : Status.fail,
    nextAttemptAt: kind === 'retry' ? at + 5000 : null,
    at,
    endpointOk: ok,
    disableEndpoint: kind === 'gone',
    failingCutoff: at - 5 * 24 * HOUR,
    ...over,
  };
}

describe.each(ENGINES)('store conformance: $name', (engine) => {
  describe.skipIf(!engine.available)(engine.name, () => {
    let h: Harness;
    let store: Store;
    beforeEach(async () => {
      h = await engine.create();
      store = h.store;
    });
    afterEach(async () => {
      await h?.cleanup();
    });

    /** An app with `n` endpoints. */
    async function setup(n = 1): Promise<{ a: AppRow; eps: EndpointRow[] }> {
      const a = app();
      await store.insertApp(a);
      const eps: EndpointRow[] = [];
      for (let i = 0; i < n; i++) {
        const ep = endpoint(a.id);
        await store.insertEndpoint(ep);
        eps.push(ep);
      }
      return { a, eps };
    }

    /** Posts messages in one batch, each delivered to `endpointIds`; all must succeed. */
    async function post(appId: string, endpointIds: string[], count = 1, over: Partial<MessageRow> = {}): Promise<MessageRow[]> {
      const ms = Array.from({ length: count }, () => message(appId, over));
      const res = await store.insertMessages(ms.map((m) => ({ message: m, endpointIds })));
      expect(res.every((r) => r === null)).toBe(true);
      return ms;
    }

    // --- basics -----------------------------------------------------------

    test('capabilities are named', () => {
      expect(typeof store.capabilities.singleProcess).toBe('boolean');
      expect(typeof store.capabilities.notifications).toBe('boolean');
      expect(store.capabilities.notifications).toBe(typeof store.watchWork === 'function');
    });

    test('settings', async () => {
      expect(await store.getSetting('k')).toBeNull();
      await store.setSetting('k', 'v1');
      await store.setSetting('k', 'v2');
      expect(await store.getSetting('k')).toBe('v2');
    });

    test('applications: create, find by id and uid, update, delete', async () => {
      const a = app({ uid: 'acme', metadata: { z: '1', a: '2' }, throttleRate: 10 });
      await store.insertApp(a);
      expect(await store.findApp(a.id)).toEqual(a);
      const byUid = await store.findApp('acme');
      expect(byUid).toEqual(a);
      // Key order of metadata is kept as given.
      expect(Object.keys(byUid!.metadata)).toEqual(['z', 'a']);
      expect(await store.findApp('nope')).toBeNull();

      const updated = { ...a, name: 'Acme 2', uid: 'acme2', metadata: {}, throttleRate: null, updatedAt: T0 + 1 };
      await store.updateApp(updated);
      expect(await store.findApp('acme2')).toEqual(updated);
      expect(await store.findApp('acme')).toBeNull();

      await store.deleteApp(a.id);
      expect(await store.findApp(a.id)).toBeNull();
    });

    test('an id match wins over a uid match', async () => {
      const a = app();
      const b = app({ uid: a.id });
      await store.insertApp(a);
      await store.insertApp(b);
      expect((await store.findApp(a.id))!.id).toBe(a.id);
    });

    test('UniqueViolation names the field: app uid and id, endpoint uid per app, event type name', async () => {
      const a = app({ uid: 'dup' });
      await store.insertApp(a);
      await expect(store.insertApp(app({ uid: 'dup' }))).rejects.toEqual(new UniqueViolation('uid'));
      await expect(store.insertApp(app({ uid: 'dup' }))).rejects.toBeInstanceOf(UniqueViolation);
      await expect(store.insertApp({ ...a, uid: 'other' })).rejects.toMatchObject({ field: 'id' });
      const b = app({ uid: 'b' });
      await store.insertApp(b);
      await expect(store.updateApp({ ...b, uid: 'dup' })).rejects.toMatchObject({ field: 'uid' });

      await store.insertEndpoint(endpoint(a.id, { uid: 'ep' }));
      await expect(store.insertEndpoint(endpoint(a.id, { uid: 'ep' }))).rejects.toMatchObject({ field: 'uid' });
      await store.insertEndpoint(endpoint(b.id, { uid: 'ep' })); // another app: fine
      const e2 = endpoint(a.id, { uid: 'ep2' });
      await store.insertEndpoint(e2);
      await expect(store.updateEndpoint({ ...e2, uid: 'ep' })).rejects.toMatchObject({ field: 'uid' });

      await store.insertEventType(eventType('a.b'));
      await expect(store.insertEventType(eventType('a.b'))).rejects.toMatchObject({ field: 'name' });
    });

    test('event types: create, find, list without archived, update, delete', async () => {
      await store.insertEventType(eventType('user.created', { schemas: { '1': { type: 'object', properties: { b: 1, a: 2 } } }, featureFlag: 'beta' }));
      await store.insertEventType(eventType('user.deleted', { archived: true }));
      const got = await store.findEventType('user.created');
      expect(got).toMatchObject({ name: 'user.created', featureFlag: 'beta', archived: false, deprecated: false });
      expect(Object.keys((got!.schemas!['1'] as { properties: object }).properties)).toEqual(['b', 'a']);
      expect((await store.listEventTypes(page(10), false)).data.map((e) => e.name)).toEqual(['user.created']);
      expect((await store.listEventTypes(page(10), true)).data.map((e) => e.name)).toEqual(['user.created', 'user.deleted']);
      await store.updateEventType({ ...got!, description: 'new', deprecated: true, schemas: null, updatedAt: T0 + 5 });
      expect(await store.findEventType('user.created')).toMatchObject({ description: 'new', deprecated: true, schemas: null, updatedAt: T0 + 5 });
      await store.deleteEventType('user.created');
      expect(await store.findEventType('user.created')).toBeNull();
    });

    test('endpoints: create, find by id and uid within the app, list, update, delete', async () => {
      const { a } = await setup(0);
      const other = app();
      await store.insertApp(other);
      const ep = endpoint(a.id, {
        uid: 'main', eventTypes: ['b.x', 'a.y'], channels: ['c1'], metadata: { k: 'v' }, headers: { 'X-B': '1', 'X-A': '2' }, throttleRate: 5,
        secrets: [{ key: 'whsec_new', expiresAt: null }, { key: 'whsec_old', expiresAt: T0 + HOUR }],
      });
      await store.insertEndpoint(ep);
      expect(await store.findEndpoint(a.id, ep.id)).toEqual(ep);
      expect(await store.findEndpoint(a.id, 'main')).toEqual(ep);
      expect(await store.findEndpoint(other.id, 'main')).toBeNull();
      expect(Object.keys((await store.findEndpoint(a.id, 'main'))!.headers)).toEqual(['X-B', 'X-A']);
      const ep2 = endpoint(a.id);
      await store.insertEndpoint(ep2);
      expect((await store.appEndpoints(a.id)).map((e) => e.id)).toEqual([ep.id, ep2.id]);
      expect((await store.listEndpoints(a.id, page(10))).data.map((e) => e.id)).toEqual([ep.id, ep2.id]);

      const changed = { ...ep, uid: null, url: 'https://example.org/x', disabled: true, eventTypes: null, channels: null, failingSince: T0, updatedAt: T0 + 9 };
      await store.updateEndpoint(changed);
      expect(await store.findEndpoint(a.id, ep.id)).toEqual(changed);

      await post(a.id, [ep.id, ep2.id], 2);
      await store.deleteEndpoint(ep.id);
      expect(await store.findEndpoint(a.id, ep.id)).toBeNull();
      const claimed = await store.claimDue('w', Date.now(), 100, 60_000, ALL);
      expect(claimed.map((c) => c.endpoint.id)).toEqual([ep2.id, ep2.id]);
    });

    // --- messages ---------------------------------------------------------

    test('insertMessages: a batch with one duplicate eventId fails that item alone', async () => {
      const { a, eps } = await setup(2);
      const first = message(a.id, { eventId: 'evt-1' });
      expect(await store.insertMessages([{ message: first, endpointIds: [eps[0]!.id] }])).toEqual([null]);

      const ok1 = message(a.id, { eventId: 'evt-2' });
      const dupStored = message(a.id, { eventId: 'evt-1' });
      const ok2 = message(a.id);
      const dupInBatch = message(a.id, { eventId: 'evt-2' });
      const res = await store.insertMessages([
        { message: ok1, endpointIds: [eps[0]!.id, eps[1]!.id], idempotency: { key: 'idem-1', statusCode: 202, body: '{"id":1}', createdAt: T0 } },
        { message: dupStored, endpointIds: [eps[0]!.id], idempotency: { key: 'idem-2', statusCode: 202, body: '{}', createdAt: T0 } },
        { message: ok2, endpointIds: [eps[1]!.id] },
        { message: dupInBatch, endpointIds: [eps[1]!.id] },
      ]);
      expect(res[0]).toBeNull();
      expect(res[1]).toEqual(new UniqueViolation('eventId'));
      expect(res[2]).toBeNull();
      expect(res[3]).toBeInstanceOf(UniqueViolation);
      expect((res[3] as UniqueViolation).field).toBe('eventId');

      expect(await store.findMessage(a.id, ok1.id)).toEqual(ok1);
      expect(await store.findMessage(a.id, 'evt-2')).toEqual(ok1);
      expect(await store.findMessage(a.id, dupStored.id)).toBeNull();
      expect(await store.findMessage(a.id, dupInBatch.id)).toBeNull();
      expect(await store.getIdempotent('idem-1')).toEqual({ key: 'idem-1', statusCode: 202, body: '{"id":1}', createdAt: T0 });
      expect(await store.getIdempotent('idem-2')).toBeNull();
      // Deliveries only for the items that went in: first (1) + ok1 (2) + ok2 (1).
      const claimed = await store.claimDue('w', Date.now(), 100, 60_000, ALL);
      expect(claimed.map((c) => c.message.id).sort()).toEqual([first.id, ok1.id, ok1.id, ok2.id].sort());
      // Another app may reuse the eventId.
      const { a: b } = await setup(0);
      expect(await store.insertMessages([{ message: message(b.id, { eventId: 'evt-1' }), endpointIds: [] }])).toEqual([null]);
    });

    test('insertMessages creates an app on the fly, or falls back to the existing app with that uid', async () => {
      const existing = app({ uid: 'known' });
      await store.insertApp(existing);
      const made = app({ uid: 'fresh', name: 'fresh' });
      const sameUid = app({ uid: 'fresh', name: 'second' });
      const m1 = message(made.id);
      const m2 = message(sameUid.id);
      const m3 = message('app_placeholder', {});
      const res = await store.insertMessages([
        { message: m1, endpointIds: [], createApp: made },
        { message: m2, endpointIds: [], createApp: sameUid },
        { message: m3, endpointIds: [], createApp: app({ uid: 'known' }) },
      ]);
      expect(res).toEqual([null, null, null]);
      expect(await store.findApp('fresh')).toMatchObject({ id: made.id, name: 'fresh' });
      expect(m2.appId).toBe(made.id);
      expect(m3.appId).toBe(existing.id);
      expect(await store.findMessage(made.id, m2.id)).toMatchObject({ appId: made.id });
      expect(await store.findMessage(existing.id, m3.id)).toMatchObject({ appId: existing.id });
    });

    test('messages: list with filters, expunge', async () => {
      const { a } = await setup(0);
      const m1 = message(a.id, { eventType: 'a', channels: ['x', 'y'], createdAt: T0 + 1 });
      const m2 = message(a.id, { eventType: 'b', channels: ['y'], createdAt: T0 + 2 });
      const m3 = message(a.id, { eventType: 'c', createdAt: T0 + 3 });
      await store.insertMessages([m1, m2, m3].map((m) => ({ message: m, endpointIds: [] })));
      const ids = async (f: Parameters<Store['listMessages']>[1]) => (await store.listMessages(a.id, f, page(10))).data.map((m) => m.id);
      expect(await ids({})).toEqual([m1.id, m2.id, m3.id]);
      expect(await ids({ channel: 'x' })).toEqual([m1.id]);
      expect(await ids({ channel: 'y' })).toEqual([m1.id, m2.id]);
      expect(await ids({ eventTypes: ['b', 'c'] })).toEqual([m2.id, m3.id]);
      expect(await ids({ after: T0 + 1, before: T0 + 3 })).toEqual([m2.id]);
      await store.expungeMessage(m1.id);
      expect((await store.findMessage(a.id, m1.id))!.payload).toBeNull();
    });

    test('keyset pagination walks forwards and, with a "-" iterator, backwards', async () => {
      const apps: AppRow[] = [];
      for (let i = 0; i < 7; i++) {
        const a = app();
        apps.push(a);
        await store.insertApp(a);
      }
      const ids = apps.map((a) => a.id);
      const p1 = await store.listApps(page(3));
      expect(p1.data.map((a) => a.id)).toEqual(ids.slice(0, 3));
      expect(p1.done).toBe(false);
      expect(p1.iterator).toBe(ids[2]);
      expect(p1.prevIterator).toBe('-' + ids[0]);
      const p2 = await store.listApps(page(3, p1.iterator));
      expect(p2.data.map((a) => a.id)).toEqual(ids.slice(3, 6));
      const p3 = await store.listApps(page(3, p2.iterator));
      expect(p3.data.map((a) => a.id)).toEqual(ids.slice(6));
      expect(p3.done).toBe(true);
      // Back from page 3 gives page 2, in natural order.
      const back = await store.listApps(page(3, p3.prevIterator));
      expect(back.data.map((a) => a.id)).toEqual(ids.slice(3, 6));
      expect(back.done).toBe(false);
      const back2 = await store.listApps(page(3, back.prevIterator));
      expect(back2.data.map((a) => a.id)).toEqual(ids.slice(0, 3));
      expect(back2.done).toBe(true);
      // Descending.
      const d1 = await store.listApps(page(4, null, 'desc'));
      expect(d1.data.map((a) => a.id)).toEqual([...ids].reverse().slice(0, 4));
      const d2 = await store.listApps(page(4, d1.iterator, 'desc'));
      expect(d2.data.map((a) => a.id)).toEqual([...ids].reverse().slice(4));
      expect(d2.done).toBe(true);
      const dBack = await store.listApps(page(4, d2.prevIterator, 'desc'));
      expect(dBack.data.map((a) => a.id)).toEqual([...ids].reverse().slice(0, 4));
      // Empty page past the end keeps the iterator.
      const end = await store.listApps(page(3, ids[6]!));
      expect(end).toMatchObject({ data: [], iterator: ids[6], done: true });
    });

    test('ids sort bytewise (upper case before lower case), as in SQLite', async () => {
      for (const name of ['b', 'B', 'a', 'A', '_']) await store.insertEventType(eventType(name));
      expect((await store.listEventTypes(page(10), true)).data.map((e) => e.name)).toEqual(['A', 'B', '_', 'a', 'b']);
    });

    // --- the queue --------------------------------------------------------

    test('claimDue leases due deliveries only, at most slots(endpoint) each and limit overall', async () => {
      const { a, eps } = await setup(2);
      const [e1, e2] = [eps[0]!.id, eps[1]!.id];
      const now = Date.now();
      await post(a.id, [e1, e2], 3);
      await post(a.id, [e1], 1, { createdAt: now + 60_000 }); // not due yet
      const slots = (id: string) => (id === e1 ? 2 : 1);
      const c = await store.claimDue('w1', now, 10, 30_000, slots);
      expect(c.filter((x) => x.endpoint.id === e1)).toHaveLength(2);
      expect(c.filter((x) => x.endpoint.id === e2)).toHaveLength(1);
      for (const x of c) {
        expect(x.delivery.status).toBe(Status.sending);
        expect(x.message.payload).toBe('{"n":1}');
        expect(await store.findDelivery(x.message.id, x.endpoint.id)).toMatchObject({ status: Status.sending });
      }
      // Limit overall.
      const c2 = await store.claimDue('w1', now, 1, 30_000, ALL);
      expect(c2).toHaveLength(1);
      // The rest: 6 due in all, 4 claimed so far.
      const c3 = await store.claimDue('w1', now, 100, 30_000, ALL);
      expect(c3).toHaveLength(2);
      expect(await store.claimDue('w1', now, 100, 30_000, ALL)).toEqual([]);
      expect(await store.nextDueAt()).toBe(now + 60_000);
      expect(await store.claimDue('w1', now + 60_000, 100, 30_000, ALL)).toHaveLength(1);
    });

    test('a retry scheduled in the future is never claimed early', async () => {
      const { a, eps } = await setup(1);
      await post(a.id, [eps[0]!.id]);
      const now = Date.now();
      const [c] = await store.claimDue('w', now, 10, 30_000, ALL);
      expect(await store.completeAttempts('w', [outcome(c!, 'retry', now)])).toBe(1); // due at now + 5000
      expect(await store.nextDueAt()).toBe(now + 5000);
      expect(await store.claimDue('w', now + 4999, 10, 30_000, ALL)).toEqual([]);
      const again = await store.claimDue('w', now + 5000, 10, 30_000, ALL);
      expect(again.map((x) => x.delivery.id)).toEqual([c!.delivery.id]);
      expect(again[0]!.delivery.attempts).toBe(1);
    });

    test('a saturated endpoint with a big backlog does not block another endpoint', async () => {
      const { a, eps } = await setup(2);
      const [dead, live] = [eps[0]!.id, eps[1]!.id];
      const now = Date.now();
      // 3000 deliveries to the dead endpoint, all due before the live one's.
      for (let i = 0; i < 3; i++) await post(a.id, [dead], 1000, { createdAt: T0 });
      const [m] = await post(a.id, [live], 1, { createdAt: T0 + 1000 });
      const saturated = (id: string) => (id === dead ? 0 : 10);
      const c = await store.claimDue('w', now, 10, 30_000, saturated);
      expect(c.map((x) => x.message.id)).toEqual([m!.id]);
      // With two free slots the dead endpoint gets exactly two; the rest of the room is not spent on its backlog.
      await post(a.id, [live], 1, { createdAt: T0 + 2000 });
      const c2 = await store.claimDue('w', now, 10, 30_000, (id) => (id === dead ? 2 : 10));
      expect(c2.filter((x) => x.endpoint.id === dead)).toHaveLength(2);
      expect(c2.filter((x) => x.endpoint.id === live)).toHaveLength(1);
    });

    test('hundreds of saturated endpoints due first do not hide the one with free slots', async () => {
      const { a, eps } = await setup(301);
      const target = eps[300]!.id;
      const now = Date.now();
      const items = eps.slice(0, 300).map((e) => ({ message: message(a.id, { createdAt: T0 }), endpointIds: [e.id] }));
      expect((await store.insertMessages(items)).every((r) => r === null)).toBe(true);
      const [m] = await post(a.id, [target], 1, { createdAt: T0 + 10 });
      const c = await store.claimDue('w', now, 5, 30_000, (id) => (id === target ? 1 : 0));
      expect(c.map((x) => x.message.id)).toEqual([m!.id]);
    });

    test('an endpoint that cannot be read is skipped, its deliveries left pending; the other endpoints are claimed', async () => {
      const { a, eps } = await setup(3);
      const [copied, foreign, good] = [eps[0]!.id, eps[1]!.id, eps[2]!.id];
      // The unreadable endpoints are due first, so a claim meets them before the good one.
      await post(a.id, [copied, foreign], 2, { createdAt: T0 });
      const [m] = await post(a.id, [good], 1, { createdAt: T0 + 1000 });
      // One holds another row's sealed value (the endpoint id is authenticated), one a value sealed under another key.
      await h.sql('UPDATE endpoints SET secrets = (SELECT secrets FROM endpoints WHERE id = $1) WHERE id = $2', [good, copied]);
      const sealed = SecretBox.fromMainSecret('another-main-secret-0123456789abcdefgh').seal(JSON.stringify(eps[1]!.secrets), `endpoint-secrets:${foreign}`);
      await h.sql('UPDATE endpoints SET secrets = $1 WHERE id = $2', [engine.name === 'postgres' ? JSON.stringify(sealed) : sealed, foreign]);

      const reported = new Map<string, unknown>();
      const now = Date.now();
      const c = await store.claimDue('w', now, 10, 30_000, ALL, { endpointCap: 10, onUnreadableEndpoint: (id, e) => reported.set(id, e) });
      expect(c.map((x) => x.message.id)).toEqual([m!.id]);
      expect([...reported.keys()].sort()).toEqual([copied, foreign].sort());
      for (const e of reported.values()) expect(String(e)).toMatch(/HOOKLANE_MAIN_SECRET does not match/);
      const untouched = await h.sql<{ n: number }>(
        'SELECT COUNT(*) AS n FROM deliveries WHERE endpoint_id IN ($1, $2) AND status = 1 AND lease_owner IS NULL AND lease_until IS NULL AND attempts = 0',
        [copied, foreign],
      );
      expect(Number(untouched[0]!.n)).toBe(4);
      // Still queued and due; reported again by the next claim, never thrown (with or without a callback).
      expect(await store.nextDueAt()).toBeLessThanOrEqual(now);
      expect(await store.claimDue('w', now, 10, 30_000, ALL)).toEqual([]);
      // Repaired (its secrets written again): its deliveries are claimed.
      await store.updateEndpoint(eps[0]!);
      reported.clear();
      const again = await store.claimDue('w', now, 10, 30_000, ALL, { onUnreadableEndpoint: (id, e) => reported.set(id, e) });
      expect(again.map((x) => x.endpoint.id)).toEqual([copied, copied]);
      expect(again[0]!.endpoint.secrets).toEqual(eps[0]!.secrets);
      expect([...reported.keys()]).toEqual([foreign]);
    });

    test('reclaimExpired requeues deliveries whose lease ran out', async () => {
      const { a, eps } = await setup(1);
      await post(a.id, [eps[0]!.id], 2);
      const now = Date.now();
      const c = await store.claimDue('w1', now, 10, 1000, ALL);
      expect(c).toHaveLength(2);
      expect(await store.reclaimExpired(now + 999)).toBe(0);
      expect(await store.claimDue('w2', now + 999, 10, 1000, ALL)).toEqual([]);
      expect(await store.reclaimExpired(now + 1001)).toBe(2);
      expect(await store.findDelivery(c[0]!.message.id, eps[0]!.id)).toMatchObject({ status: Status.pending });
      const again = await store.claimDue('w2', now + 1001, 10, 1000, ALL);
      expect(again.map((x) => x.delivery.id).sort()).toEqual(c.map((x) => x.delivery.id).sort());
      // The first owner lost them: its outcome is dropped, the new owner's applies.
      expect(await store.completeAttempts('w1', c.map((x) => outcome(x, 'ok', now + 1100)))).toBe(0);
      expect(await store.findDelivery(c[0]!.message.id, eps[0]!.id)).toMatchObject({ status: Status.sending });
      expect((await store.listAttemptsByMessage(c[0]!.message.id, {}, page(10))).data).toEqual([]);
      expect(await store.completeAttempts('w2', again.map((x) => outcome(x, 'ok', now + 1200)))).toBe(2);
      expect(await store.findDelivery(c[0]!.message.id, eps[0]!.id)).toMatchObject({ status: Status.success, attempts: 1 });
    });

    test('extendLeases renews only the leases the owner holds', async () => {
      const { a, eps } = await setup(2);
      await post(a.id, [eps[0]!.id]);
      const now = Date.now();
      const mine = await store.claimDue('w1', now, 10, 1000, ALL);
      await post(a.id, [eps[1]!.id]);
      const theirs = await store.claimDue('w2', now, 10, 1000, ALL);
      expect(mine).toHaveLength(1);
      expect(theirs).toHaveLength(1);
      const ids = [...mine, ...theirs].map((x) => x.delivery.id);
      expect(await store.extendLeases('w3', ids, now + 60_000)).toBe(0);
      expect(await store.extendLeases('w1', ids, now + 60_000)).toBe(1);
      expect(await store.extendLeases('w1', [], now + 60_000)).toBe(0);
      // w1's lease now outlives w2's.
      expect(await store.reclaimExpired(now + 2000)).toBe(1);
      expect(await store.findDelivery(theirs[0]!.message.id, eps[1]!.id)).toMatchObject({ status: Status.pending });
      expect(await store.findDelivery(mine[0]!.message.id, eps[0]!.id)).toMatchObject({ status: Status.sending });
      // A reclaimed delivery is not renewed by its old owner.
      expect(await store.extendLeases('w2', ids, now + 60_000)).toBe(0);
      const owners = await h.sql<{ lease_owner: string | null }>('SELECT lease_owner FROM deliveries WHERE id = $1', [mine[0]!.delivery.id]);
      expect(owners[0]!.lease_owner).toBe('w1');
    });

    test('completeAttempts moves deliveries on and records attempts', async () => {
      const { a, eps } = await setup(1);
      const ep = eps[0]!;
      const ms = await post(a.id, [ep.id], 4);
      const now = Date.now();
      const c = await store.claimDue('w', now, 10, 30_000, ALL);
      const byMsg = new Map(c.map((x) => [x.message.id, x]));
      const [ok, retry, fail, skipped] = ms.map((m) => byMsg.get(m.id)!);
      const results = [outcome(ok!, 'ok', now + 1), outcome(retry!, 'retry', now + 2), outcome(fail!, 'fail', now + 3), outcome(skipped!, 'skipped', now + 4)];
      expect(await store.completeAttempts('w', results)).toBe(4);
      expect(await store.findDelivery(ok!.message.id, ep.id)).toMatchObject({ status: Status.success, attempts: 1, nextAttemptAt: null, updatedAt: now + 1 });
      expect(await store.findDelivery(retry!.message.id, ep.id)).toMatchObject({ status: Status.pending, attempts: 1, nextAttemptAt: now + 2 + 5000 });
      expect(await store.findDelivery(fail!.message.id, ep.id)).toMatchObject({ status: Status.fail, attempts: 1, nextAttemptAt: null });
      expect(await store.findDelivery(skipped!.message.id, ep.id)).toMatchObject({ status: Status.fail, attempts: 0 });

      const att = results[0]!.attempt!;
      expect(await store.findAttempt(ok!.message.id, att.id)).toEqual(att);
      expect((await store.listAttemptsByEndpoint(ep.id, {}, page(10))).data).toHaveLength(3);
      expect((await store.listAttemptsByEndpoint(ep.id, { status: Status.success }, page(10))).data.map((x) => x.id)).toEqual([att.id]);
      expect((await store.listAttemptsByEndpoint(ep.id, { statusCodeClass: 500 }, page(10))).data).toHaveLength(2);
      expect((await store.listAttemptsByMessage(fail!.message.id, {}, page(10))).data).toHaveLength(1);
      await store.expungeAttempt(att.id);
      expect((await store.findAttempt(ok!.message.id, att.id))!.response).toBe('');
      // Completing again is a no-op: the lease is released.
      expect(await store.completeAttempts('w', [outcome(ok!, 'fail', now + 9)])).toBe(0);
      expect(await store.findDelivery(ok!.message.id, ep.id)).toMatchObject({ status: Status.success });
    });

    test('endpoint health: failingSince starts on failure, clears on success, disables past the cutoff or on 410', async () => {
      const { a, eps } = await setup(2);
      const [ep, ep2] = eps as [EndpointRow, EndpointRow];
      const now = Date.now();
      const claimOne = async (epId: string) => {
        await post(a.id, [epId]);
        const [c] = await store.claimDue('w', now, 1, 30_000, ALL);
        return c!;
      };
      await store.completeAttempts('w', [outcome(await claimOne(ep.id), 'fail', now + 10)]);
      expect(await store.findEndpoint(a.id, ep.id)).toMatchObject({ failingSince: now + 10, disabled: false });
      // A later failure keeps the start of the run.
      await store.completeAttempts('w', [outcome(await claimOne(ep.id), 'fail', now + 20)]);
      expect(await store.findEndpoint(a.id, ep.id)).toMatchObject({ failingSince: now + 10, disabled: false });
      await store.completeAttempts('w', [outcome(await claimOne(ep.id), 'ok', now + 30)]);
      expect(await store.findEndpoint(a.id, ep.id)).toMatchObject({ failingSince: null, disabled: false });
      // Failing since before the cutoff: disabled, updatedAt moves.
      await store.completeAttempts('w', [outcome(await claimOne(ep.id), 'fail', now + 40)]);
      await store.completeAttempts('w', [outcome(await claimOne(ep.id), 'fail', now + 50, { failingCutoff: now + 40 })]);
      expect(await store.findEndpoint(a.id, ep.id)).toMatchObject({ failingSince: now + 40, disabled: true, updatedAt: now + 50 });
      // 410 Gone disables at once.
      await store.completeAttempts('w', [outcome(await claimOne(ep2.id), 'gone', now + 60)]);
      expect(await store.findEndpoint(a.id, ep2.id)).toMatchObject({ failingSince: now + 60, disabled: true, updatedAt: now + 60 });
    });

    test('endpoint health applies the results of one batch in order', async () => {
      const { a, eps } = await setup(1);
      const ep = eps[0]!;
      await post(a.id, [ep.id], 3);
      const now = Date.now();
      const c = await store.claimDue('w', now, 10, 30_000, ALL);
      await store.completeAttempts('w', [outcome(c[0]!, 'fail', now + 1), outcome(c[1]!, 'ok', now + 2), outcome(c[2]!, 'fail', now + 3)]);
      expect(await store.findEndpoint(a.id, ep.id)).toMatchObject({ failingSince: now + 3, disabled: false });
    });

    test('resend requeues a finished delivery as manual, creates a missing one, leaves one in flight alone', async () => {
      const { a, eps } = await setup(2);
      const [ep, ep2] = eps as [EndpointRow, EndpointRow];
      const [m] = await post(a.id, [ep.id]);
      const now = Date.now();
      const [c] = await store.claimDue('w', now, 10, 30_000, ALL);
      await store.resend(m!.id, ep.id, now + 1); // in flight: untouched
      expect(await store.findDelivery(m!.id, ep.id)).toMatchObject({ status: Status.sending, manual: false });
      await store.completeAttempts('w', [outcome(c!, 'fail', now + 2)]);
      await store.resend(m!.id, ep.id, now + 3);
      expect(await store.findDelivery(m!.id, ep.id)).toMatchObject({ status: Status.pending, manual: true, nextAttemptAt: now + 3 });
      await store.resend(m!.id, ep2.id, now + 4);
      expect(await store.findDelivery(m!.id, ep2.id)).toMatchObject({ status: Status.pending, manual: true, attempts: 0, appId: a.id });
      const again = await store.claimDue('w', now + 4, 10, 30_000, ALL);
      expect(again.map((x) => x.endpoint.id).sort()).toEqual([ep.id, ep2.id].sort());
      expect(again.every((x) => x.delivery.manual)).toBe(true);
      await store.completeAttempts('w', again.map((x) => outcome(x, 'ok', now + 5)));
      expect(await store.findDelivery(m!.id, ep.id)).toMatchObject({ status: Status.success, manual: false, attempts: 2 });
    });

    test('recover requeues the failed deliveries of a time window', async () => {
      const { a, eps } = await setup(1);
      const ep = eps[0]!;
      const early = await post(a.id, [ep.id], 2, { createdAt: T0 });
      const late = await post(a.id, [ep.id], 1, { createdAt: T0 + 1000 });
      const now = Date.now();
      const c = await store.claimDue('w', now, 10, 30_000, ALL);
      await store.completeAttempts('w', c.map((x) => outcome(x, x.message.id === early[0]!.id ? 'ok' : 'fail', now)));
      expect(await store.recover(ep.id, T0, T0 + 1000, now + 1)).toBe(1); // early[1] only: early[0] succeeded, late is outside
      expect(await store.findDelivery(early[1]!.id, ep.id)).toMatchObject({ status: Status.pending, nextAttemptAt: now + 1 });
      expect(await store.findDelivery(late[0]!.id, ep.id)).toMatchObject({ status: Status.fail });
      expect(await store.recover(ep.id, T0, T0 + 1000, now + 1)).toBe(0);
      expect((await store.claimDue('w', now + 1, 10, 30_000, ALL)).map((x) => x.message.id)).toEqual([early[1]!.id]);
    });

    test('endpointStats counts deliveries by status within a window', async () => {
      const { a, eps } = await setup(1);
      const ep = eps[0]!;
      await post(a.id, [ep.id], 4, { createdAt: T0 });
      await post(a.id, [ep.id], 1, { createdAt: T0 + 5000 });
      const now = Date.now();
      const c = await store.claimDue('w', now, 3, 30_000, ALL);
      await store.completeAttempts('w', [outcome(c[0]!, 'ok', now), outcome(c[1]!, 'fail', now)]);
      expect(await store.endpointStats(ep.id, null, null)).toEqual({ success: 1, pending: 2, fail: 1, sending: 1, canceled: 0 });
      expect(await store.endpointStats(ep.id, T0 + 1, null)).toEqual({ success: 0, pending: 1, fail: 0, sending: 0, canceled: 0 });
      expect(await store.endpointStats(ep.id, null, T0 + 1)).toMatchObject({ pending: 1, success: 1, fail: 1, sending: 1 });
    });

    test('destinations and endpoint messages list deliveries with their records', async () => {
      const { a, eps } = await setup(2);
      const [m1, m2] = await post(a.id, [eps[0]!.id, eps[1]!.id], 2, { channels: ['ch'] });
      const dest = await store.listDestinations(m1!.id, page(10));
      expect(dest.data.map((d) => d.endpoint.id)).toEqual([eps[0]!.id, eps[1]!.id]);
      expect(dest.data[0]!.delivery).toMatchObject({ msgId: m1!.id, endpointId: eps[0]!.id, status: Status.pending, attempts: 0, manual: false });
      const em = await store.listEndpointMessages(eps[1]!.id, {}, page(1));
      expect(em.data.map((x) => x.message.id)).toEqual([m1!.id]);
      expect(em.data[0]!.delivery).toMatchObject({ endpointId: eps[1]!.id, msgId: m1!.id });
      const em2 = await store.listEndpointMessages(eps[1]!.id, {}, page(1, em.iterator));
      expect(em2.data.map((x) => x.message.id)).toEqual([m2!.id]);
      expect((await store.listEndpointMessages(eps[1]!.id, { status: Status.success }, page(10))).data).toEqual([]);
      expect((await store.listEndpointMessages(eps[1]!.id, { channel: 'ch' }, page(10))).data).toHaveLength(2);
      expect((await store.listEndpointMessages(eps[1]!.id, { channel: 'other' }, page(10))).data).toHaveLength(0);
    });

    test('deleting an app removes its endpoints, messages, deliveries and queue', async () => {
      const { a, eps } = await setup(1);
      const [m] = await post(a.id, [eps[0]!.id], 2);
      expect(await store.nextDueAt()).toBe(T0);
      await store.deleteApp(a.id);
      expect(await store.findEndpoint(a.id, eps[0]!.id)).toBeNull();
      expect(await store.findMessage(a.id, m!.id)).toBeNull();
      expect(await store.findDelivery(m!.id, eps[0]!.id)).toBeNull();
      expect(await store.claimDue('w', Date.now(), 10, 30_000, ALL)).toEqual([]);
      expect(await store.nextDueAt()).toBeNull();
    });

    // --- migrations ---------------------------------------------------------

    test('migrations are idempotent and a newer schema is refused', async () => {
      expect(await h.migrateAgain()).toBe(0);
      const second = await h.open();
      expect(await second.getSetting('x')).toBeNull();
      await h.recordVersion(999);
      await expect(h.migrateAgain()).rejects.toThrow(/newer than this Hooklane/);
      await expect(h.open()).rejects.toThrow(/schema version 999 is newer/);
    });

    // --- PostgreSQL: many processes ------------------------------------------

    // --- secrets at rest and API tokens -------------------------------------

    /** The secrets column as stored, as text (SQLite: text; PostgreSQL: json, parsed by pg). */
    async function rawSecrets(endpointId: string): Promise<string> {
      const [r] = await h.sql<{ secrets: unknown }>('SELECT secrets FROM endpoints WHERE id = $1', [endpointId]);
      return typeof r!.secrets === 'string' ? r!.secrets : JSON.stringify(r!.secrets);
    }
    const KEY_A = 'whsec_' + Buffer.from('secret-a-secret-a-secret-a-32byt').toString('base64');
    const KEY_B = 'whsec_' + Buffer.from('secret-b-secret-b-secret-b-32byt').toString('base64');

    test('endpoint secrets are sealed at rest: the column holds no whsec_ text, every read returns them', async () => {
      const a = app();
      await store.insertApp(a);
      const secrets = [{ key: KEY_A, expiresAt: null }, { key: KEY_B, expiresAt: T0 + HOUR }];
      const ep = endpoint(a.id, { secrets });
      await store.insertEndpoint(ep);
      for (const raw of [await rawSecrets(ep.id), JSON.stringify(await h.sql('SELECT * FROM endpoints'))]) {
        expect(raw).not.toContain('whsec_');
        expect(raw).not.toContain(KEY_A.slice(6));
        expect(raw).not.toContain(KEY_B.slice(6));
      }
      expect(await rawSecrets(ep.id)).toMatch(/^hlenc1:/);

      expect((await store.findEndpoint(a.id, ep.id))!.secrets).toEqual(secrets);
      expect((await store.listEndpoints(a.id, page(10))).data[0]!.secrets).toEqual(secrets);
      expect((await store.appEndpoints(a.id))[0]!.secrets).toEqual(secrets);
      const [m] = await post(a.id, [ep.id]);
      expect((await store.listDestinations(m!.id, page(10))).data[0]!.endpoint.secrets).toEqual(secrets);
      const [claimed] = await store.claimDue('w', Date.now(), 10, 60_000, ALL);
      expect(claimed!.endpoint.secrets).toEqual(secrets);

      // Updates are sealed too, with a fresh nonce each time.
      const before = await rawSecrets(ep.id);
      await store.updateEndpoint({ ...ep, secrets: [{ key: KEY_B, expiresAt: null }] });
      const after = await rawSecrets(ep.id);
      expect(after).not.toBe(before);
      expect(after).not.toContain('whsec_');
      expect((await store.findEndpoint(a.id, ep.id))!.secrets).toEqual([{ key: KEY_B, expiresAt: null }]);
      await store.updateEndpoint({ ...ep, secrets: [{ key: KEY_B, expiresAt: null }] });
      expect(await rawSecrets(ep.id)).not.toBe(after);
    });

    test('a sealed value opens only in its own row, and only under its key', async () => {
      const { a, eps } = await setup(2);
      // Copied into another endpoint's row, it does not open (the endpoint id is authenticated).
      await h.sql('UPDATE endpoints SET secrets = (SELECT secrets FROM endpoints WHERE id = $1) WHERE id = $2', [eps[0]!.id, eps[1]!.id]);
      await expect(store.findEndpoint(a.id, eps[1]!.id)).rejects.toThrow(/HOOKLANE_MAIN_SECRET does not match/);
      expect((await store.findEndpoint(a.id, eps[0]!.id))!.secrets).toEqual(eps[0]!.secrets);

      const otherKey = await h.open({ cipher: SecretBox.fromMainSecret('another-main-secret-0123456789abcdefgh') });
      await expect(otherKey.findEndpoint(a.id, eps[0]!.id)).rejects.toThrow(/HOOKLANE_MAIN_SECRET does not match/);
      const noKey = await h.open({ cipher: null });
      await expect(noKey.findEndpoint(a.id, eps[0]!.id)).rejects.toThrow(/without HOOKLANE_MAIN_SECRET/);
      await expect(noKey.insertEndpoint(endpoint(a.id))).rejects.toThrow(/without HOOKLANE_MAIN_SECRET/);
      // Nothing was written in plaintext by the refused insert.
      expect(JSON.stringify(await h.sql('SELECT secrets FROM endpoints'))).not.toContain('whsec_');
    });

    test('plaintext secrets from before encryption are still read, and sealPlaintextSecrets seals them', async () => {
      const { a, eps } = await setup(3);
      const legacy = [{ key: KEY_A, expiresAt: null }];
      for (const ep of eps.slice(0, 2)) await h.sql('UPDATE endpoints SET secrets = $1 WHERE id = $2', [JSON.stringify(legacy), ep.id]);
      expect(await rawSecrets(eps[0]!.id)).toContain('whsec_');
      expect((await store.findEndpoint(a.id, eps[0]!.id))!.secrets).toEqual(legacy);

      expect(await store.sealPlaintextSecrets()).toBe(2);
      for (const ep of eps) expect(await rawSecrets(ep.id)).toMatch(/^hlenc1:/);
      expect(JSON.stringify(await h.sql('SELECT secrets FROM endpoints'))).not.toContain('whsec_');
      expect((await store.findEndpoint(a.id, eps[0]!.id))!.secrets).toEqual(legacy);
      expect((await store.findEndpoint(a.id, eps[2]!.id))!.secrets).toEqual(eps[2]!.secrets);
      expect(await store.sealPlaintextSecrets()).toBe(0);
    });

    test('claimSetting keeps the first value', async () => {
      expect(await store.claimSetting('once', 'a')).toBe('a');
      expect(await store.claimSetting('once', 'b')).toBe('a');
      expect(await store.getSetting('once')).toBe('a');
      const other = await h.open();
      expect(await other.claimSetting('once', 'c')).toBe('a');
    });

    test('api tokens: insert, find by hash, list, touch at most once per interval, revoke once, gone with their app', async () => {
      const a = app();
      await store.insertApp(a);
      const admin = { id: newId('tok', T0), name: 'admin', hash: 'a'.repeat(64), appId: null, createdAt: T0, lastUsedAt: null, revokedAt: null };
      const scoped = { ...admin, id: newId('tok', T0 + 1), name: 'scoped', hash: 'b'.repeat(64), appId: a.id, createdAt: T0 + 1 };
      await store.insertToken(admin);
      await store.insertToken(scoped);
      await expect(store.insertToken({ ...scoped, id: newId('tok', T0 + 2) })).rejects.toThrow();
      expect(await store.findTokenByHash('b'.repeat(64))).toEqual(scoped);
      expect(await store.findTokenByHash('c'.repeat(64))).toBeNull();
      expect(await store.listTokens()).toEqual([admin, scoped]);

      await store.touchToken(admin.id, T0 + 100, T0 + 100 - 60_000);
      expect((await store.findTokenByHash(admin.hash))!.lastUsedAt).toBe(T0 + 100);
      await store.touchToken(admin.id, T0 + 200, T0 + 200 - 60_000); // used 100 ms ago: not written
      expect((await store.findTokenByHash(admin.hash))!.lastUsedAt).toBe(T0 + 100);
      await store.touchToken(admin.id, T0 + 70_000, T0 + 10_000);
      expect((await store.findTokenByHash(admin.hash))!.lastUsedAt).toBe(T0 + 70_000);

      expect(await store.revokeToken(admin.id, T0 + 5)).toBe(true);
      expect(await store.revokeToken(admin.id, T0 + 6)).toBe(true);
      expect((await store.findTokenByHash(admin.hash))!.revokedAt).toBe(T0 + 5);
      expect(await store.revokeToken('tok_nope', T0)).toBe(false);

      await store.deleteApp(a.id);
      expect(await store.findTokenByHash(scoped.hash)).toBeNull();
      expect((await store.listTokens()).map((t) => t.id)).toEqual([admin.id]);
    });

    describe.skipIf(engine.name !== 'postgres')('many processes', () => {
      test('8 concurrent claimers on separate pools claim each of 2000 deliveries exactly once', async () => {
        const { a, eps } = await setup(20);
        for (let i = 0; i < 10; i++) {
          // 100 messages x 2 endpoints per batch, spread over the 20 endpoints.
          const items = Array.from({ length: 100 }, (_, j) => {
            const k = (i * 100 + j) % 10;
            return { message: message(a.id), endpointIds: [eps[k]!.id, eps[k + 10]!.id] };
          });
          expect((await store.insertMessages(items)).every((r) => r === null)).toBe(true);
        }
        const claimers = await Promise.all(Array.from({ length: 8 }, () => h.open({ migrate: false, max: 2 })));
        const seen = new Map<number, string>();
        let duplicates = 0;
        const deadline = Date.now() + 60_000;
        await Promise.all(
          claimers.map(async (s, i) => {
            const owner = `claimer-${i}`;
            while (seen.size < 2000 && Date.now() < deadline) {
              const got = await s.claimDue(owner, Date.now(), 37, 600_000, () => 5);
              for (const c of got) {
                if (seen.has(c.delivery.id)) duplicates++;
                seen.set(c.delivery.id, owner);
              }
              if (got.length === 0) await new Promise((r) => setTimeout(r, 2));
            }
          }),
        );
        expect(duplicates).toBe(0);
        expect(seen.size).toBe(2000);
        expect(new Set(seen.values()).size).toBeGreaterThan(1);
        const rows = await h.sql<{ status: number; n: number }>('SELECT status, COUNT(*)::int AS n FROM deliveries GROUP BY status');
        expect(rows).toEqual([{ status: Status.sending, n: 2000 }]);
        const owners = await h.sql<{ id: number; lease_owner: string }>('SELECT id, lease_owner FROM deliveries');
        for (const r of owners) expect(r.lease_owner).toBe(seen.get(r.id));
        expect(await store.nextDueAt()).toBeNull();
      });

      test('concurrent claim, complete with retries and reclaim lose nothing', async () => {
        const { a, eps } = await setup(5);
        const msgs = Array.from({ length: 300 }, () => ({ message: message(a.id), endpointIds: eps.map((e) => e.id) }));
        expect((await store.insertMessages(msgs)).every((r) => r === null)).toBe(true);
        const workers = await Promise.all(Array.from({ length: 4 }, () => h.open({ migrate: false, max: 3 })));
        const done = new Set<number>();
        const attempts = new Map<number, number>();
        const deadline = Date.now() + 60_000;
        await Promise.all(
          workers.map(async (s, i) => {
            const owner = `worker-${i}`;
            while (done.size < 1500 && Date.now() < deadline) {
              const now = Date.now();
              const got = await s.claimDue(owner, now, 25, 600_000, () => 8);
              if (got.length === 0) {
                await s.reclaimExpired(now);
                await new Promise((r) => setTimeout(r, 2));
                continue;
              }
              // First attempt of each delivery fails with a retry due at once; the second succeeds.
              const results = got.map((c) => {
                const n = (attempts.get(c.delivery.id) ?? 0) + 1;
                attempts.set(c.delivery.id, n);
                return outcome(c, n === 1 ? 'retry' : 'ok', now, { nextAttemptAt: n === 1 ? now : null });
              });
              expect(await s.completeAttempts(owner, results)).toBe(got.length);
              for (const r of results) if (r.status === Status.success) done.add(r.deliveryId);
            }
          }),
        );
        expect(done.size).toBe(1500);
        expect([...attempts.values()].every((n) => n === 2)).toBe(true);
        expect(await store.endpointStats(eps[0]!.id, null, null)).toMatchObject({ success: 300, pending: 0, sending: 0 });
      });

      test('endpointCap holds across processes: claimers on separate pools never lease more of one endpoint than the cap', async () => {
        const CAP = 3;
        const { a, eps } = await setup(2);
        const [busy, other] = [eps[0]!.id, eps[1]!.id];
        await post(a.id, [busy], 40, { createdAt: T0 });
        await post(a.id, [other], 5, { createdAt: T0 + 1000 });
        const claimers = await Promise.all(Array.from({ length: 4 }, () => h.open({ migrate: false, max: 2 })));
        const opts = { endpointCap: CAP };
        const leasedOf = async (id: string, now: number) =>
          (await h.sql<{ n: number }>('SELECT COUNT(*)::int AS n FROM deliveries WHERE endpoint_id = $1 AND status = 3 AND lease_until >= $2', [id, now]))[0]!.n;

        // Each process has all its own slots free; together they still lease CAP of each endpoint, no more.
        const now = Date.now();
        const rounds = await Promise.all(
          claimers.flatMap((s, i) => [0, 1, 2].map(async () => ({ i, got: await s.claimDue(`p${i}`, now, 10, 60_000, () => CAP, opts) }))),
        );
        const got = rounds.flatMap((r) => r.got);
        expect(got.filter((c) => c.endpoint.id === busy)).toHaveLength(CAP);
        expect(got.filter((c) => c.endpoint.id === other)).toHaveLength(CAP);
        expect(await leasedOf(busy, now)).toBe(CAP);
        // Saturated everywhere: nothing more, from any process, and the queue rows stay due.
        expect(await claimers[3]!.claimDue('p3', now, 10, 60_000, () => CAP, opts)).toEqual([]);
        expect(await store.nextDueAt()).toBeLessThanOrEqual(now);

        // One finished frees one place, for whichever process claims next.
        const holder = rounds.find((r) => r.got.some((c) => c.endpoint.id === busy))!;
        const done = holder.got.find((c) => c.endpoint.id === busy)!;
        expect(await claimers[holder.i]!.completeAttempts(`p${holder.i}`, [outcome(done, 'ok', now)])).toBe(1);
        const next = await claimers[(holder.i + 1) % 4]!.claimDue('px', now, 10, 60_000, () => CAP, opts);
        expect(next.map((c) => c.endpoint.id)).toEqual([busy]);

        // Expired leases (a dead process's, not yet reclaimed) do not count.
        const later = now + 60_001;
        const after = await claimers[0]!.claimDue('py', later, 10, 60_000, () => CAP, opts);
        expect(after.filter((c) => c.endpoint.id === busy)).toHaveLength(CAP);
        expect(await leasedOf(busy, later)).toBe(CAP);

        // Under churn (claim, hold briefly, complete) the database never shows more than CAP leased.
        await store.reclaimExpired(Number.MAX_SAFE_INTEGER);
        const left = (await h.sql<{ n: number }>('SELECT COUNT(*)::int AS n FROM deliveries WHERE endpoint_id = $1 AND status = 1', [busy]))[0]!.n;
        expect(left).toBe(39);
        let max = 0;
        let running = true;
        const sampler = (async () => {
          while (running) {
            max = Math.max(max, await leasedOf(busy, 0));
            await new Promise((r) => setTimeout(r, 1));
          }
        })();
        const sent = new Set<number>();
        const deadline = Date.now() + 30_000;
        await Promise.all(
          claimers.map(async (s, i) => {
            while (sent.size < left && Date.now() < deadline) {
              const t = Date.now();
              const mine = (await s.claimDue(`churn${i}`, t, 10, 60_000, () => CAP, opts)).filter((c) => c.endpoint.id === busy);
              if (mine.length === 0) {
                await new Promise((r) => setTimeout(r, 2));
                continue;
              }
              await new Promise((r) => setTimeout(r, 5));
              for (const c of mine) sent.add(c.delivery.id);
              await s.completeAttempts(`churn${i}`, mine.map((c) => outcome(c, 'ok', t)));
            }
          }),
        );
        running = false;
        await sampler;
        expect(sent.size).toBe(left);
        expect(max).toBeGreaterThan(0);
        expect(max).toBeLessThanOrEqual(CAP);
      });

      test('watchWork: NOTIFY on new work, reconnects when the connection drops', async () => {
        const { a, eps } = await setup(1);
        let woken = 0;
        const unwatch = await store.watchWork!(() => woken++);
        const other = await h.open({ migrate: false });
        await other.insertMessages([{ message: message(a.id), endpointIds: [eps[0]!.id] }]);
        await expect.poll(() => woken, { timeout: 5000 }).toBeGreaterThan(0);

        // Kill the listening connection; it comes back and wakes once (notifications may have been missed).
        const before = woken;
        await h.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hooklane:listen' AND pid <> pg_backend_pid()");
        await expect.poll(() => woken, { timeout: 10_000 }).toBeGreaterThan(before);
        const after = woken;
        await other.resend((await store.listMessages(a.id, {}, page(1))).data[0]!.id, eps[0]!.id, Date.now());
        await expect.poll(() => woken, { timeout: 5000 }).toBeGreaterThan(after);
        await unwatch();
        const stopped = woken;
        await other.recover(eps[0]!.id, 0, Date.now(), Date.now());
        await other.insertMessages([{ message: message(a.id), endpointIds: [eps[0]!.id] }]);
        await new Promise((r) => setTimeout(r, 200));
        expect(woken).toBe(stopped);
      });
    });
  });
});
