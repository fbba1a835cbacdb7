import { describe, expect, test } from 'vitest';
import { matches } from '../../src/domain/filter.js';

const ep = (eventTypes: string[] | null, channels: string[] | null, disabled = false) => ({ eventTypes, channels, disabled });

describe('endpoint filtering', () => {
  test('no filters take everything', () => {
    expect(matches(ep(null, null), 'user.signup', null)).toBe(true);
    expect(matches(ep(null, null), 'user.signup', ['a'])).toBe(true);
  });
  test('event types', () => {
    expect(matches(ep(['user.signup'], null), 'user.signup', null)).toBe(true);
    expect(matches(ep(['user.signup'], null), 'user.deleted', null)).toBe(false);
    expect(matches(ep([], null), 'anything', null)).toBe(true);
  });
  test('channels: at least one in common', () => {
    expect(matches(ep(null, ['a', 'b']), 'x', ['b', 'c'])).toBe(true);
    expect(matches(ep(null, ['a']), 'x', ['c'])).toBe(false);
    expect(matches(ep(null, ['a']), 'x', null)).toBe(false);
  });
  test('both filters must pass; disabled takes nothing', () => {
    expect(matches(ep(['t'], ['a']), 't', ['a'])).toBe(true);
    expect(matches(ep(['t'], ['a']), 'u', ['a'])).toBe(false);
    expect(matches(ep(['t'], ['a']), 't', ['b'])).toBe(false);
    expect(matches(ep(null, null, true), 't', null)).toBe(false);
  });
});
