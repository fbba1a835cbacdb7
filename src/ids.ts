import { randomBytes } from 'node:crypto';

// Base62 in ASCII order, so that string order equals numeric order and ids
// sort by creation time (list pagination relies on it).
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export type IdPrefix = 'app' | 'ep' | 'msg' | 'atmpt' | 'src' | 'dlv' | 'qtask';

function base62(value: bigint, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = ALPHABET[Number(value % 62n)] + out;
    value /= 62n;
  }
  return out;
}

let lastMs = 0;
let counter = 0n;

/**
 * `<prefix>_` + 8 chars of milliseconds + 16 chars of (counter, randomness).
 * Within one millisecond a process-local counter keeps ids increasing, so
 * ids made by one process are strictly monotonic.
 */
export function newId(prefix: IdPrefix, now = Date.now()): string {
  if (now <= lastMs) {
    now = lastMs;
    counter++;
  } else {
    lastMs = now;
    counter = BigInt(randomBytes(3).readUIntBE(0, 3));
  }
  const rand = BigInt('0x' + randomBytes(8).toString('hex'));
  const tail = (counter << 64n) | rand; // counter in the high bits keeps order
  return `${prefix}_${base62(BigInt(now), 8)}${base62(tail % 62n ** 16n, 16).padStart(16, '0')}`;
}

/** True when `value` looks like an id of that prefix (otherwise it is a uid). */
export function isId(prefix: IdPrefix, value: string): boolean {
  return value.startsWith(prefix + '_') && value.length === prefix.length + 25;
}
