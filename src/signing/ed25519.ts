import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { signedContent, VerificationError, type VerifyOptions } from './hmac.js';

/**
 * Standard Webhooks signatures, asymmetric flavour: `v1a,` + base64 ed25519
 * signature over `id.timestamp.body`.
 *
 * Key encodings (base64, standard alphabet, padding optional on input):
 * - `whsk_` private key: 64 bytes, seed followed by public key, the layout
 *   libsodium (crypto_sign_SECRETKEYBYTES) and Svix use. A bare 32-byte seed
 *   is accepted too and normalised to the 64-byte form; in the 64-byte form
 *   the public half must match the seed.
 * - `whpk_` public key: the raw 32-byte ed25519 public key.
 */
export const PRIVATE_PREFIX = 'whsk_';
export const PUBLIC_PREFIX = 'whpk_';
const SEED_BYTES = 32;
const PUBLIC_BYTES = 32;
const SIGNATURE_BYTES = 64;
/** PKCS#8 header of an ed25519 private key; the 32-byte seed follows it (RFC 8410). */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export class KeyFormatError extends Error {}

/** Strict base64: standard alphabet, optional padding, canonical (re-encodes to itself). */
function decodeBase64(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64').replace(/=+$/, '') === text.replace(/=+$/, '') ? bytes : null;
}

const b64url = (b: Buffer) => b.toString('base64url');

export interface Ed25519PrivateKey {
  key: KeyObject;
  seed: Buffer;
  publicKey: Buffer;
}

/** Parses a `whsk_` key (32-byte seed or 64-byte seed+public); throws KeyFormatError. */
export function parsePrivateKey(text: string): Ed25519PrivateKey {
  if (!text.startsWith(PRIVATE_PREFIX)) throw new KeyFormatError(`an ed25519 private key starts with ${PRIVATE_PREFIX}`);
  const raw = decodeBase64(text.slice(PRIVATE_PREFIX.length));
  if (!raw || (raw.length !== SEED_BYTES && raw.length !== SEED_BYTES + PUBLIC_BYTES)) {
    throw new KeyFormatError(`${PRIVATE_PREFIX} key must be base64 of a 32-byte ed25519 seed or a 64-byte seed+public key`);
  }
  const seed = raw.subarray(0, SEED_BYTES);
  if (raw.length === SEED_BYTES) {
    // Seed only: the public key is derived (PKCS#8 import, the slower path; only taken when a key is given).
    const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    return { key, seed, publicKey: Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url') };
  }
  const publicKey = raw.subarray(SEED_BYTES);
  // JWK import is much faster than DER under OpenSSL 3; node derives the public key from `d`, so compare it with the given half.
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(seed), x: b64url(publicKey) }, format: 'jwk' });
  const derived = Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url');
  if (!derived.equals(publicKey)) throw new KeyFormatError(`${PRIVATE_PREFIX} key: the public half does not match the seed`);
  return { key, seed, publicKey };
}

/** Parses a `whpk_` key; throws KeyFormatError. */
export function parsePublicKey(text: string): KeyObject {
  if (!text.startsWith(PUBLIC_PREFIX)) throw new KeyFormatError(`an ed25519 public key starts with ${PUBLIC_PREFIX}`);
  const raw = decodeBase64(text.slice(PUBLIC_PREFIX.length));
  if (!raw || raw.length !== PUBLIC_BYTES) throw new KeyFormatError(`${PUBLIC_PREFIX} key must be base64 of a 32-byte ed25519 public key`);
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(raw) }, format: 'jwk' });
  } catch {
    throw new KeyFormatError(`${PUBLIC_PREFIX} key is not a valid ed25519 public key`);
  }
}

/** The canonical (64-byte, padded) form of a `whsk_` key. */
export function normalisePrivateKey(text: string): string {
  const k = parsePrivateKey(text);
  return PRIVATE_PREFIX + Buffer.concat([k.seed, k.publicKey]).toString('base64');
}

export function generatePrivateKey(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return PRIVATE_PREFIX + Buffer.concat([Buffer.from(jwk.d!, 'base64url'), Buffer.from(jwk.x!, 'base64url')]).toString('base64');
}

/** The `whpk_` public key that receivers verify with. */
export function publicKeyOf(privateKey: string): string {
  return PUBLIC_PREFIX + parsePrivateKey(privateKey).publicKey.toString('base64');
}

export function signEd25519(privateKey: string | Ed25519PrivateKey, id: string, timestampSeconds: number, body: string): string {
  const k = typeof privateKey === 'string' ? parsePrivateKey(privateKey) : privateKey;
  return 'v1a,' + cryptoSign(null, Buffer.from(signedContent(id, timestampSeconds, body)), k.key).toString('base64');
}

/**
 * Verifies a `webhook-signature` header against one `whpk_` public key;
 * throws VerificationError on failure. Signatures of other schemes (`v1,`)
 * in the header are skipped, so a header carrying both during a rotation
 * verifies.
 */
export function verifyEd25519(
  publicKey: string,
  headers: { id: string; timestamp: string; signature: string },
  body: string,
  opts: VerifyOptions = {},
): void {
  let key: KeyObject;
  try {
    key = parsePublicKey(publicKey);
  } catch (e) {
    throw new VerificationError((e as Error).message);
  }
  const tolerance = opts.toleranceSeconds ?? 300;
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  const ts = Number(headers.timestamp);
  if (!/^\d+$/.test(headers.timestamp) || !Number.isSafeInteger(ts)) throw new VerificationError('invalid timestamp');
  if (Math.abs(now - ts) > tolerance) throw new VerificationError('timestamp outside tolerance');
  const content = Buffer.from(signedContent(headers.id, ts, body));
  for (const part of headers.signature.split(' ')) {
    const comma = part.indexOf(',');
    if (comma < 0 || part.slice(0, comma) !== 'v1a') continue;
    const sig = decodeBase64(part.slice(comma + 1));
    if (sig && sig.length === SIGNATURE_BYTES && cryptoVerify(null, content, key, sig)) return;
  }
  throw new VerificationError('no matching signature');
}
