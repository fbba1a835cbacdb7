import { Webhook } from 'standardwebhooks';
import { ApiException, MessageAttemptTriggerType, MessageStatus, Svix } from 'svix';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startReceiver, type Received, type Receiver } from '../helpers/receiver.js';
import { eventually, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.js';

/**
 * The official Svix SDK, pointed at Hooklane with only `serverUrl` changed,
 * drives a whole flow: the API must be wire-compatible for this to pass.
 */
let s: TestServer;
let rx: Receiver;
let svix: Svix;
beforeAll(async () => {
  s = await startServer();
  rx = await startReceiver();
  svix = new Svix(TEST_TOKEN, { serverUrl: s.url });
});
afterAll(async () => {
  await s.close();
  await rx.close();
});

const verify = (secret: string, req: Received) => new Webhook(secret).verify(req.body, req.headers as Record<string, string>);
const forMessage = (msgId: string) => rx.requests.filter((r) => r.headers['webhook-id'] === msgId);
/** Waits for the first delivery of a message. */
async function deliveryOf(msgId: string) {
  await eventually(() => forMessage(msgId).length > 0, 10_000, `a delivery of ${msgId}`);
  return forMessage(msgId)[0]!;
}
/** Waits until a message has `count` attempts; returns them, newest first. */
async function attemptsOf(appId: string, msgId: string, count: number) {
  const list = async () => (await svix.messageAttempt.listByMsg(appId, msgId)).data;
  await eventually(async () => (await list()).length >= count, 10_000, `${count} attempts of ${msgId}`);
  return list();
}

describe('a full flow through the SDK', () => {
  const appUid = 'sdk-app';
  let endpointId: string;
  let msgId: string;
  let firstSecret: string;

  test('health', async () => {
    await expect(svix.health.get()).resolves.toBeUndefined();
  });

  test('create an application, an event type and an endpoint', async () => {
    const app = await svix.application.create({ name: 'SDK app', uid: appUid, metadata: { tier: 'pro' } });
    expect(app.id).toMatch(/^app_/);
    expect(app.uid).toBe(appUid);
    expect(app.createdAt).toBeInstanceOf(Date);
    expect((await svix.application.get(appUid)).id).toBe(app.id);
    expect((await svix.application.getOrCreate({ name: 'ignored', uid: appUid })).id).toBe(app.id);

    const et = await svix.eventType.create({ name: 'invoice.paid', description: 'An invoice was paid' });
    expect(et.name).toBe('invoice.paid');
    expect((await svix.eventType.list()).data.map((e) => e.name)).toContain('invoice.paid');

    // The SDK calls the event type filter `filterTypes` (the Svix server's alias of `eventTypes`).
    const ep = await svix.endpoint.create(appUid, { url: `${rx.url}/sdk`, uid: 'sdk-ep', filterTypes: ['invoice.paid'], description: 'SDK endpoint' });
    expect(ep.id).toMatch(/^ep_/);
    expect(ep.filterTypes).toEqual(['invoice.paid']);
    endpointId = ep.id;
    expect((await svix.endpoint.get(appUid, 'sdk-ep')).id).toBe(ep.id);
    expect((await svix.endpoint.list(appUid)).data.map((e) => e.id)).toEqual([ep.id]);

    firstSecret = (await svix.endpoint.getSecret(appUid, endpointId)).key;
    expect(firstSecret).toMatch(/^whsec_/);
  });

  test('send a message; it is delivered, signed, and its attempt listed', async () => {
    const msg = await svix.message.create(appUid, { eventType: 'invoice.paid', eventId: 'inv-1', payload: { invoice: 1, amount: 990 } });
    expect(msg.id).toMatch(/^msg_/);
    expect(msg.payload).toEqual({ invoice: 1, amount: 990 });
    msgId = msg.id;

    const attempts = await attemptsOf(appUid, msgId, 1);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ msgId, endpointId, status: MessageStatus.Success, responseStatusCode: 200, triggerType: MessageAttemptTriggerType.Scheduled });

    const got = forMessage(msgId);
    expect(got).toHaveLength(1);
    expect(got[0]!.path).toBe('/sdk');
    expect(verify(firstSecret, got[0]!)).toEqual({ invoice: 1, amount: 990 });

    expect((await svix.message.get(appUid, 'inv-1')).id).toBe(msgId);
    expect((await svix.message.list(appUid, { eventTypes: ['invoice.paid'] })).data.map((m) => m.id)).toEqual([msgId]);
    const byEndpoint = await svix.messageAttempt.listByEndpoint(appUid, endpointId);
    expect(byEndpoint.data.map((a) => a.id)).toEqual([attempts[0]!.id]);
    const dest = await svix.messageAttempt.listAttemptedDestinations(appUid, msgId);
    expect(dest.data).toHaveLength(1);
    expect(dest.data[0]).toMatchObject({ id: endpointId, status: MessageStatus.Success });
    expect((await svix.messageAttempt.get(appUid, msgId, attempts[0]!.id)).id).toBe(attempts[0]!.id);
  });

  test('a message of another event type is not sent to the endpoint', async () => {
    const other = await svix.message.create(appUid, { eventType: 'invoice.voided', payload: {} });
    const marker = await svix.message.create(appUid, { eventType: 'invoice.paid', payload: { marker: true } });
    await eventually(() => forMessage(marker.id).length === 1, 10_000, 'the marker delivery');
    expect(forMessage(other.id)).toHaveLength(0);
    expect((await svix.messageAttempt.listByMsg(appUid, other.id)).data).toEqual([]);
  });

  test('resend makes a manual attempt with the same webhook-id', async () => {
    await svix.messageAttempt.resend(appUid, msgId, endpointId);
    const attempts = await attemptsOf(appUid, msgId, 2);
    // Newest first.
    expect(attempts.map((a) => a.triggerType)).toEqual([MessageAttemptTriggerType.Manual, MessageAttemptTriggerType.Scheduled]);
    expect(attempts[0]!.status).toBe(MessageStatus.Success);
    const got = forMessage(msgId);
    expect(got).toHaveLength(2);
    expect(got[1]!.body).toBe(got[0]!.body);
    expect(verify(firstSecret, got[1]!)).toEqual({ invoice: 1, amount: 990 });
  });

  test('rotate the secret: the new one signs, the old one still verifies during the grace period', async () => {
    await svix.endpoint.rotateSecret(appUid, endpointId, {});
    const second = (await svix.endpoint.getSecret(appUid, endpointId)).key;
    expect(second).toMatch(/^whsec_/);
    expect(second).not.toBe(firstSecret);

    const msg = await svix.message.create(appUid, { eventType: 'invoice.paid', payload: { after: 'rotation' } });
    const got = await deliveryOf(msg.id);
    expect(verify(second, got)).toEqual({ after: 'rotation' });
    expect(verify(firstSecret, got)).toEqual({ after: 'rotation' });
    expect(() => verify('whsec_' + Buffer.from('an unrelated secret, 32 bytes!!!').toString('base64'), got)).toThrow();
  });

  test('rotate to a chosen key with no grace period: the replaced key stops signing at once', async () => {
    const chosen = 'whsec_' + Buffer.from('the chosen next key, 32 bytes!!!').toString('base64');
    const second = (await svix.endpoint.getSecret(appUid, endpointId)).key;
    await svix.endpoint.rotateSecret(appUid, endpointId, { key: chosen, gracePeriodSeconds: 0 });
    expect((await svix.endpoint.getSecret(appUid, endpointId)).key).toBe(chosen);
    const msg = await svix.message.create(appUid, { eventType: 'invoice.paid', payload: { chosen: true } });
    const got = await deliveryOf(msg.id);
    expect(verify(chosen, got)).toEqual({ chosen: true });
    expect(() => verify(second, got)).toThrow();
  });

  test('stats reflect the deliveries', async () => {
    const settled = async () => {
      const st = await svix.endpoint.getStats(appUid, endpointId);
      return st.pending === 0 && st.sending === 0;
    };
    await eventually(settled, 10_000, 'settled stats');
    // Four messages were for this endpoint (a resend reuses its delivery): the first, the marker, two after rotations.
    expect(await svix.endpoint.getStats(appUid, endpointId)).toMatchObject({ success: 4, fail: 0 });
  });

  test('update, patch and delete through the SDK', async () => {
    const updated = await svix.application.update(appUid, { name: 'SDK app v2' });
    expect(updated.name).toBe('SDK app v2');
    const patched = await svix.endpoint.patch(appUid, endpointId, { description: 'patched' });
    expect(patched.description).toBe('patched');
    await svix.endpoint.updateHeaders(appUid, endpointId, { headers: { 'X-Custom': '1', Authorization: 'Bearer x' } });
    expect(await svix.endpoint.getHeaders(appUid, endpointId)).toEqual({ headers: { 'X-Custom': '1' }, sensitive: ['Authorization'] });
    await svix.endpoint.delete(appUid, endpointId);
    await expect(svix.endpoint.get(appUid, endpointId)).rejects.toMatchObject({ code: 404 });
    await svix.application.delete(appUid);
    await expect(svix.application.get(appUid)).rejects.toMatchObject({ code: 404 });
  });
});

describe('SDK errors', () => {
  test('404, 409 and 422 surface as ApiException with the response body', async () => {
    const notFound = await svix.application.get('sdk-missing').catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(ApiException);
    expect(notFound).toMatchObject({ code: 404, body: { code: 'not_found' } });

    await svix.application.create({ name: 'taken', uid: 'sdk-taken' });
    await expect(svix.application.create({ name: 'again', uid: 'sdk-taken' })).rejects.toMatchObject({ code: 409 });

    const invalid = await svix.application.create({ name: '' }).catch((e: unknown) => e);
    expect(invalid).toMatchObject({ code: 422 });
    expect((invalid as ApiException<any>).body.detail[0].loc).toEqual(['body', 'name']);
  });

  test('a wrong token is 401', async () => {
    const bad = new Svix('wrong-token', { serverUrl: s.url });
    await expect(bad.application.list()).rejects.toMatchObject({ code: 401 });
  });
});
