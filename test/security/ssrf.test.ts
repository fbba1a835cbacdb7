import { createServer, type Server } from 'node:http';
import type { LookupAddress } from 'node:dns';
import { getDefaultAutoSelectFamily } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Config } from '../../src/config.js';
import { HttpClient } from '../../src/delivery/http.js';
import { AddressPolicy, type Resolver } from '../../src/delivery/ssrf.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { freePort, startServer, tempDir, type Api, type TestServer } from '../helpers/server.js';
import { makeEndpoint, send, settled, Status } from '../delivery/support.js';

/**
 * Outbound SSRF guard, end to end: refused at save time (422 on body.url) and
 * again at dial time (a failed attempt, nothing reaching the target). Only
 * loopback ever receives traffic here.
 */

const expect422 = async (api: Api, method: string, path: string, body: Record<string, unknown>, why: RegExp) => {
  const r = await api(method, path, body);
  expect(r.status, `${method} ${JSON.stringify(body)}: ${JSON.stringify(r.body)}`).toBe(422);
  expect(r.body.detail).toHaveLength(1);
  const [item] = r.body.detail;
  expect(item.loc).toEqual(['body', 'url']);
  expect(item.type).toBe('value_error');
  expect(item.msg).toMatch(why);
};

describe('save time, with the production default (no allowed subnets)', () => {
  let s: TestServer;
  let app: string;
  beforeAll(async () => {
    s = await startServer({ allowedSubnets: [] });
    app = (await s.api('POST', '/app', { name: 'ssrf-save', uid: 'ssrf-save' })).body.id;
  });
  afterAll(() => s.close());

  test.each([
    // loopback in every spelling
    ['http://127.0.0.1/hook', /127\.0\.0\.1 is not public \(loopback\)/],
    ['http://127.1/hook', /127\.0\.0\.1 is not public \(loopback\)/],
    ['http://2130706433/hook', /127\.0\.0\.1 is not public/],
    ['http://0x7f.0.0.1/hook', /127\.0\.0\.1 is not public/],
    ['http://017700000001/hook', /127\.0\.0\.1 is not public/],
    ['http://[::1]:8080/hook', /::1 is not public \(loopback\)/],
    ['http://0.0.0.0:8080/hook', /0\.0\.0\.0 is not public \(unspecified/],
    ['http://localhost./hook', /localhost is this machine \(loopback\)/],
    ['http://localhost:3000/hook', /localhost is this machine/],
    ['http://app.localhost/hook', /app\.localhost is this machine/],
    // private, CGNAT, link-local, metadata
    ['http://10.0.0.1/hook', /private, RFC 1918/],
    ['http://172.16.5.4/hook', /private, RFC 1918/],
    ['http://192.168.1.1/hook', /private, RFC 1918/],
    ['http://100.64.0.1/hook', /CGNAT/],
    ['http://169.254.1.1/hook', /link-local/],
    ['http://169.254.169.254/latest/meta-data/iam/', /169\.254\.169\.254 is not public \(cloud metadata service\)/],
    ['http://[fd00:ec2::254]/latest/meta-data/', /cloud metadata service/],
    ['http://metadata.google.internal/computeMetadata/v1/', /metadata\.google\.internal is a cloud metadata service/],
    ['http://metadata.google.internal./computeMetadata/v1/', /metadata\.google\.internal is a cloud metadata service/],
    // other non-global ranges
    ['http://198.18.0.1/hook', /benchmarking/],
    ['http://240.0.0.1/hook', /reserved/],
    ['http://239.1.2.3/hook', /multicast/],
    ['http://255.255.255.255/hook', /broadcast/],
    ['http://[fc00::1]/hook', /unique local/],
    ['http://[fe80::1]/hook', /link-local/],
    ['http://[ff05::2]/hook', /multicast/],
    // IPv4-mapped and transition forms
    ['http://[::ffff:127.0.0.1]/hook', /IPv4-mapped form of 127\.0\.0\.1, loopback/],
    ['http://[::ffff:7f00:1]/hook', /IPv4-mapped form of 127\.0\.0\.1, loopback/],
    ['http://[::ffff:a9fe:a9fe]/hook', /IPv4-mapped form of 169\.254\.169\.254/],
    ['http://[64:ff9b::10.0.0.1]/hook', /NAT64 form of 10\.0\.0\.1/],
    ['http://[2002:c0a8:101::1]/hook', /6to4, deprecated, embedding 192\.168\.1\.1/],
    ['http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook', /Teredo/],
    // credentials and schemes
    ['https://user:secret@example.com/hook', /must not carry credentials/],
    ['https://token@example.com/hook', /must not carry credentials/],
    ['ftp://example.com/hook', /must use http or https/],
    ['file:///etc/passwd', /must use http or https/],
    ['gopher://example.com:70/_hook', /must use http or https/],
  ])('POST %s: 422', async (url, why) => {
    await expect422(s.api, 'POST', `/app/${app}/endpoint`, { url }, why);
  });

  test('PUT and PATCH check a new URL the same way', async () => {
    const ok = await s.api('POST', `/app/${app}/endpoint`, { url: 'https://example.com/hook' });
    expect(ok.status).toBe(201);
    for (const [url, why] of [['http://127.1/', /loopback/], ['http://metadata.google.internal/', /metadata/], ['http://[::ffff:10.0.0.1]/', /IPv4-mapped/]] as const) {
      await expect422(s.api, 'PATCH', `/app/${app}/endpoint/${ok.body.id}`, { url }, why);
      await expect422(s.api, 'PUT', `/app/${app}/endpoint/${ok.body.id}`, { url }, why);
      await expect422(s.api, 'PUT', `/app/${app}/endpoint/new-uid`, { url }, why);
    }
    expect((await s.api('GET', `/app/${app}/endpoint/${ok.body.id}`)).body.url).toBe('https://example.com/hook');
  });

  test.each(['https://example.com/hook', 'http://example.com:8080/hook', 'https://93.184.216.34/hook', 'https://[2606:4700:4700::1111]/hook'])(
    'a public destination is accepted: %s',
    async (url) => {
      expect((await s.api('POST', `/app/${app}/endpoint`, { url })).status).toBe(201);
    },
  );
});

describe('save time: Hooklane itself, HOOKLANE_PUBLIC_URL, HTTPS only', () => {
  let s: TestServer;
  let app: string;
  let own: number;
  beforeAll(async () => {
    s = await startServer({ allowedSubnets: ['127.0.0.0/8', '::1/128'], publicUrl: 'https://hooks.example.com' });
    own = Number(new URL(s.url).port);
    app = (await s.api('POST', '/app', { name: 'ssrf-self' })).body.id;
  });
  afterAll(() => s.close());

  test('its own listen port on a local address is refused, although loopback is allowed', async () => {
    for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', 'localhost.', '[::1]', '[::ffff:127.0.0.1]', '0.0.0.0']) {
      await expect422(s.api, 'POST', `/app/${app}/endpoint`, { url: `http://${host}:${own}/api/v1/app` }, new RegExp(`Hooklane itself \\(port ${own}`));
    }
    // Another loopback port is allowed here (loopback is open in this configuration).
    expect((await s.api('POST', `/app/${app}/endpoint`, { url: `http://127.0.0.1:${own === 65535 ? own - 1 : own + 1}/hook` })).status).toBe(201);
  });

  test('its public URL is refused, in any letter case and with a trailing dot', async () => {
    for (const url of ['https://hooks.example.com/api/v1/app/x/msg', 'https://HOOKS.Example.com./ingest', 'https://hooks.example.com:443/']) {
      await expect422(s.api, 'POST', `/app/${app}/endpoint`, { url }, /Hooklane itself \(HOOKLANE_PUBLIC_URL\)/);
    }
    expect((await s.api('POST', `/app/${app}/endpoint`, { url: 'https://hooks.example.com:8443/' })).status).toBe(201);
  });

  test('HOOKLANE_ENDPOINT_HTTPS_ONLY refuses http: at save time', async () => {
    const strict = await startServer({ allowedSubnets: [], endpointHttpsOnly: true });
    try {
      const a = (await strict.api('POST', '/app', { name: 'https-only' })).body.id;
      await expect422(strict.api, 'POST', `/app/${a}/endpoint`, { url: 'http://example.com/hook' }, /must use https: HOOKLANE_ENDPOINT_HTTPS_ONLY is on/);
      const ok = await strict.api('POST', `/app/${a}/endpoint`, { url: 'https://example.com/hook' });
      expect(ok.status).toBe(201);
      await expect422(strict.api, 'PATCH', `/app/${a}/endpoint/${ok.body.id}`, { url: 'http://example.com/hook' }, /HOOKLANE_ENDPOINT_HTTPS_ONLY/);
    } finally {
      await strict.close();
    }
  });
});

/**
 * Dial time, through the real dispatcher: endpoints saved under a permissive
 * policy, then delivered by a Hooklane restarted on the same database with a
 * stricter one (the situation of an operator tightening the settings, and of
 * a name whose records change after the save).
 */
describe('dial time: a saved endpoint is checked again on every delivery', () => {
  let rx: Receiver;
  let port: number;
  const servers: TestServer[] = [];
  beforeAll(async () => {
    rx = await startReceiver();
    port = Number(new URL(rx.url).port);
  });
  afterEach(async () => {
    while (servers.length) await servers.pop()!.close();
  });
  afterAll(() => rx.close());

  /** Saves endpoints with loopback allowed, then restarts with `then`; returns the second server and the endpoints. */
  async function savedThenServed(urls: string[], then: Partial<Config>) {
    const dir = tempDir();
    const first = await startServer({ allowedSubnets: ['127.0.0.0/8', '::1/128'] }, dir);
    const eps: { app: string; ep: string; url: string }[] = [];
    for (const url of urls) eps.push({ ...(await makeEndpoint(first.api, 'dial', { url })), url });
    await first.hl.close(); // keeps the database
    const second = await startServer({ retrySchedule: [], ...then }, dir);
    servers.push(second);
    return { s: second, eps };
  }

  test('names and IP literals that are not public end as failed attempts, and nothing reaches the target', async () => {
    const before = rx.requests.length;
    const { s, eps } = await savedThenServed(
      [`http://localhost:${port}/a`, `http://localhost.:${port}/b`, `http://127.0.0.1:${port}/c`, `http://127.1:${port}/d`, `http://[::ffff:127.0.0.1]:${port}/e`],
      { allowedSubnets: [] },
    );
    for (const { app, ep, url } of eps) {
      const msg = await send(s.api, app, { eventType: 'a.b', payload: { url } });
      const [a, ...more] = await settled(s.api, app, msg, ep, Status.fail);
      expect(more).toHaveLength(0);
      expect([a!.status, a!.responseStatusCode]).toEqual([Status.fail, 0]);
      if (url.includes('localhost.')) {
        // The system resolver may not answer for the absolute name at all; either way nothing is sent.
        expect(a!.response).toMatch(/localhost\. resolves to (127\.\d+\.\d+\.\d+|::1), which is not public|ENOTFOUND/);
      } else if (url.includes('localhost')) {
        expect(a!.response).toMatch(/localhost resolves to (127\.\d+\.\d+\.\d+|::1), which is not public \(loopback\)/);
      } else {
        expect(a!.response).toMatch(/is not public \((IPv4-mapped form of 127\.0\.0\.1, )?loopback\)/);
      }
    }
    expect(rx.requests.length).toBe(before);
  });

  test('an endpoint at Hooklane\'s own port is refused at delivery', async () => {
    const own = await freePort();
    const { s, eps } = await savedThenServed([`http://127.0.0.1:${own}/api/v1/health`, `http://localhost:${own}/api/v1/health`], { port: own });
    for (const { app, ep } of eps) {
      const msg = await send(s.api, app, { eventType: 'a.b', payload: { self: 1 } });
      const [a] = await settled(s.api, app, msg, ep, Status.fail);
      expect([a!.status, a!.responseStatusCode]).toEqual([Status.fail, 0]);
      expect(a!.response).toMatch(new RegExp(`Hooklane itself \\(port ${own}`));
    }
  });

  test('HOOKLANE_ENDPOINT_HTTPS_ONLY fails the delivery of an http: endpoint saved before it was turned on', async () => {
    const before = rx.requests.length;
    const { s, eps } = await savedThenServed([`http://127.0.0.1:${port}/plain`], { endpointHttpsOnly: true });
    const { app, ep } = eps[0]!;
    const msg = await send(s.api, app, { eventType: 'a.b', payload: { plain: 1 } });
    const [a] = await settled(s.api, app, msg, ep, Status.fail);
    expect([a!.status, a!.responseStatusCode]).toEqual([Status.fail, 0]);
    expect(a!.response).toMatch(/must use https: HOOKLANE_ENDPOINT_HTTPS_ONLY is on/);
    expect(rx.requests.length).toBe(before);
  });
});

describe('redirects are never followed', () => {
  let s: TestServer;
  let target: Receiver;
  let redirector: Receiver;
  beforeAll(async () => {
    s = await startServer({ allowedSubnets: ['127.0.0.0/8'], retrySchedule: [] });
    target = await startReceiver();
    redirector = await startReceiver((req) =>
      req.path === '/to-metadata'
        ? { status: 307, headers: { location: 'http://169.254.169.254/latest/meta-data/' } }
        : { status: 302, headers: { location: `${target.url}/stolen` } },
    );
  });
  afterAll(async () => {
    await redirector.close();
    await target.close();
    await s.close();
  });

  test.each(['/to-local', '/to-metadata'])('a redirect (%s) is a failed attempt with its 3xx status, and its target gets nothing', async (path) => {
    const t = await makeEndpoint(s.api, 'redirect', { url: `${redirector.url}${path}` });
    const msg = await send(s.api, t.app, { eventType: 'a.b', payload: { path } });
    const [a, ...more] = await settled(s.api, t.app, msg, t.ep, Status.fail);
    expect(more).toHaveLength(0);
    expect(a!.responseStatusCode).toBe(path === '/to-local' ? 302 : 307);
    expect(target.requests).toHaveLength(0);
  });
});

/**
 * The HTTP client with a resolver the test controls: the address checked is
 * the address dialled, names with mixed records are refused, and the
 * connected peer is checked once more.
 */
describe('dial time, with a controlled resolver', () => {
  const clients: HttpClient[] = [];
  const listeners: Server[] = [];
  afterEach(async () => {
    while (clients.length) await clients.pop()!.close();
    while (listeners.length) {
      const l = listeners.pop()!;
      l.closeAllConnections();
      await new Promise((r) => l.close(r));
    }
  });

  /** An HTTP server on `host`, counting requests. */
  async function listen(host: string, port = 0): Promise<{ port: number; hits: string[] }> {
    const hits: string[] = [];
    const server = createServer((req, res) => {
      hits.push(req.url ?? '');
      req.resume();
      req.on('end', () => res.end(`hello from ${host}`));
    });
    listeners.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    return { port: (server.address() as { port: number }).port, hits };
  }

  function resolverOf(answers: LookupAddress[][]) {
    const calls: string[] = [];
    const resolve: Resolver = (host, _options, cb) => {
      calls.push(host);
      setImmediate(() => cb(null, answers[Math.min(calls.length - 1, answers.length - 1)]!));
    };
    return { resolve, calls };
  }

  function client(policy: AddressPolicy, timeoutMs = 3000): HttpClient {
    const c = new HttpClient({ timeoutMs, maxResponseBytes: 1024, connectionsPerOrigin: 4, policy });
    clients.push(c);
    return c;
  }

  test('rebinding: one resolution per connection, checked and dialled; the second answer is never used', async () => {
    // 127.0.0.1 is allowed, 127.0.0.2 is not; both listen on the same port.
    const evil = await listen('127.0.0.2');
    const good = await listen('127.0.0.1', evil.port);
    const { resolve, calls } = resolverOf([[{ address: '127.0.0.1', family: 4 }], [{ address: '127.0.0.2', family: 4 }]]);
    const c = client(new AddressPolicy(['127.0.0.1/32'], { resolve }));
    const r = await c.post(`http://rebind.test:${good.port}/x`, {}, '{}');
    expect(r.error).toBeNull();
    expect([r.statusCode, r.body]).toEqual([200, 'hello from 127.0.0.1']);
    expect(calls).toEqual(['rebind.test']);
    expect(good.hits).toEqual(['/x']);
    // A new connection resolves again; the new answer is checked too.
    const r2 = await c.post(`http://rebind2.test:${good.port}/y`, {}, '{}');
    expect(r2.statusCode).toBe(0);
    expect(r2.error).toMatch(/rebind2\.test resolves to 127\.0\.0\.2, which is not public \(loopback\)/);
    expect(evil.hits).toHaveLength(0);
  });

  test('a name with mixed allowed and refused records is refused, whichever comes first', async () => {
    const l = await listen('127.0.0.1');
    for (const records of [
      [{ address: '127.0.0.1', family: 4 }, { address: '10.0.0.1', family: 4 }],
      [{ address: '169.254.169.254', family: 4 }, { address: '127.0.0.1', family: 4 }],
      [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }],
    ]) {
      const c = client(new AddressPolicy(['127.0.0.0/8'], { resolve: resolverOf([records]).resolve }));
      const r = await c.post(`http://mixed.test:${l.port}/`, {}, '{}');
      expect(r.statusCode).toBe(0);
      expect(r.error).toMatch(/EHOOKLANEBLOCKED: mixed\.test resolves to .*, which is not public/);
    }
    expect(l.hits).toHaveLength(0);
  });

  test('a name resolving to Hooklane\'s own port on this machine is refused after connecting, before any byte is sent', async () => {
    const l = await listen('127.0.0.1');
    const { resolve } = resolverOf([[{ address: '127.0.0.1', family: 4 }]]);
    const c = client(new AddressPolicy(['127.0.0.0/8'], { resolve, selfPorts: () => [l.port] }));
    const r = await c.post(`http://looks-public.test:${l.port}/`, {}, '{}');
    expect(r.error).toMatch(/127\.0\.0\.1:\d+ is Hooklane itself/);
    expect(l.hits).toHaveLength(0);
  });

  test('the system resolver, for real: localhost is refused unless loopback is allowed (Node asks with all: true for autoSelectFamily)', async () => {
    const l = await listen('127.0.0.1');
    const strict = client(new AddressPolicy([]));
    const refused = await strict.post(`http://localhost:${l.port}/no`, {}, '{}');
    expect(refused.statusCode).toBe(0);
    expect(refused.error).toMatch(/localhost resolves to (127\.\d+\.\d+\.\d+|::1), which is not public \(loopback\)/);
    // Records the options Node's socket passes to the lookup.
    const asked: { all?: boolean }[] = [];
    const policy = new AddressPolicy(['127.0.0.0/8', '::1/128']);
    const inner = policy.lookup;
    Object.defineProperty(policy, 'lookup', { value: (h: string, o: { all?: boolean }, cb: Parameters<typeof inner>[2]) => (asked.push(o), inner(h, o, cb)) });
    const ok = await client(policy).post(`http://localhost:${l.port}/yes`, {}, '{}');
    expect([ok.statusCode, ok.error]).toEqual([200, null]);
    expect(l.hits).toEqual(['/yes']);
    expect(asked).toHaveLength(1);
    if (getDefaultAutoSelectFamily()) expect(asked[0]!.all).toBe(true);
  });

  test('IP literals, which skip lookup, are checked; loopback allowed by subnet is reached', async () => {
    const l = await listen('127.0.0.1');
    const { resolve, calls } = resolverOf([[{ address: '127.0.0.1', family: 4 }]]);
    const strict = client(new AddressPolicy([], { resolve }));
    expect((await strict.post(`http://127.0.0.1:${l.port}/`, {}, '{}')).error).toMatch(/127\.0\.0\.1 is not public/);
    expect((await strict.post(`http://[::ffff:7f00:1]:${l.port}/`, {}, '{}')).error).toMatch(/IPv4-mapped form of 127\.0\.0\.1/);
    const open = client(new AddressPolicy(['127.0.0.0/8'], { resolve }));
    expect((await open.post(`http://127.0.0.1:${l.port}/ok`, {}, '{}')).statusCode).toBe(200);
    expect(calls).toHaveLength(0);
    expect(l.hits).toEqual(['/ok']);
  });
});
