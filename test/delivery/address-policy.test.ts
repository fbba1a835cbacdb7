import { afterAll, beforeAll, expect, test } from 'vitest';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startServer, type TestServer } from '../helpers/server.js';

/** allowedSubnets: [] is the production default: only global addresses may be dialled. */
let s: TestServer;
let rx: Receiver;
let port: string;
beforeAll(async () => {
  s = await startServer({ allowedSubnets: [], retrySchedule: [0.1] });
  rx = await startReceiver();
  port = new URL(rx.url).port;
});
afterAll(async () => {
  await rx.close();
  await s.close();
});

test.each([
  ['loopback', `http://127.0.0.1:PORT/hook`],
  ['loopback, another address of 127/8', `http://127.1.2.3:PORT/hook`],
  ['IPv6 loopback', `http://[::1]:PORT/hook`],
  ['IPv4-mapped IPv6 loopback', `http://[::ffff:127.0.0.1]:PORT/hook`],
  ['private', 'http://10.1.2.3/hook'],
  ['private 192.168', 'http://192.168.0.10/hook'],
  ['link-local metadata', 'http://169.254.169.254/latest/meta-data'],
  ['unspecified', 'http://0.0.0.0:PORT/hook'],
  ['CGNAT', 'http://100.64.0.1/hook'],
  ['IPv6 unique local', 'http://[fd00::1]/hook'],
])('an endpoint at an IP literal that is not global (%s) is refused with 422', async (_name, template) => {
  const url = template.replace('PORT', port);
  const app = await s.api('POST', '/app', { name: 'ssrf' });
  const r = await s.api('POST', `/app/${app.body.id}/endpoint`, { url });
  expect(r.status).toBe(422);
  expect(JSON.stringify(r.body.detail)).toMatch(/not public/);
  // Changing an existing endpoint's URL is checked the same way.
  const ok = await s.api('POST', `/app/${app.body.id}/endpoint`, { url: 'https://example.com/hook' });
  expect(ok.status).toBe(201);
  expect((await s.api('PATCH', `/app/${app.body.id}/endpoint/${ok.body.id}`, { url })).status).toBe(422);
  expect((await s.api('PUT', `/app/${app.body.id}/endpoint/${ok.body.id}`, { url })).status).toBe(422);
});

test('localhost is refused at save time, by name; names are judged again by what they resolve to at dial time (test/security/ssrf.test.ts)', async () => {
  const app = await s.api('POST', '/app', { name: 'ssrf-name' });
  for (const host of ['localhost', 'localhost.', 'LOCALHOST']) {
    const r = await s.api('POST', `/app/${app.body.id}/endpoint`, { url: `http://${host}:${port}/hook` });
    expect(r.status).toBe(422);
    expect(JSON.stringify(r.body.detail)).toMatch(/localhost is this machine \(loopback\), not public/);
  }
  // Nothing reached the receiver, although it was listening.
  expect(rx.requests).toHaveLength(0);
});
