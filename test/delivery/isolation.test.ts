import { afterEach, beforeEach, expect, test } from 'vitest';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { eventually, startServer, type TestServer } from '../helpers/server.js';
import { at, attemptsOf, expectAllSigned, header, makeEndpoint, send, Status } from './support.js';

/**
 * One endpoint never answers and has a backlog; the others must not wait for
 * it. The request timeout is far longer than the test, so the hanging
 * requests stay open throughout.
 */
const CONCURRENCY = 2;
const BACKLOG = 40;
const HEALTHY = 200;

let s: TestServer;
let receivers: Receiver[] = [];
beforeEach(async () => {
  s = await startServer({ endpointConcurrency: CONCURRENCY, requestTimeoutMs: 120_000 });
});
afterEach(async () => {
  // Receivers first: that ends the hanging requests, so the server can stop.
  await Promise.all(receivers.map((r) => r.close()));
  receivers = [];
  await s.close();
});

async function receiver(respond?: Receiver['respond']): Promise<Receiver> {
  const r = await startReceiver(respond);
  receivers.push(r);
  return r;
}

async function sendMany(app: string, n: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  // A few at a time, in order.
  for (let i = 0; i < n; i += 10) {
    ids.push(...(await Promise.all(Array.from({ length: Math.min(10, n - i) }, (_, j) => send(s.api, app, { eventType: 'a.b', payload: { tag, i: i + j } })))));
  }
  return ids;
}

async function scenario(hangRx: Receiver, hangPath: string, okRx: Receiver, okPath: string): Promise<void> {
  const stuck = await makeEndpoint(s.api, 'iso-stuck', { url: `${hangRx.url}${hangPath}` });
  const healthy = await makeEndpoint(s.api, 'iso-healthy', { url: `${okRx.url}${okPath}` });
  // The stuck app also has a healthy endpoint: the backlog's other deliveries must not wait either.
  const sibling = await makeEndpoint(s.api, 'iso-stuck', { url: `${okRx.url}/sibling` });

  const backlog = await sendMany(stuck.app, BACKLOG, 'stuck');
  // The stuck endpoint's slots fill up and stay full.
  await eventually(() => at(hangRx.requests, hangPath).length >= CONCURRENCY, 20_000, 'the stuck endpoint to be busy');

  const ids = await sendMany(healthy.app, HEALTHY, 'healthy');
  const seen = () => new Set(at(okRx.requests, okPath).map((r) => header(r, 'webhook-id')));
  await eventually(() => ids.every((id) => seen().has(id)), 60_000, `all ${HEALTHY} healthy deliveries`);
  const siblingSeen = () => new Set(at(okRx.requests, '/sibling').map((r) => header(r, 'webhook-id')));
  await eventually(() => backlog.every((id) => siblingSeen().has(id)), 60_000, `all ${BACKLOG} sibling deliveries`);

  // Meanwhile the stuck endpoint is still stuck: no more requests than its slots, none answered, nothing recorded.
  expect(at(hangRx.requests, hangPath)).toHaveLength(CONCURRENCY);
  const stuckAttempts = await s.api('GET', `/app/${stuck.app}/attempt/endpoint/${stuck.ep}`);
  expect(stuckAttempts.body.data).toHaveLength(0);
  const states = await s.api('GET', `/app/${stuck.app}/endpoint/${stuck.ep}/msg?limit=250`);
  const counts = { sending: 0, pending: 0 };
  for (const m of states.body.data as { status: number }[]) {
    if (m.status === Status.sending) counts.sending++;
    else if (m.status === Status.pending) counts.pending++;
  }
  expect(counts).toEqual({ sending: CONCURRENCY, pending: BACKLOG - CONCURRENCY });

  // Every healthy delivery succeeded on its first attempt (none timed out waiting behind the stuck one).
  for (const id of ids.slice(0, 20)) expect((await attemptsOf(s.api, healthy.app, id, healthy.ep)).map((a) => a.responseStatusCode)).toEqual([200]);
  expectAllSigned(healthy.secret, at(okRx.requests, okPath));
  expectAllSigned(sibling.secret, at(okRx.requests, '/sibling'));
  expectAllSigned(stuck.secret, at(hangRx.requests, hangPath));
}

test('a hanging endpoint on its own host does not hold up other endpoints', async () => {
  const hangRx = await receiver(() => ({ hang: true }));
  const okRx = await receiver();
  await scenario(hangRx, '/hang', okRx, '/ok');
}, 150_000);

test('a hanging endpoint does not hold up other endpoints on the same host (shared connection pool)', async () => {
  const shared = await receiver((req) => (req.path === '/hang' ? { hang: true } : { status: 200, body: 'ok' }));
  await scenario(shared, '/hang', shared, '/ok');
}, 150_000);
