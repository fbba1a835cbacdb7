import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { VERSION } from '../../src/version.js';
import { at, expectAllSigned, header, makeEndpoint, send, settled, Status, verifyWith } from './support.js';

describe('delivery headers and body', () => {
  let s: TestServer;
  let rx: Receiver;
  beforeAll(async () => {
    s = await startServer();
    // The first request to /retry fails so that the retry can be compared with it.
    rx = await startReceiver((req) => (req.path === '/retry' && rx.requests.filter((r) => r.path === '/retry').length === 1 ? { status: 500 } : { status: 200, body: 'ok' }));
  });
  afterAll(async () => {
    await rx.close();
    await s.close();
  });

  test('a delivery is signed, typed and carries the stored payload byte for byte', async () => {
    const t = await makeEndpoint(s.api, 'hdr', { url: `${rx.url}/plain` });
    const payload = { type: 'invoice.paid', amount: 12.5, nested: { list: [1, 'two', null, true], empty: {} }, text: 'héllo "quoted" \u2603 \n line', big: 12345678901234 };
    const before = Math.floor(Date.now() / 1000);
    const msgId = await send(s.api, t.app, { eventType: 'invoice.paid', payload });
    await settled(s.api, t.app, msgId, t.ep, Status.success);
    const after = Math.ceil(Date.now() / 1000);
    const [req] = at(rx.requests, '/plain');
    expect(req).toBeDefined();
    expect(req!.method).toBe('POST');
    expect(header(req!, 'webhook-id')).toBe(msgId);
    const ts = Number(header(req!, 'webhook-timestamp'));
    expect(header(req!, 'webhook-timestamp')).toMatch(/^\d+$/);
    expect(ts).toBeGreaterThanOrEqual(before);
    expect(ts).toBeLessThanOrEqual(after);
    expect(header(req!, 'webhook-signature')).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(verifyWith(t.secret, req!)).toEqual(payload);
    expect(header(req!, 'content-type')).toBe('application/json');
    expect(header(req!, 'user-agent').startsWith('Hooklane/')).toBe(true);
    expect(header(req!, 'user-agent')).toBe(`Hooklane/${VERSION}`);
    // Without svixHeaders only the webhook-* set is sent.
    expect(req!.headers['svix-id']).toBeUndefined();
    expect(req!.headers['svix-signature']).toBeUndefined();

    // The body is the stored payload JSON exactly: the same text the API returns for the message.
    expect(req!.body).toBe(JSON.stringify(payload));
    const stored = await s.api('GET', `/app/${t.app}/msg/${msgId}`);
    expect(stored.status).toBe(200);
    expect(req!.body).toBe(JSON.stringify(stored.body.payload));
  });

  test('a signature made with another secret does not verify (the check has teeth)', async () => {
    const t = await makeEndpoint(s.api, 'hdr', { url: `${rx.url}/other-secret` });
    const other = await makeEndpoint(s.api, 'hdr', { url: `${rx.url}/unused` });
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { a: 1 } });
    await settled(s.api, t.app, msgId, t.ep, Status.success);
    const [req] = at(rx.requests, '/other-secret');
    expect(() => verifyWith(t.secret, req!)).not.toThrow();
    expect(() => verifyWith(other.secret, req!)).toThrow();
    // Tampering with the body breaks it too.
    expect(() => verifyWith(t.secret, { ...req!, body: req!.body.replace('1', '2') })).toThrow();
  });

  test('webhook-id stays the message id on every retry, with a fresh valid signature each time', async () => {
    const t = await makeEndpoint(s.api, 'hdr-retry', { url: `${rx.url}/retry` });
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { retry: true } });
    const attempts = await settled(s.api, t.app, msgId, t.ep, Status.success);
    expect(attempts.map((a) => a.responseStatusCode)).toEqual([500, 200]);
    const reqs = at(rx.requests, '/retry');
    expect(reqs).toHaveLength(2);
    expect(reqs.map((r) => header(r, 'webhook-id'))).toEqual([msgId, msgId]);
    expect(reqs[0]!.body).toBe(reqs[1]!.body);
    expectAllSigned(t.secret, reqs);
  });

  test('custom endpoint headers are sent alongside the signature headers', async () => {
    const t = await makeEndpoint(s.api, 'hdr-custom', { url: `${rx.url}/custom` });
    const put = await s.api('PUT', `/app/${t.app}/endpoint/${t.ep}/headers`, { headers: { 'X-Tenant': 'acme', Authorization: 'Bearer secret-token' } });
    expect(put.status).toBe(204);
    const patch = await s.api('PATCH', `/app/${t.app}/endpoint/${t.ep}/headers`, { headers: { 'x-extra': 'yes', 'X-Tenant': 'acme-2' } });
    expect(patch.status).toBe(204);
    // Our own headers cannot be overridden.
    const reserved = await s.api('PATCH', `/app/${t.app}/endpoint/${t.ep}/headers`, { headers: { 'webhook-id': 'forged' } });
    expect(reserved.status).toBe(422);
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload: { h: 1 } });
    await settled(s.api, t.app, msgId, t.ep, Status.success);
    const [req] = at(rx.requests, '/custom');
    expect(header(req!, 'x-tenant')).toBe('acme-2');
    expect(header(req!, 'authorization')).toBe('Bearer secret-token');
    expect(header(req!, 'x-extra')).toBe('yes');
    expect(header(req!, 'webhook-id')).toBe(msgId);
    expect(header(req!, 'content-type')).toBe('application/json');
    expectAllSigned(t.secret, [req!]);
  });
});

describe('svixHeaders: true', () => {
  let s: TestServer;
  let rx: Receiver;
  beforeAll(async () => {
    s = await startServer({ svixHeaders: true });
    rx = await startReceiver();
  });
  afterAll(async () => {
    await rx.close();
    await s.close();
  });

  test('svix-id, svix-timestamp and svix-signature are sent too and verify', async () => {
    const t = await makeEndpoint(s.api, 'svix', { url: `${rx.url}/svix` });
    const payload = { svix: 'compatible' };
    const msgId = await send(s.api, t.app, { eventType: 'a.b', payload });
    await settled(s.api, t.app, msgId, t.ep, Status.success);
    const [req] = rx.requests;
    expect(header(req!, 'svix-id')).toBe(msgId);
    expect(header(req!, 'svix-timestamp')).toBe(header(req!, 'webhook-timestamp'));
    expect(header(req!, 'svix-signature')).toBe(header(req!, 'webhook-signature'));
    expect(verifyWith(t.secret, req!, 'svix')).toEqual(payload);
    expect(verifyWith(t.secret, req!, 'webhook')).toEqual(payload);
  });
});
