import { expect, test } from 'vitest';
import { isId, newId } from '../../src/ids.js';

test('ids are prefixed, fixed-length and sort in creation order', () => {
  const ids = Array.from({ length: 5000 }, () => newId('msg'));
  for (const id of ids) {
    expect(id).toMatch(/^msg_[0-9A-Za-z]{24}$/);
    expect(isId('msg', id)).toBe(true);
  }
  expect([...ids].sort()).toEqual(ids);
  expect(new Set(ids).size).toBe(ids.length);
  const earlier = newId('app');
  expect(newId('app', Date.now() + 1000) > earlier).toBe(true);
  // After a later timestamp, ids stay increasing even if the clock says otherwise.
  expect(newId('app') > newId('app', Date.now() - 60_000)).toBe(false);
  expect(isId('msg', 'my-uid')).toBe(false);
});
