import type { SecretEntry } from './types.js';

/**
 * Endpoint signing secrets are sealed at the store boundary: every engine
 * writes the `secrets` column through `sealSecrets` and reads it through
 * `openSecrets`, so the database only ever holds ciphertext. The cipher
 * (src/auth/secret-box.ts) comes from HOOKLANE_MAIN_SECRET via openStore.
 *
 * Rows written before encryption existed hold the plain JSON array; they are
 * still read, and `Store.sealPlaintextSecrets` (run by openStore once the key
 * is verified) rewrites them sealed.
 */
export interface SecretCipher {
  seal(plaintext: string, context: string): string;
  open(sealed: string, context: string): string;
  /** A value that identifies the key without revealing it (kept in settings). */
  checkValue(): string;
  matchesCheck(stored: string): boolean;
}

/** Settings key of the cipher's check value. */
export const KEY_CHECK_SETTING = 'main_secret_check';

const context = (endpointId: string) => `endpoint-secrets:${endpointId}`;

function noCipher(): Error {
  return new Error('this store was opened without HOOKLANE_MAIN_SECRET (no cipher); it cannot read or write sealed endpoint secrets');
}

/** The column value for an endpoint's secrets: sealed text. Never plaintext. */
export function sealSecrets(cipher: SecretCipher | undefined, endpointId: string, secrets: SecretEntry[]): string {
  if (!cipher) throw noCipher();
  return cipher.seal(JSON.stringify(secrets), context(endpointId));
}

/** True when a stored value is the plain JSON array of a row from before encryption. */
export function isPlaintextSecrets(stored: unknown): boolean {
  return Array.isArray(stored) || (typeof stored === 'string' && stored.trimStart().startsWith('['));
}

/**
 * Secrets from the column value: sealed text, or (rows from before
 * encryption) the JSON array as text (SQLite) or already parsed (PostgreSQL json).
 */
export function openSecrets(cipher: SecretCipher | undefined, endpointId: string, stored: unknown): SecretEntry[] {
  if (Array.isArray(stored)) return stored as SecretEntry[];
  if (typeof stored !== 'string') throw new Error(`endpoint ${endpointId}: unreadable secrets column`);
  if (isPlaintextSecrets(stored)) return JSON.parse(stored) as SecretEntry[];
  if (!cipher) throw noCipher();
  return JSON.parse(cipher.open(stored, context(endpointId))) as SecretEntry[];
}
