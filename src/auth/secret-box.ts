import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SecretCipher } from '../store/endpoint-secrets.js';

/**
 * AES-256-GCM under a key derived from HOOKLANE_MAIN_SECRET.
 *
 * The main secret is any string of at least 32 characters that is already
 * high-entropy (generate it with `openssl rand -base64 32`; Hooklane's own
 * generated secret is 32 random bytes, base64url). It is not a password, so
 * it is stretched with HKDF-SHA256, not a slow KDF: one derivation for the
 * encryption key and another, independent one for the key check value.
 *
 * Sealed text: `hlenc1:` + base64url(iv[12] | ciphertext | tag[16]). The
 * caller's `context` (e.g. the endpoint id) is authenticated as AAD, so a
 * sealed value copied into another row does not open there.
 */
export const MIN_MAIN_SECRET_LENGTH = 32;
const PREFIX = 'hlenc1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const SALT = 'hooklane main secret';
const CHECK_TEXT = 'hooklane: HOOKLANE_MAIN_SECRET key check v1';

export class SecretDecryptError extends Error {}

export const isSealed = (s: string): boolean => s.startsWith(PREFIX);

export class SecretBox implements SecretCipher {
  private constructor(
    private readonly key: Buffer,
    private readonly checkKey: Buffer,
  ) {}

  static fromMainSecret(mainSecret: string): SecretBox {
    if (mainSecret.length < MIN_MAIN_SECRET_LENGTH) {
      throw new Error(`HOOKLANE_MAIN_SECRET must be at least ${MIN_MAIN_SECRET_LENGTH} characters`);
    }
    const derive = (info: string) => Buffer.from(hkdfSync('sha256', Buffer.from(mainSecret, 'utf8'), SALT, info, 32));
    return new SecretBox(derive('endpoint secrets: aes-256-gcm v1'), derive('key check v1'));
  }

  /** 32 random bytes, base64url: what Hooklane generates when none is set. */
  static generateMainSecret(): string {
    return randomBytes(32).toString('base64url');
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    c.setAAD(Buffer.from(context, 'utf8'));
    const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
    return PREFIX + Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64url');
  }

  open(sealed: string, context: string): string {
    if (!isSealed(sealed)) throw new SecretDecryptError('not a sealed value');
    const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretDecryptError('sealed value is truncated');
    const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    d.setAAD(Buffer.from(context, 'utf8'));
    d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    try {
      return Buffer.concat([d.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), d.final()]).toString('utf8');
    } catch {
      throw new SecretDecryptError(`cannot decrypt a sealed secret (${context}): HOOKLANE_MAIN_SECRET does not match the key it was encrypted with, or the value was altered`);
    }
  }

  /** Stored in settings on first use; reveals nothing about the encryption key. */
  checkValue(): string {
    return 'v1:' + createHmac('sha256', this.checkKey).update(CHECK_TEXT).digest('base64url');
  }

  matchesCheck(stored: string): boolean {
    const a = Buffer.from(this.checkValue());
    const b = Buffer.from(stored);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}
