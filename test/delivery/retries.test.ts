import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { eventually, freePort, startServer, type TestServer } from '../helpers/server.js';
import { at, attemptsOf, destination, expectAllSigned, getEndpoint, header, makeEndpoint, send, settled, sleep, Status } from './support.js';

/** The nth request (0-based) this receiver got on `path`, counting the current one. */
const nth = (rx: Receiver, path: string) => at(rx.requests, path).length - 1;

describe('outcomes and the retry schedule', () => {
  const SCHEDULE = [0.1, 0.2, 0.1];
  let s: TestServer;
  let rx: Receiver;
  beforeAll(async () => {
    s = await startServer({ retrySchedule: SCHEDULE });
    rx = await startReceiver((req) => {
      switch (req.path) {
        case '/flaky':
          return nth(rx, '/flaky') === 0 ? { status: 500, body: 'try again' } : { status: 200, body: 'done' };
        case '/down':
          return { status: 500, body: 'still down' };
        case '/gone':
          return { status: 410, body: 'gone' };
        case '/redirect':
          return { status: 302, headers: { location: `${rx.url}/elsewhere` } };
        case '/big':
          return { status: 200, body: 'x'.repeat(50_000) + 'THE-END' };
        case '/not-found':
          return { status: 404, body: 'nope' };
        default:
          return { status: 200, body: 'ok' };
      }
    });
  });
  afterAll(async () => {
    await rx.close();
    await s.close();
  });

  test('a 500 then a 200: a failed attempt, then a successful one, and the delivery succeeds', async () => {
    const t = await makeEndpoint(s.api, 'retry', { url: `${rx.url}/flaky` });
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { flaky: 1 } });
    const attempts = await settled(s.api, t.app, msgId, t.ep, Status.success);
    expect(attempts.map((a) => [a.status, a.responseStatusCode, a.response, a.triggerType])).toEqual([
      [Status.fail, 500, 'try again', 0],
      [Status.success, 200, 'done', 0],
    ]);
    for (const a of attempts) {
      expect(a.url).toBe(`${rx.url}/flaky`);
      expect(a.msgId).toBe(msgId);
      expect(a.endpointId).toBe(t.ep);
      expect(a.responseDurationMs).toBeGreaterThanOrEqual(0);
    }
    const epMsgs = await s.api('GET', `/app/${t.app}/endpoint/${t.ep}/msg`);
    expect(epMsgs.body.data.map((m: { id: string; status: number }) => [m.id, m.status])).toEqual([[msgId, Status.success]]);
    expect(await destination(s.api, t.app, msgId, t.ep)).toEqual({ status: Status.success, nextAttempt: null });
    expect((await getEndpoint(s.api, t.app, t.ep)).disabled).toBe(false);
    expectAllSigned(t.secret, at(rx.requests, '/flaky'));
  });

  test('exhausted retries end failed after schedule length + 1 attempts; the endpoint stays enabled', async () => {
    const t = await makeEndpoint(s.api, 'retry', { url: `${rx.url}/down` });
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { down: 1 } });
    const attempts = await settled(s.api, t.app, msgId, t.ep, Status.fail);
    expect(attempts).toHaveLength(SCHEDULE.length + 1);
    for (const a of attempts) expect([a.status, a.responseStatusCode, a.response, a.triggerType]).toEqual([Status.fail, 500, 'still down', 0]);
    // Attempts are spread out by the schedule (lower bound with the 20 % jitter, generous for timer slack).
    const reqs = at(rx.requests, '/down');
    for (let i = 1; i < reqs.length; i++) expect(reqs[i]!.at - reqs[i - 1]!.at).toBeGreaterThanOrEqual(SCHEDULE[i - 1]! * 1000 * 0.8 - 20);
    await sleep(1000);
    expect(at(rx.requests, '/down')).toHaveLength(SCHEDULE.length + 1);
    expect(await destination(s.api, t.app, msgId, t.ep)).toEqual({ status: Status.fail, nextAttempt: null });
    // Failing for minutes is far from endpointDisableAfterHours (default 120 h).
    expect((await getEndpoint(s.api, t.app, t.ep)).disabled).toBe(false);
    expect(new Set(reqs.map((r) => header(r, 'webhook-id')))).toEqual(new Set([msgId]));
    expectAllSigned(t.secret, reqs);
  });

  test('a 4xx other than 410 and 429 is retried like any failure', async () => {
    const t = await makeEndpoint(s.api, 'retry', { url: `${rx.url}/not-found` });
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { nf: 1 } });
    const attempts = await settled(s.api, t.app, msgId, t.ep, Status.fail);
    expect(attempts.map((a) => a.responseStatusCode)).toEqual([404, 404, 404, 404]);
    expectAllSigned(t.secret, at(rx.requests, '/not-found'));
  });

  test('410 Gone disables the endpoint and stops the retries', async () => {
    const t = await makeEndpoint(s.api, 'gone', { url: `${rx.url}/gone` });
    const witness = await makeEndpoint(s.api, 'gone', { url: `${rx.url}/witness` });
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { gone: 1 } });
    const attempts = await settled(s.api, t.app, msgId, t.ep, Status.fail);
    expect(attempts.map((a) => [a.status, a.responseStatusCode])).toEqual([[Status.fail, 410]]);
    expect((await getEndpoint(s.api, t.app, t.ep)).disabled).toBe(true);
    await sleep(1000);
    expect(at(rx.requests, '/gone')).toHaveLength(1);
    expect((await attemptsOf(s.api, t.app, msgId, t.ep))).toHaveLength(1);

    // Later messages skip it: the witness endpoint of the same app gets the message, the disabled one does not.
    const later = await send(s.api, t.app, { eventType: 'a.b', payload: { gone: 2 } });
    await settled(s.api, t.app, later, witness.ep, Status.success);
    expect(await destination(s.api, t.app, later, t.ep)).toBeNull();
    expect(at(rx.requests, '/gone')).toHaveLength(1);
    expectAllSigned(t.secret, at(rx.requests, '/gone'));
    expectAllSigned(witness.secret, at(rx.requests, '/witness'));
  });

  test('redirects are not followed and count as failures', async () => {
    const t = await makeEndpoint(s.api, 'redirect', { url: `${rx.url}/redirect` });
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { r: 1 } });
    const attempts = await settled(s.api, t.app, msgId, t.ep, Status.fail);
    expect(attempts).toHaveLength(SCHEDULE.length + 1);
    for (const a of attempts) expect([a.status, a.responseStatusCode]).toEqual([Status.fail, 302]);
    expect(at(rx.requests, '/elsewhere')).toHaveLength(0);
    expect(at(rx.requests, '/redirect')).toHaveLength(SCHEDULE.length + 1);
    expectAllSigned(t.secret, at(rx.requests, '/redirect'));
  });

  test('connection refused: failed attempts with status code 0 and the network error as response', async () => {
    const port = await freePort(); // nothing listens there
    const t = await makeEndpoint(s.api, 'refused', { url: `http://127.0.0.1:${port}/hook` });
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { refused: 1 } });
    const attempts = await settled(s.api, t.app, msgId, t.ep, Status.fail);
    expect(attempts).toHaveLength(SCHEDULE.length + 1);
    for (const a of attempts) {
      expect([a.status, a.responseStatusCode]).toEqual([Status.fail, 0]);
      expect(a.response).toMatch(/ECONNREFUSED/);
    }
    const byClass = await s.api('GET', `/app/${t.app}/attempt/endpoint/${t.ep}?status_code_class=0`);
    expect(byClass.body.data).toHaveLength(SCHEDULE.length + 1);
  });

  test('a large response body is stored truncated to 20 kB', async () => {
    const t = await makeEndpoint(s.api, 'big', { url: `${rx.url}/big` });
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { big: 1 } });
    const [a, ...rest] = await settled(s.api, t.app, msgId, t.ep, Status.success);
    expect(rest).toHaveLength(0);
    expect(a!.responseStatusCode).toBe(200);
    expect(a!.response).toBe('x'.repeat(20 * 1024));
    const one = await s.api('GET', `/app/${t.app}/msg/${msgId}/attempt/${a!.id}`);
    expect(one.body.response).toHaveLength(20 * 1024);
    expectAllSigned(t.secret, at(rx.requests, '/big'));
  });
});

describe('Retry-After', () => {
  let s: TestServer;
  let rx: Receiver;
  beforeAll(async () => {
    // The scheduled retry is 48 s or more away: an early retry can only come from Retry-After.
    s = await startServer({ retrySchedule: [60, 60] });
    rx = await startReceiver((req) => {
      const first = nth(rx, req.path) === 0;
      switch (req.path) {
        case '/429':
          return first ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 };
        case '/503-date':
          return first ? { status: 503, headers: { 'retry-after': new Date(Date.now() + 2000).toUTCString() } } : { status: 200 };
        case '/500':
          return { status: 500, headers: { 'retry-after': '1' } };
        case '/429-huge':
          return { status: 429, headers: { 'retry-after': String(100 * 86400) } };
        default:
          return { status: 200 };
      }
    });
  });
  afterAll(async () => {
    await rx.close();
    await s.close();
  });

  test('on 429 and 503 it is honoured; on 500 it is ignored; a huge one is clamped', async () => {
    const e429 = await makeEndpoint(s.api, 'ra', { url: `${rx.url}/429` });
    const e503 = await makeEndpoint(s.api, 'ra', { url: `${rx.url}/503-date` });
    const e500 = await makeEndpoint(s.api, 'ra', { url: `${rx.url}/500` });
    const huge = await makeEndpoint(s.api, 'ra', { url: `${rx.url}/429-huge` });
    const msgId = await send(s.api, e429.app, { eventType: 'a.b', payload: { ra: 1 } });

    const a429 = await settled(s.api, e429.app, msgId, e429.ep, Status.success, 30_000);
    expect(a429.map((a) => a.responseStatusCode)).toEqual([429, 200]);
    const a503 = await settled(s.api, e503.app, msgId, e503.ep, Status.success, 30_000);
    expect(a503.map((a) => a.responseStatusCode)).toEqual([503, 200]);
    // Not earlier than asked (HTTP dates have whole-second resolution, hence the wider margin there).
    const gap = (path: string) => at(rx.requests, path)[1]!.at - at(rx.requests, path)[0]!.at;
    expect(gap('/429')).toBeGreaterThanOrEqual(950);
    expect(gap('/503-date')).toBeGreaterThanOrEqual(900);

    // 500 with Retry-After: 1 waits for the schedule instead (60 s ± 20 %).
    expect(at(rx.requests, '/500')).toHaveLength(1);
    const d500 = await destination(s.api, e500.app, msgId, e500.ep);
    expect(d500!.status).toBe(Status.pending);
    expect(Date.parse(d500!.nextAttempt!) - Date.now()).toBeGreaterThan(30_000);

    // 100 days are clamped to at most 24 h.
    const dHuge = await destination(s.api, huge.app, msgId, huge.ep);
    expect(dHuge!.status).toBe(Status.pending);
    const wait = Date.parse(dHuge!.nextAttempt!) - Date.now();
    expect(wait).toBeGreaterThan(23 * 3600_000);
    expect(wait).toBeLessThanOrEqual(24 * 3600_000);

    expectAllSigned(e429.secret, at(rx.requests, '/429'));
    expectAllSigned(e503.secret, at(rx.requests, '/503-date'));
    expectAllSigned(e500.secret, at(rx.requests, '/500'));
  });
});

describe('request timeout', () => {
  let s: TestServer;
  let rx: Receiver;
  beforeAll(async () => {
    s = await startServer({ requestTimeoutMs: 300, retrySchedule: [0.1] });
    rx = await startReceiver(() => ({ status: 200, body: 'too late', delayMs: 5000 }));
  });
  afterAll(async () => {
    await rx.close();
    await s.close();
  });

  test('a receiver slower than requestTimeoutMs gives failed attempts with status code 0', async () => {
    const t = await makeEndpoint(s.api, 'timeout', { url: `${rx.url}/slow` });
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { slow: 1 } });
    const attempts = await settled(s.api, t.app, msgId, t.ep, Status.fail, 30_000);
    expect(attempts).toHaveLength(2);
    for (const a of attempts) {
      expect([a.status, a.responseStatusCode]).toEqual([Status.fail, 0]);
      expect(a.response).toMatch(/time/i);
      // Gave up at the timeout rather than waiting for the 5 s reply.
      expect(a.responseDurationMs).toBeGreaterThanOrEqual(250);
      expect(a.responseDurationMs).toBeLessThan(4500);
    }
    expect(rx.requests).toHaveLength(2);
    expectAllSigned(t.secret, rx.requests);
  });
});

describe('endpointDisableAfterHours: 0', () => {
  let s: TestServer;
  let rx: Receiver;
  beforeAll(async () => {
    s = await startServer({ endpointDisableAfterHours: 0, retrySchedule: [0.1, 0.1, 0.1] });
    rx = await startReceiver((req) => (req.path === '/fails' ? { status: 500 } : { status: 200 }));
  });
  afterAll(async () => {
    await rx.close();
    await s.close();
  });

  test('an endpoint is disabled by its first failure; its pending retry ends without a request', async () => {
    const t = await makeEndpoint(s.api, 'dah', { url: `${rx.url}/fails` });
    const healthy = await makeEndpoint(s.api, 'dah', { url: `${rx.url}/fine` });
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { d: 1 } });
    const attempts = await settled(s.api, t.app, msgId, t.ep, Status.fail);
    expect(attempts.map((a) => a.responseStatusCode)).toEqual([500]);
    expect((await getEndpoint(s.api, t.app, t.ep)).disabled).toBe(true);
    await settled(s.api, t.app, msgId, healthy.ep, Status.success);
    await sleep(800);
    expect(at(rx.requests, '/fails')).toHaveLength(1);
    // A successful endpoint is not touched.
    expect((await getEndpoint(s.api, t.app, healthy.ep)).disabled).toBe(false);
    expectAllSigned(t.secret, at(rx.requests, '/fails'));

    // Re-enabled, it gets new messages again.
    const patch = await s.api('PATCH', `/app/${t.app}/endpoint/${t.ep}`, { disabled: false });
    expect(patch.body.disabled).toBe(false);
    const next = await send(s.api, t.app, { eventType: 'a.b', payload: { d: 2 } });
    await eventually(() => at(rx.requests, '/fails').length === 2, 10_000, 'delivery after re-enabling');
    await settled(s.api, t.app, next, t.ep, Status.fail);
    expect((await getEndpoint(s.api, t.app, t.ep)).disabled).toBe(true);
  });
});
