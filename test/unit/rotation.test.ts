import { expect, test } from 'vitest';
import { currentKey, MAX_OLD_KEYS, rotate } from '../../src/domain/endpoint-rules.js';

test('rotation keeps the old key for the grace period, at most ten old keys', () => {
  const now = 1_000_000;
  let secrets = [{ key: 'k0', expiresAt: null as number | null }];
  secrets = rotate(secrets, 'k1', 60, now);
  expect(currentKey(secrets)).toBe('k1');
  expect(secrets).toEqual([{ key: 'k1', expiresAt: null }, { key: 'k0', expiresAt: now + 60_000 }]);
  // Grace 0: the old key is gone at once.
  expect(rotate(secrets, 'k2', 0, now + 1)).toEqual([{ key: 'k2', expiresAt: null }, { key: 'k0', expiresAt: now + 60_000 }]);
  // Expired keys are dropped.
  expect(rotate(secrets, 'k2', 60, now + 120_000).map((s) => s.key)).toEqual(['k2', 'k1']);
  for (let i = 2; i < 20; i++) secrets = rotate(secrets, `k${i}`, 3600, now + i);
  expect(secrets).toHaveLength(1 + MAX_OLD_KEYS);
  expect(secrets[0]!.key).toBe('k19');
});
