import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Received } from '../helpers/receiver.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { at, expectAllSigned, header, makeEndpoint, secretOf, send, settled, signedBy, sleep, Status, type Target } from './support.js';

let s: TestServer;
let rx: Receiver;
beforeAll(async () => {
  s = await startServer();
  rx = await startReceiver();
});
afterAll(async () => {
  await rx.close();
  await s.close();
});

/** Sends one message to the endpoint and returns the request that reached `path`. */
async function deliverOne(t: Target, path: string): Promise<Received> {
  const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { at: Date.now() } });
  await settled(s.api, t.app, msgId, t.ep, Status.success);
  const req = at(rx.requests, path).find((r) => header(r, 'webhook-id') === msgId);
  expect(req).toBeDefined();
  return req!;
}

const signatures = (req: Received) => header(req, 'webhook-signature').split(' ');

async function rotate(t: Target, body: Record<string, unknown>): Promise<string> {
  const r = await s.api('POST', `/app/${t.app}/endpoint/${t.ep}/secret/rotate`, body);
  expect(r.status).toBe(204);
  const next = await secretOf(s.api, t.app, t.ep);
  expect(next).not.toBe(t.secret);
  return next;
}

test('during the grace period a delivery carries two signatures: one per secret', async () => {
  const t = await makeEndpoint(s.api, 'rotate', { url: `${rx.url}/grace` });
  const oldSecret = t.secret;
  const before = await deliverOne(t, '/grace');
  expect(signatures(before)).toHaveLength(1);
  expectAllSigned(oldSecret, [before]);

  const newSecret = await rotate(t, {});
  const req = await deliverOne(t, '/grace');
  const sigs = signatures(req);
  expect(sigs).toHaveLength(2);
  for (const sig of sigs) expect(sig).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
  // Each signature alone: exactly one verifies with the new secret and the other with the old one.
  const byNew = sigs.filter((sig) => signedBy(newSecret, req, sig));
  const byOld = sigs.filter((sig) => signedBy(oldSecret, req, sig));
  expect(byNew).toHaveLength(1);
  expect(byOld).toHaveLength(1);
  expect(byNew[0]).not.toBe(byOld[0]);
  // A receiver holding either secret accepts the whole header.
  expectAllSigned(newSecret, [req]);
  expectAllSigned(oldSecret, [req]);
});

test('rotating to a given key with gracePeriodSeconds 0: only the new secret signs', async () => {
  const t = await makeEndpoint(s.api, 'rotate', { url: `${rx.url}/no-grace` });
  const oldSecret = t.secret;
  const given = 'whsec_' + Buffer.from('0123456789abcdef0123456789abcdef').toString('base64');
  expect(await rotate(t, { key: given, gracePeriodSeconds: 0 })).toBe(given);
  const req = await deliverOne(t, '/no-grace');
  expect(signatures(req)).toHaveLength(1);
  expect(signedBy(given, req)).toBe(true);
  expect(signedBy(oldSecret, req)).toBe(false);
});

test('the old secret stops signing when its grace period ends', async () => {
  const t = await makeEndpoint(s.api, 'rotate', { url: `${rx.url}/short-grace` });
  const oldSecret = t.secret;
  const newSecret = await rotate(t, { gracePeriodSeconds: 1 });
  const during = await deliverOne(t, '/short-grace');
  expect(signatures(during)).toHaveLength(2);
  expect(signedBy(oldSecret, during)).toBe(true);
  await sleep(1300);
  const after = await deliverOne(t, '/short-grace');
  expect(signatures(after)).toHaveLength(1);
  expect(signedBy(newSecret, after)).toBe(true);
  expect(signedBy(oldSecret, after)).toBe(false);
});
