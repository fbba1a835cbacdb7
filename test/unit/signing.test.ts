import { Webhook } from 'standardwebhooks';
import { describe, expect, test } from 'vitest';
import { generateSecret, normaliseSecret, sign, verify, VerificationError } from '../../src/signing/hmac.js';
import { signatureHeader } from '../../src/signing/keys.js';

// The published Standard Webhooks test vector.
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const TS = 1614265330;
const BODY = '{"test": 2432232314}';

describe('HMAC signatures', () => {
  test('match the Standard Webhooks vector', () => {
    expect(sign(SECRET, ID, TS, BODY)).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  test('verify with the reference library', () => {
    const secret = generateSecret();
    const ts = Math.floor(Date.now() / 1000);
    const headers = { 'webhook-id': ID, 'webhook-timestamp': String(ts), 'webhook-signature': sign(secret, ID, ts, BODY) };
    expect(new Webhook(secret).verify(BODY, headers)).toEqual({ test: 2432232314 });
  });

  test('one signature per key, each verifiable on its own', () => {
    const [a, b] = [generateSecret(), generateSecret()];
    const ts = Math.floor(Date.now() / 1000);
    const header = signatureHeader([a, b], ID, ts, BODY);
    expect(header.split(' ')).toHaveLength(2);
    for (const s of [a, b]) {
      expect(() => verify(s, { id: ID, timestamp: String(ts), signature: header }, BODY)).not.toThrow();
    }
    expect(() => verify(generateSecret(), { id: ID, timestamp: String(ts), signature: header }, BODY)).toThrow(VerificationError);
  });

  test('verify rejects tampering and stale timestamps', () => {
    const now = TS * 1000;
    const signature = sign(SECRET, ID, TS, BODY);
    expect(() => verify(SECRET, { id: ID, timestamp: String(TS), signature }, BODY, { now })).not.toThrow();
    expect(() => verify(SECRET, { id: ID, timestamp: String(TS), signature }, BODY + ' ', { now })).toThrow('no matching signature');
    expect(() => verify(SECRET, { id: 'msg_other', timestamp: String(TS), signature }, BODY, { now })).toThrow(VerificationError);
    expect(() => verify(SECRET, { id: ID, timestamp: String(TS), signature }, BODY, { now: now + 301_000 })).toThrow('tolerance');
    expect(() => verify(SECRET, { id: ID, timestamp: 'abc', signature }, BODY, { now })).toThrow('invalid timestamp');
  });

  test('secrets: generated with prefix, bare base64 accepted, junk refused', () => {
    expect(generateSecret()).toMatch(/^whsec_[A-Za-z0-9+/=]{32}$/);
    expect(normaliseSecret('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')).toBe(SECRET);
    expect(normaliseSecret(SECRET)).toBe(SECRET);
    expect(() => normaliseSecret('short')).toThrow();
    expect(() => normaliseSecret('whsec_' + '!'.repeat(40))).toThrow();
  });
});
