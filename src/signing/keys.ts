import { generatePrivateKey, normalisePrivateKey, PRIVATE_PREFIX, PUBLIC_PREFIX, publicKeyOf, signEd25519 } from './ed25519.js';
import { generateSecret, normaliseSecret, sign as signHmac } from './hmac.js';

/**
 * Endpoint signing keys of both Standard Webhooks schemes, told apart by
 * their prefix: `whsec_` (or bare base64) is an HMAC secret and signs `v1,`;
 * `whsk_` is an ed25519 private key and signs `v1a,`. An endpoint's keys may
 * mix both while a rotation between schemes is in its grace period.
 */
export type SignatureType = 'hmac' | 'ed25519';
export const SIGNATURE_TYPES: readonly SignatureType[] = ['hmac', 'ed25519'];

export function signatureTypeOf(key: string): SignatureType {
  return key.startsWith(PRIVATE_PREFIX) ? 'ed25519' : 'hmac';
}

export function generateKey(type: SignatureType): string {
  return type === 'ed25519' ? generatePrivateKey() : generateSecret();
}

/** Validates a key given through the API and returns its stored form; throws with a message for the caller. */
export function normaliseKey(given: string): string {
  if (given.startsWith(PUBLIC_PREFIX)) throw new Error(`${PUBLIC_PREFIX} is a public key; give the ${PRIVATE_PREFIX} private key to sign with`);
  return given.startsWith(PRIVATE_PREFIX) ? normalisePrivateKey(given) : normaliseSecret(given);
}

/** What a receiver verifies with: the HMAC secret itself, or the ed25519 public key. Never an ed25519 private key. */
export function receiverKey(key: string): string {
  return signatureTypeOf(key) === 'ed25519' ? publicKeyOf(key) : key;
}

export function signWith(key: string, id: string, timestampSeconds: number, body: string): string {
  return signatureTypeOf(key) === 'ed25519' ? signEd25519(key, id, timestampSeconds, body) : signHmac(key, id, timestampSeconds, body);
}

/** The `webhook-signature` header value: one signature per valid key, whatever its scheme. */
export function signatureHeader(keys: readonly string[], id: string, timestampSeconds: number, body: string): string {
  return keys.map((k) => signWith(k, id, timestampSeconds, body)).join(' ');
}
