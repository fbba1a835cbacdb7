import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Standard Webhooks signatures, symmetric flavour: `v1,` + base64
 * HMAC-SHA256 over `id.timestamp.body`, keyed with the base64-decoded part of
 * a `whsec_` secret.
 */
export const SECRET_PREFIX = 'whsec_';
const SECRET_PATTERN = /^(whsec_)?[a-zA-Z0-9+/=]{32,100}$/;

export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(24).toString('base64');
}

/** Accepts the contract's format, normalises it to carry the prefix. */
export function normaliseSecret(secret: string): string {
  if (!SECRET_PATTERN.test(secret)) throw new Error('secret must be base64, 32 to 100 characters, optionally prefixed with whsec_');
  return secret.startsWith(SECRET_PREFIX) ? secret : SECRET_PREFIX + secret;
}

export function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
}

export function signedContent(id: string, timestampSeconds: number, body: string): string {
  return `${id}.${timestampSeconds}.${body}`;
}

export function sign(secret: string | Buffer, id: string, timestampSeconds: number, body: string): string {
  const key = typeof secret === 'string' ? secretKey(secret) : secret;
  return 'v1,' + createHmac('sha256', key).update(signedContent(id, timestampSeconds, body)).digest('base64');
}

export class VerificationError extends Error {}

export interface VerifyOptions {
  toleranceSeconds?: number;
  now?: number;
}

/** Verifies a `webhook-signature` header against one secret; throws on failure. */
export function verify(
  secret: string,
  headers: { id: string; timestamp: string; signature: string },
  body: string,
  opts: VerifyOptions = {},
): void {
  const tolerance = opts.toleranceSeconds ?? 300;
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  const ts = Number(headers.timestamp);
  if (!/^\d+$/.test(headers.timestamp) || !Number.isSafeInteger(ts)) throw new VerificationError('invalid timestamp');
  if (Math.abs(now - ts) > tolerance) throw new VerificationError('timestamp outside tolerance');
  const expected = Buffer.from(sign(secret, headers.id, ts, body).slice(3), 'base64');
  for (const part of headers.signature.split(' ')) {
    const [version, value] = part.split(',', 2);
    if (version !== 'v1' || value === undefined) continue;
    const given = Buffer.from(value, 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return;
  }
  throw new VerificationError('no matching signature');
}
