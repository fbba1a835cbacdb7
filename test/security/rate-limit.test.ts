import { afterEach, describe, expect, test } from 'vitest';
import { rateLimitKey, TokenBucketStore } from '../../src/api/rate-limit.js';
import { loadConfig } from '../../src/config.js';
import { apiClient, startServer, type TestServer } from '../helpers/server.js';
import { raw } from './support.js';

/** API rate limiting per token: a token bucket, 429 {code, detail} with Retry-After. */

describe('the token bucket', () => {
  test('a full bucket gives `burst` requests, then refills at the rate', () => {
    let now = 0;
    const b = new TokenBucketStore(10, 5, 100, () => now);
    const takes = Array.from({ length: 6 }, () => b.take('k'));
    expect(takes.slice(0, 5).every((t) => t.current <= 5)).toBe(true);
    expect(takes.map((t) => 5 - t.current)).toEqual([4, 3, 2, 1, 0, -1]);
    // Empty: the next token comes in 100 ms (10/s).
    expect(takes[5]!.current).toBe(6);
    expect(takes[5]!.ttl).toBe(100);
    now = 50;
    expect(b.take('k').current).toBe(6);
    now = 100;
    expect(b.take('k').current).toBeLessThanOrEqual(5);
    expect(b.take('k').current).toBe(6);
    // A long pause refills to the burst, not beyond.
    now = 60_000;
    expect(Array.from({ length: 7 }, () => b.take('k').current <= 5)).toEqual([true, true, true, true, true, false, false]);
  });

  test('buckets are per key, and the least recently used ones are dropped past maxKeys', () => {
    const now = 0;
    const b = new TokenBucketStore(1, 1, 2, () => now);
    expect(b.take('a').current).toBe(1);
    expect(b.take('a').current).toBe(2);
    expect(b.take('b').current).toBe(1);
    expect(b.take('c').current).toBe(1); // drops a, the least recently used
    expect(b.take('a').current).toBe(1);
  });

  test('the key is a hash of the bearer token, never the token', () => {
    const req = (authorization?: string) => ({ headers: authorization ? { authorization } : {}, ip: '10.1.2.3' }) as any;
    const k = rateLimitKey(req('Bearer secret-token-value'));
    expect(k).toMatch(/^token:[A-Za-z0-9_-]{22}$/);
    expect(k).not.toContain('secret');
    expect(rateLimitKey(req('Bearer secret-token-value'))).toBe(k);
    expect(rateLimitKey(req('bearer  secret-token-value '))).toBe(k);
    expect(rateLimitKey(req('Bearer other'))).not.toBe(k);
    expect(rateLimitKey(req())).toBe('addr:10.1.2.3');
  });

  test('settings: HOOKLANE_RATE_LIMIT_PER_SECOND (default 5000, 0 disables) and HOOKLANE_RATE_LIMIT_BURST', () => {
    const d = loadConfig({}, {});
    expect(d.rateLimitPerSecond).toBe(5000);
    expect(d.rateLimitBurst).toBe(0);
    const c = loadConfig({}, { HOOKLANE_RATE_LIMIT_PER_SECOND: '0', HOOKLANE_RATE_LIMIT_BURST: '50' });
    expect(c.rateLimitPerSecond).toBe(0);
    expect(c.rateLimitBurst).toBe(50);
    expect(() => loadConfig({}, { HOOKLANE_RATE_LIMIT_PER_SECOND: '-1' })).toThrow(/HOOKLANE_RATE_LIMIT_PER_SECOND/);
    expect(() => loadConfig({}, { HOOKLANE_RATE_LIMIT_BURST: 'many' })).toThrow(/HOOKLANE_RATE_LIMIT_BURST/);
  });
});

describe('the API', () => {
  let s: TestServer | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  test('past the burst: 429 {code, detail} with Retry-After, then served again after it', async () => {
    s = await startServer({ rateLimitPerSecond: 2, rateLimitBurst: 5 });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await s.api('GET', '/app');
      statuses.push(r.status);
      expect(r.headers.get('x-ratelimit-limit')).toBe('5');
      expect(r.headers.get('x-ratelimit-remaining')).toBe(String(4 - i));
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    const limited = await s.api('POST', '/app', { name: 'not stored' });
    expect(limited.status).toBe(429);
    expect(limited.body).toEqual({ code: 'rate_limited', detail: expect.stringMatching(/retry in/) });
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(1);
    // The refused request did nothing, and the security headers are there on a 429 too.
    expect(limited.headers.get('x-content-type-options')).toBe('nosniff');
    expect(limited.headers.get('x-request-id')).toMatch(/^req_/);
    await new Promise((r) => setTimeout(r, retryAfter * 1000));
    const again = await s.api('GET', '/app');
    expect(again.status).toBe(200);
    expect(again.body.data).toEqual([]);
  });

  test('each token has its own bucket; requests without a token are limited per address', async () => {
    s = await startServer({ rateLimitPerSecond: 1, rateLimitBurst: 3 });
    for (let i = 0; i < 3; i++) expect((await s.api('GET', '/app')).status).toBe(200);
    expect((await s.api('GET', '/app')).status).toBe(429);
    // Another token is not limited by the first one's use (it is refused for what it is: 401).
    const other = apiClient(s.url, 'another-token');
    for (let i = 0; i < 3; i++) expect((await other('GET', '/app')).status).toBe(401);
    expect((await other('GET', '/app')).status).toBe(429);
    // No token at all: by address.
    for (let i = 0; i < 3; i++) expect((await raw(s.url, 'GET', '/api/v1/app', { anonymous: true })).status).toBe(401);
    const anon = await raw(s.url, 'GET', '/api/v1/app', { anonymous: true });
    expect(anon.status).toBe(429);
    expect(anon.body.code).toBe('rate_limited');
  });

  test('health checks are never limited', async () => {
    s = await startServer({ rateLimitPerSecond: 1, rateLimitBurst: 1 });
    for (let i = 0; i < 20; i++) expect((await fetch(`${s.url}/api/v1/health`)).status).toBe(204);
  });

  test('0 turns the limit off', async () => {
    s = await startServer({ rateLimitPerSecond: 0, rateLimitBurst: 1 });
    const results = await Promise.all(Array.from({ length: 200 }, () => s!.api('GET', '/app')));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(results[0]!.headers.get('x-ratelimit-limit')).toBeNull();
  });

  test('the default (5000/s, bursts of 10000) lets an ordinary client through', async () => {
    s = await startServer();
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => s!.api('POST', '/app', { name: `a${i}` })));
    expect(results.filter((r) => r.status !== 201)).toEqual([]);
    expect(results[0]!.headers.get('x-ratelimit-limit')).toBe('10000');
  });
});
