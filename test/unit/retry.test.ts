import { describe, expect, test } from 'vitest';
import { applyJitter, decide, MAX_RETRY_AFTER_SECONDS, nextDelayMs, parseRetryAfter } from '../../src/domain/retry.js';

const policy = { schedule: [5, 300, 1800], jitter: 0.2 };

describe('retry schedule', () => {
  test('jitter stays within ±20 % at the extremes and in between', () => {
    expect(applyJitter(1000, 0.2, () => 0)).toBe(800);
    expect(applyJitter(1000, 0.2, () => 0.999999)).toBe(1200);
    for (let i = 0; i < 10_000; i++) {
      const d = applyJitter(300_000, 0.2);
      expect(d).toBeGreaterThanOrEqual(240_000);
      expect(d).toBeLessThanOrEqual(360_000);
    }
  });

  test('delays follow the schedule, then run out', () => {
    const mid = () => 0.5;
    expect(nextDelayMs(policy, 1, mid)).toBe(5000);
    expect(nextDelayMs(policy, 2, mid)).toBe(300_000);
    expect(nextDelayMs(policy, 3, mid)).toBe(1_800_000);
    expect(nextDelayMs(policy, 4, mid)).toBeNull();
  });

  test('outcomes by status code', () => {
    const mid = () => 0.5;
    expect(decide(policy, 1, 200, undefined, false, mid)).toEqual({ kind: 'success' });
    expect(decide(policy, 1, 204, undefined, false, mid)).toEqual({ kind: 'success' });
    expect(decide(policy, 1, 410, undefined, false, mid)).toEqual({ kind: 'gone' });
    for (const code of [0, 301, 302, 400, 404, 500, 502]) {
      expect(decide(policy, 1, code, undefined, false, mid)).toEqual({ kind: 'retry', delayMs: 5000 });
    }
    expect(decide(policy, 4, 500, undefined, false, mid)).toEqual({ kind: 'failed' });
    expect(decide(policy, 1, 500, undefined, true, mid)).toEqual({ kind: 'failed' });
  });

  test('Retry-After is honoured on 429 and 503 only, within bounds', () => {
    const mid = () => 0.5;
    expect(decide(policy, 1, 429, '42', false, mid)).toEqual({ kind: 'retry', delayMs: 42_000 });
    expect(decide(policy, 1, 503, '7', false, mid)).toEqual({ kind: 'retry', delayMs: 7000 });
    expect(decide(policy, 1, 500, '42', false, mid)).toEqual({ kind: 'retry', delayMs: 5000 });
    expect(decide(policy, 1, 429, '99999999', false, mid)).toEqual({ kind: 'retry', delayMs: MAX_RETRY_AFTER_SECONDS * 1000 });
    // Exhausted retries stay exhausted whatever the receiver asks.
    expect(decide(policy, 4, 429, '1', false, mid)).toEqual({ kind: 'failed' });
  });

  test('Retry-After parsing', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(' 3 ')).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
  });
});
