import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createToken } from '../../src/auth/tokens.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { apiClient, eventually, TEST_TOKEN, type Api, type TestServer } from '../helpers/server.js';
import { ENGINE_CASES, startOn } from './auth-support.js';

/**
 * An application token of app A against everything of app B, on every route
 * of the API (enumerated from the OpenAPI document, so a new route is
 * covered the day it is added): the answer is 401, 403 or 404, never data,
 * and nothing of B changes. Admin-only routes are 403 for app tokens.
 */

interface Tenant {
  id: string;
  uid: string;
  name: string;
  ep: string;
  msg: string;
  attempt: string;
  secret: string;
}

const EVENT = 'user.created';
const B_HEADER_VALUE = 'b-private-header-value';

/** OpenAPI operations of the server (public ones left out). */
async function operations(url: string): Promise<{ method: string; path: string }[]> {
  const doc = (await (await fetch(`${url}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  const out: { method: string; path: string }[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    if (path.startsWith('/api/v1/health')) continue;
    for (const method of Object.keys(ops)) if (['get', 'post', 'put', 'patch', 'delete'].includes(method)) out.push({ method: method.toUpperCase(), path });
  }
  return out;
}

describe.each(ENGINE_CASES)('cross-app access: $name', (engine) => {
  describe.skipIf(!engine.available)(engine.name, () => {
    let s: TestServer;
    let receiver: Receiver;
    let admin: Api;
    let asA: Api;
    let A: Tenant;
    let B: Tenant;
    let ops: { method: string; path: string }[];
    const since = new Date(Date.now() - 3_600_000).toISOString();

    /** A body that would be accepted, so that only the scope check can refuse the request. */
    const bodyFor = (method: string, path: string): unknown => {
      const p = path.replace('/api/v1', '');
      if (method === 'GET' || method === 'DELETE') return undefined;
      if (p === '/app') return { name: 'New app' };
      if (p === '/app/{app_id}') return { name: 'Renamed by A' };
      if (p === '/app/{app_id}/endpoint') return { url: `${receiver.url}/new` };
      if (p === '/app/{app_id}/endpoint/{endpoint_id}') return method === 'PUT' ? { url: `${receiver.url}/hijacked` } : { description: 'hijacked' };
      if (p.endsWith('/headers')) return { headers: { 'x-hijacked': 'yes' } };
      if (p.endsWith('/secret/rotate')) return {};
      if (p.endsWith('/recover')) return { since };
      if (p.endsWith('/send-example')) return { eventType: EVENT };
      if (p === '/app/{app_id}/msg') return { eventType: EVENT, payload: { from: 'A' } };
      if (p.endsWith('/resend')) return undefined;
      if (p === '/event-type') return { name: 'made.by.app', description: 'd' };
      if (p.startsWith('/event-type/')) return { description: 'changed by app' };
      return {};
    };

    /** Fills a path template: app_id from `app`, every other id from `child`. */
    const fill = (path: string, app: string, child: Tenant) =>
      path
        .replace('/api/v1', '')
        .replace('{app_id}', app)
        .replace('{endpoint_id}', child.ep)
        .replace('{msg_id}', child.msg)
        .replace('{attempt_id}', child.attempt)
        .replace('{event_type_name}', EVENT)
        .replace(/\{[a-z_]+\}/g, 'x');

    /** Nothing of B in an answer. */
    const expectNoDataOfB = (text: string, what: string) => {
      for (const v of [B.id, B.name, B.ep, B.msg, B.attempt, B.secret, B.secret.slice(6), B_HEADER_VALUE, `${receiver.url}/b`]) {
        expect(text.includes(v), `${what} leaks ${v}: ${text}`).toBe(false);
      }
    };

    async function tenant(uid: string, name: string): Promise<Tenant> {
      const app = await admin('POST', '/app', { uid, name });
      expect(app.status).toBe(201);
      const ep = await admin('POST', `/app/${app.body.id}/endpoint`, { url: `${receiver.url}/${uid.slice(-1)}`, description: `${name} endpoint` });
      expect(ep.status, JSON.stringify(ep.body)).toBe(201);
      const msg = await admin('POST', `/app/${app.body.id}/msg`, { eventType: EVENT, payload: { tenant: name } });
      expect(msg.status).toBe(202);
      const attempt = await eventually(async () => {
        const r = await admin('GET', `/app/${app.body.id}/attempt/msg/${msg.body.id}`);
        return r.body.data?.[0] as { id: string } | undefined;
      }, 15_000, `an attempt for ${name}`) as { id: string };
      const secret = await admin('GET', `/app/${app.body.id}/endpoint/${ep.body.id}/secret`);
      return { id: app.body.id, uid, name, ep: ep.body.id, msg: msg.body.id, attempt: attempt.id, secret: secret.body.key };
    }

    beforeAll(async () => {
      receiver = await startReceiver();
      s = await startOn(engine.name);
      admin = s.api;
      expect((await admin('POST', '/event-type', { name: EVENT, description: 'a user signed up' })).status).toBe(201);
      A = await tenant('tenant-a', 'Tenant A');
      B = await tenant('tenant-b', 'Tenant B');
      expect((await admin('PUT', `/app/${B.id}/endpoint/${B.ep}/headers`, { headers: { 'x-b-private': B_HEADER_VALUE } })).status).toBe(204);
      const { token } = await createToken(s.hl.store, { name: 'tenant A', appId: A.id });
      asA = apiClient(s.url, token);
      ops = await operations(s.url);
    }, 60_000);

    afterAll(async () => {
      await s?.close();
      await receiver?.close();
    });

    test('the app token reaches its own application (by id and by uid) on every read route', async () => {
      const reads = ops.filter((o) => o.method === 'GET' && o.path.includes('{app_id}'));
      expect(reads.length).toBeGreaterThanOrEqual(13);
      for (const o of reads) {
        for (const app of [A.id, A.uid]) {
          const r = await asA('GET', fill(o.path, app, A));
          expect(r.status, `GET ${fill(o.path, app, A)}: ${JSON.stringify(r.body)}`).toBe(200);
        }
      }
      expect((await asA('GET', `/app/${A.id}/endpoint/${A.ep}/secret`)).body.key).toBe(A.secret);
      expect((await asA('POST', `/app/${A.uid}/msg`, { eventType: EVENT, payload: {} })).status).toBe(202);
    });

    test('every route of application B, by id or uid, answers 404 to the token of A and changes nothing', async () => {
      const scoped = ops.filter((o) => o.path.includes('{app_id}'));
      // Today's routes, at least: app, endpoints, headers, secret, rotate, recover, send-example, stats, messages, attempts, resend.
      expect(scoped.length).toBeGreaterThanOrEqual(28);
      for (const o of scoped) {
        for (const app of [B.id, B.uid]) {
          const path = fill(o.path, app, B);
          const r = await asA(o.method, path, bodyFor(o.method, o.path));
          expect(r.status, `${o.method} ${path}: ${JSON.stringify(r.body)}`).toBe(404);
          expect(r.body).toEqual({ code: 'not_found', detail: 'Application not found' });
          expectNoDataOfB(JSON.stringify(r.body) + JSON.stringify([...r.headers]), `${o.method} ${path}`);
        }
      }
    });

    test("A's own path with B's endpoint, message or attempt ids answers 404", async () => {
      const withChild = ops.filter((o) => o.path.includes('{app_id}') && /\{(endpoint_id|msg_id|attempt_id)\}/.test(o.path));
      expect(withChild.length).toBeGreaterThanOrEqual(20);
      for (const o of withChild) {
        const path = fill(o.path, A.id, B);
        const r = await asA(o.method, path, bodyFor(o.method, o.path));
        // PUT creates an endpoint with that uid in A when there is none; an ep_ id is not a valid uid (422).
        const allowed = o.method === 'PUT' && o.path.endsWith('/endpoint/{endpoint_id}') ? [404, 422] : [404];
        expect(allowed, `${o.method} ${path}: ${r.status} ${JSON.stringify(r.body)}`).toContain(r.status);
        expectNoDataOfB(JSON.stringify(r.body), `${o.method} ${path}`);
      }
      expect((await admin('GET', `/app/${A.id}/endpoint`)).body.data.map((e: { id: string }) => e.id)).toEqual([A.ep]);
      // Mixed: A's message with B's endpoint, B's attempt under A's message, a B endpoint as a filter.
      for (const [method, path] of [
        ['POST', `/app/${A.id}/msg/${A.msg}/endpoint/${B.ep}/resend`],
        ['GET', `/app/${A.id}/msg/${A.msg}/attempt/${B.attempt}`],
        ['DELETE', `/app/${A.id}/msg/${A.msg}/attempt/${B.attempt}/content`],
        ['GET', `/app/${A.id}/attempt/msg/${A.msg}?endpoint_id=${B.ep}`],
      ] as const) {
        const r = await asA(method, path);
        expect(r.status, `${method} ${path}`).toBe(404);
        expectNoDataOfB(JSON.stringify(r.body), `${method} ${path}`);
      }
    });

    test('routes outside an application are 403 for app tokens, except reading event types', async () => {
      const global = ops.filter((o) => !o.path.includes('{app_id}') && o.path !== '/api/v1/openapi.json');
      const readable = new Set(['GET /api/v1/event-type', 'GET /api/v1/event-type/{event_type_name}']);
      expect(global.map((o) => `${o.method} ${o.path}`)).toEqual(expect.arrayContaining(['GET /api/v1/app', 'POST /api/v1/app', ...readable]));
      for (const o of global) {
        const key = `${o.method} ${o.path}`;
        const r = await asA(o.method, fill(o.path, A.id, A), bodyFor(o.method, o.path));
        if (readable.has(key)) {
          expect(r.status, key).toBe(200);
        } else {
          expect(r.status, `${key}: ${JSON.stringify(r.body)}`).toBe(403);
          expect(r.body.code).toBe('forbidden');
          expectNoDataOfB(JSON.stringify(r.body), key);
        }
      }
      expect((await asA('GET', '/event-type')).body.data.map((e: { name: string }) => e.name)).toContain(EVENT);
      // Nothing was made or changed by the refused calls.
      expect((await admin('GET', '/event-type/made.by.app')).status).toBe(404);
      expect((await admin('GET', `/event-type/${EVENT}`)).body.description).toBe('a user signed up');
      expect((await admin('GET', '/app')).body.data).toHaveLength(2);
    });

    test('the app token may read its application but not change, delete or create applications', async () => {
      expect((await asA('GET', `/app/${A.uid}`)).body.id).toBe(A.id);
      for (const [method, body] of [['PUT', { name: 'x' }], ['PATCH', { name: 'x' }], ['DELETE', undefined]] as const) {
        const r = await asA(method, `/app/${A.id}`, body);
        expect(r.status, method).toBe(403);
      }
      // Creating through PUT with a new uid, or through a message with `application`: 404, nothing made.
      expect((await asA('PUT', '/app/tenant-c', { name: 'C' })).status).toBe(404);
      expect((await asA('POST', '/app/tenant-c/msg', { eventType: EVENT, payload: {}, application: { name: 'C' } })).status).toBe(404);
      expect((await admin('GET', '/app/tenant-c')).status).toBe(404);
      expect((await admin('GET', `/app/${A.id}`)).body.name).toBe('Tenant A');
    });

    test("B's idempotency key is not replayed to the token of A", async () => {
      const key = 'idem-b-1';
      const first = await admin('POST', `/app/${B.id}/msg`, { eventType: EVENT, payload: { n: 1 } }, { 'idempotency-key': key });
      expect(first.status).toBe(202);
      const replay = await asA('POST', `/app/${B.id}/msg`, { eventType: EVENT, payload: { n: 1 } }, { 'idempotency-key': key });
      expect(replay.status).toBe(404);
      expect(replay.headers.get('idempotent-replayed')).toBeNull();
      expectNoDataOfB(JSON.stringify(replay.body) + first.body.id, 'replay');
      expect(JSON.stringify(replay.body)).not.toContain(first.body.id);
    });

    test('no token, a wrong token, and another scheme are 401 on an application route', async () => {
      for (const auth of [undefined, 'Bearer hl_wrong', `Basic ${Buffer.from('x:y').toString('base64')}`, 'Bearer']) {
        const r = await fetch(`${s.url}/api/v1/app/${B.id}/endpoint/${B.ep}/secret`, { headers: auth ? { authorization: auth } : {} });
        expect(r.status, String(auth)).toBe(401);
        expectNoDataOfB(await r.text(), String(auth));
      }
    });

    test("after all that, B is as it was", async () => {
      const app = await admin('GET', `/app/${B.id}`);
      expect(app.body).toMatchObject({ name: 'Tenant B', uid: 'tenant-b' });
      const eps = await admin('GET', `/app/${B.id}/endpoint`);
      expect(eps.body.data.map((e: { id: string }) => e.id)).toEqual([B.ep]);
      expect(eps.body.data[0]).toMatchObject({ url: `${receiver.url}/b`, description: 'Tenant B endpoint', disabled: false });
      expect((await admin('GET', `/app/${B.id}/endpoint/${B.ep}/secret`)).body.key).toBe(B.secret);
      expect((await admin('GET', `/app/${B.id}/endpoint/${B.ep}/headers`)).body.headers).toEqual({ 'x-b-private': B_HEADER_VALUE });
      // B's messages: the first, and the one posted by the admin with an idempotency key; none from A.
      const msgs = await admin('GET', `/app/${B.id}/msg`);
      expect(msgs.body.data).toHaveLength(2);
      expect(msgs.body.data.some((m: { payload: Record<string, unknown> }) => m.payload.from === 'A')).toBe(false);
      const msg = await admin('GET', `/app/${B.id}/msg/${B.msg}`);
      expect(msg.body.payload).toEqual({ tenant: 'Tenant B' });
      const attempts = await admin('GET', `/app/${B.id}/attempt/msg/${B.msg}`);
      expect(attempts.body.data).toHaveLength(1);
      expect(attempts.body.data[0].response).not.toBe('');
      // The admin token is a different one from A's, and still reaches everything.
      expect(TEST_TOKEN).not.toBe('');
    });
  });
});
