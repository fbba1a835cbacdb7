import { randomFillSync } from 'node:crypto';

// Base62 in ASCII order, so that string order equals numeric order and ids
// sort by creation time (list pagination relies on it).
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export type IdPrefix = 'app' | 'ep' | 'msg' | 'atmpt' | 'src' | 'dlv' | 'qtask' | 'tok';

/** Fixed-width base62 of a non-negative integer below 2^53. */
function base62(value: number, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = ALPHABET[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

// Random bytes are drawn from a pool: one syscall per 4 KiB instead of per id.
const pool = Buffer.alloc(4096);
let poolAt = pool.length;
function randomChars(n: number): string {
  let out = '';
  while (out.length < n) {
    if (poolAt >= pool.length) {
      randomFillSync(pool);
      poolAt = 0;
    }
    const b = pool[poolAt++]!;
    if (b < 248) out += ALPHABET[b % 62]; // 248 = 4 * 62: no modulo bias
  }
  return out;
}

const COUNTER_SPACE = 62 ** 5;
let lastMs = 0;
let counter = 0;

/**
 * `<prefix>_` + 8 chars of milliseconds + 5 chars of counter + 11 random
 * chars. Within one millisecond the counter (starting at a random point)
 * keeps ids increasing, so ids made by one process are strictly monotonic.
 */
export function newId(prefix: IdPrefix, now = Date.now()): string {
  if (now <= lastMs) {
    now = lastMs;
    counter++;
    if (counter >= COUNTER_SPACE) {
      // Over 900 million ids in one millisecond: borrow the next one.
      now = ++lastMs;
      counter = 0;
    }
  } else {
    lastMs = now;
    counter = Math.floor(Math.random() * (COUNTER_SPACE / 2));
  }
  return `${prefix}_${base62(now, 8)}${base62(counter, 5)}${randomChars(11)}`;
}

/** True when `value` looks like an id of that prefix (otherwise it is a uid). */
export function isId(prefix: IdPrefix, value: string): boolean {
  return value.startsWith(prefix + '_') && value.length === prefix.length + 25;
}
