import { rmSync } from 'node:fs';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startHooklane, type Hooklane } from '../../src/hooklane.js';
import { apiClient, tempDir, testConfig, TEST_TOKEN, type Api } from '../helpers/server.js';
import { isHttpError, raw } from './support.js';

/**
 * Security headers on every answer, request ids in x-request-id and in the
 * log lines of that request, and no token ever in the logs.
 */

let hl: Hooklane;
let api: Api;
let dir: string;
const lines: string[] = [];
const logs = () => lines.map((l) => JSON.parse(l) as Record<string, any>);

beforeAll(async () => {
  dir = tempDir();
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
  hl = await startHooklane(testConfig(dir, { logLevel: 'debug' }), { logger });
  api = apiClient(hl.url);
  expect((await api('POST', '/app', { name: 'Headers', uid: 'hdrs' })).status).toBe(201);
});
afterAll(async () => {
  await hl?.close();
  rmSync(dir, { recursive: true, force: true });
});

const expectSecurityHeaders = (h: Record<string, string | string[] | undefined>, what: string) => {
  expect(h['x-content-type-options'], what).toBe('nosniff');
  expect(h['x-frame-options'], what).toBe('DENY');
  expect(h['content-security-policy'], what).toContain("frame-ancestors 'none'");
  expect(h['content-security-policy'], what).toContain("default-src 'none'");
  expect(h['referrer-policy'], what).toBe('no-referrer');
  expect(h['cache-control'], what).toBe('no-store');
  expect(h['strict-transport-security'], `${what}: HSTS only with TLS`).toBeUndefined();
  expect(h['x-request-id'], what).toMatch(/^req_[0-9a-f]{32}$/);
};

describe('security headers', () => {
  test.each([
    ['200', 'GET', '/api/v1/app', {}],
    ['201', 'POST', '/api/v1/app', { body: '{"name":"h"}', headers: { 'content-type': 'application/json' } }],
    ['204 health', 'GET', '/api/v1/health', { anonymous: true }],
    ['401', 'GET', '/api/v1/app', { anonymous: true }],
    ['404 entity', 'GET', '/api/v1/app/nope', {}],
    ['404 route', 'GET', '/api/v1/nothing/here', {}],
    ['422', 'POST', '/api/v1/app', { body: '{"name":5}', headers: { 'content-type': 'application/json' } }],
    ['400 JSON', 'POST', '/api/v1/app', { body: '{"name":', headers: { 'content-type': 'application/json' } }],
    ['400 UTF-8', 'POST', '/api/v1/app', { body: Buffer.from([0x7b, 0xff, 0x7d]), headers: { 'content-type': 'application/json' } }],
    ['413', 'POST', '/api/v1/app', { body: `{"name":"${'x'.repeat(1024 * 1024)}"}`, headers: { 'content-type': 'application/json' } }],
    ['415', 'POST', '/api/v1/app', { body: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
    ['400 bad escape', 'GET', '/api/v1/app/%E0%A4%A', {}],
    ['414-ish long id', 'GET', `/api/v1/app/${'a'.repeat(600)}`, {}],
    ['openapi', 'GET', '/api/v1/openapi.json', { anonymous: true }],
  ] as const)('%s: %s %s', async (what, method, path, opts) => {
    const r = await raw(hl.url, method, path, opts as any);
    expectSecurityHeaders(r.headers, what);
    if (r.status >= 400) expect(r.headers['content-type'], what).toMatch(/^application\/json/);
  });

  test('request ids are ours and differ per request; a client-sent x-request-id is not echoed', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) ids.add((await api('GET', '/app')).headers.get('x-request-id')!);
    expect(ids.size).toBe(20);
    const r = await raw(hl.url, 'GET', '/api/v1/app', { headers: { 'x-request-id': 'forged-id' } });
    expect(r.headers['x-request-id']).not.toBe('forged-id');
    expect(r.headers['x-request-id']).toMatch(/^req_/);
  });
});

describe('request logging', () => {
  test('an internal error is logged at error with the request id the client saw; the answer is a bare 500', async () => {
    const original = hl.store.listApps.bind(hl.store);
    hl.store.listApps = async () => {
      throw new Error('boom: simulated store failure');
    };
    try {
      lines.length = 0;
      const r = await raw(hl.url, 'GET', '/api/v1/app?limit=5');
      expect(r.status).toBe(500);
      expect(r.body).toEqual({ code: 'internal_error', detail: 'internal server error' });
      expect(r.text).not.toContain('boom');
      const id = r.headers['x-request-id'];
      const mine = logs().filter((l) => l.reqId === id);
      expect(mine.some((l) => l.level === 50 && l.err?.message?.includes('boom'))).toBe(true);
      expect(mine.find((l) => l.msg === 'request completed')).toMatchObject({ level: 50, statusCode: 500, method: 'GET', route: '/api/v1/app' });
    } finally {
      hl.store.listApps = original;
    }
  });

  test('client errors are logged at info with the route pattern, not the URL; successes at debug', async () => {
    lines.length = 0;
    const missing = await raw(hl.url, 'GET', '/api/v1/app/secret-looking-uid-123?iterator=abc');
    expect(missing.status).toBe(404);
    const ok = await raw(hl.url, 'GET', '/api/v1/app/hdrs');
    expect(ok.status).toBe(200);
    const byId = (id: unknown) => logs().find((l) => l.reqId === id && l.msg === 'request completed');
    expect(byId(missing.headers['x-request-id'])).toMatchObject({ level: 30, statusCode: 404, route: '/api/v1/app/:app_id' });
    expect(byId(ok.headers['x-request-id'])).toMatchObject({ level: 20, statusCode: 200 });
    expect(lines.join('\n')).not.toContain('secret-looking-uid-123');
  });

  test('bearer tokens, right or wrong, never reach the logs', async () => {
    lines.length = 0;
    await raw(hl.url, 'GET', '/api/v1/app');
    await raw(hl.url, 'GET', '/api/v1/app', { anonymous: true, headers: { authorization: 'Bearer leaked-token-0123456789' } });
    await raw(hl.url, 'POST', '/api/v1/app', { body: '{"name":', headers: { 'content-type': 'application/json' } });
    expect(lines.length).toBeGreaterThanOrEqual(3);
    const text = lines.join('\n');
    expect(text).not.toContain(TEST_TOKEN);
    expect(text).not.toContain('leaked-token-0123456789');
    expect(text.toLowerCase()).not.toContain('authorization');
  });

  test('an HTTP-level error (431) answers {code, detail} and the server stays up', async () => {
    const r = await raw(hl.url, 'GET', '/api/v1/app', { headers: { cookie: 'c'.repeat(20_000) } });
    expect(r.status).toBe(431);
    expect(isHttpError(r.body)).toBe(true);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect((await fetch(`${hl.url}/api/v1/health`)).status).toBe(204);
  });
});
