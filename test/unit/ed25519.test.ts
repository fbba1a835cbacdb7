import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { currentKey, MAX_OLD_KEYS, rotate } from '../../src/domain/endpoint-rules.js';
import {
  generatePrivateKey, KeyFormatError, normalisePrivateKey, parsePrivateKey, parsePublicKey, publicKeyOf, signEd25519, verifyEd25519,
} from '../../src/signing/ed25519.js';
import { VerificationError } from '../../src/signing/hmac.js';
import { generateKey, normaliseKey, receiverKey, signatureHeader, signatureTypeOf, signWith } from '../../src/signing/keys.js';

// RFC 8032 section 7.1, ed25519 test vectors 1 to 3: secret key (seed), public key, message, signature (hex).
const RFC8032 = [
  {
    name: 'TEST 1 (empty message)',
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    pub: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    msg: '',
    sig: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    name: 'TEST 2 (one byte)',
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    pub: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    msg: '72',
    sig: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    name: 'TEST 3 (two bytes)',
    seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    pub: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    msg: 'af82',
    sig: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
];

const hex = (h: string) => Buffer.from(h, 'hex');
const b64 = (b: Buffer) => b.toString('base64');
const whsk = (...parts: string[]) => 'whsk_' + b64(Buffer.concat(parts.map(hex)));

// The Standard Webhooks message of the published HMAC vector, reused here.
const ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const TS = 1614265330;
const BODY = '{"test": 2432232314}';
const NOW = TS * 1000;
const hdrs = (signature: string, id = ID, timestamp = String(TS)) => ({ id, timestamp, signature });

/** A key pair made by node directly, not through src/signing: the seed+public layout built here by hand. */
function independentPair(): { whsk: string; whpk: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const d = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  const x = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return { whsk: 'whsk_' + b64(Buffer.concat([d, x])), whpk: 'whpk_' + b64(x) };
}

describe('ed25519 primitive: RFC 8032 known answers', () => {
  test.each(RFC8032)('$name', (v) => {
    for (const key of [whsk(v.seed), whsk(v.seed, v.pub)]) {
      const k = parsePrivateKey(key);
      expect(k.publicKey.toString('hex')).toBe(v.pub);
      expect(publicKeyOf(key)).toBe('whpk_' + b64(hex(v.pub)));
      expect(cryptoSign(null, hex(v.msg), k.key).toString('hex')).toBe(v.sig);
    }
    expect(cryptoVerify(null, hex(v.msg), parsePublicKey('whpk_' + b64(hex(v.pub))), hex(v.sig))).toBe(true);
    expect(cryptoVerify(null, Buffer.from('other'), parsePublicKey('whpk_' + b64(hex(v.pub))), hex(v.sig))).toBe(false);
  });

  test('a v1a signature is the ed25519 signature of id.timestamp.body, made with the RFC key imported independently', () => {
    const v = RFC8032[0]!;
    // PKCS#8 import of the RFC seed, a different path from the JWK import that src/signing uses for 64-byte keys.
    const ref = createPrivateKey({ key: Buffer.concat([hex('302e020100300506032b657004220420'), hex(v.seed)]), format: 'der', type: 'pkcs8' });
    const expected = 'v1a,' + b64(cryptoSign(null, Buffer.from(`${ID}.${TS}.${BODY}`), ref));
    expect(signEd25519(whsk(v.seed, v.pub), ID, TS, BODY)).toBe(expected);
    expect(signEd25519(whsk(v.seed), ID, TS, BODY)).toBe(expected);
    // ed25519 is deterministic: with the RFC TEST 1 key and the Standard Webhooks vector message the signature is fixed
    // (computed once with OpenSSL through node's PKCS#8 path; pinned so a change in signed content or encoding shows).
    expect(expected).toBe('v1a,fldxM4gAKugP6nnt1hdz3sgGfZ6d99nzrMFnZOELIxbzEHoVmAb2ADpkJK7zgPePmPsle0zV9jSeGlHFG2NVAw==');
    expect(() => verifyEd25519('whpk_' + b64(hex(v.pub)), hdrs(expected), BODY, { now: NOW })).not.toThrow();
  });
});

describe('v1a sign and verify', () => {
  test('round trip with a generated key', () => {
    const key = generatePrivateKey();
    const pub = publicKeyOf(key);
    const sig = signEd25519(key, ID, TS, BODY);
    expect(sig).toMatch(/^v1a,[A-Za-z0-9+/]{86}==$/);
    expect(() => verifyEd25519(pub, hdrs(sig), BODY, { now: NOW })).not.toThrow();
    // The receiver's check with node's crypto alone, from the whpk_ bytes.
    const jwk = { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pub.slice(5), 'base64').toString('base64url') };
    expect(cryptoVerify(null, Buffer.from(`${ID}.${TS}.${BODY}`), createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(sig.slice(4), 'base64'))).toBe(true);
  });

  test('keys made outside src/signing sign and verify', () => {
    const { whsk: sk, whpk: pk } = independentPair();
    expect(publicKeyOf(sk)).toBe(pk);
    expect(normalisePrivateKey(sk)).toBe(sk);
    expect(() => verifyEd25519(pk, hdrs(signEd25519(sk, ID, TS, BODY)), BODY, { now: NOW })).not.toThrow();
  });

  test('tampered body, id, timestamp or signature, another key, and stale timestamps are rejected', () => {
    const key = generatePrivateKey();
    const pub = publicKeyOf(key);
    const sig = signEd25519(key, ID, TS, BODY);
    const ok = () => verifyEd25519(pub, hdrs(sig), BODY, { now: NOW });
    expect(ok).not.toThrow();
    expect(() => verifyEd25519(pub, hdrs(sig), BODY.replace('2', '3'), { now: NOW })).toThrow('no matching signature');
    expect(() => verifyEd25519(pub, hdrs(sig), BODY + ' ', { now: NOW })).toThrow(VerificationError);
    expect(() => verifyEd25519(pub, hdrs(sig, 'msg_other'), BODY, { now: NOW })).toThrow('no matching signature');
    expect(() => verifyEd25519(pub, hdrs(sig, ID, String(TS + 1)), BODY, { now: NOW })).toThrow('no matching signature');
    const raw = Buffer.from(sig.slice(4), 'base64');
    raw[10] ^= 1;
    expect(() => verifyEd25519(pub, hdrs('v1a,' + b64(raw)), BODY, { now: NOW })).toThrow('no matching signature');
    expect(() => verifyEd25519(pub, hdrs('v1a,' + sig.slice(4, 50)), BODY, { now: NOW })).toThrow('no matching signature');
    expect(() => verifyEd25519(pub, hdrs('v1,' + sig.slice(4)), BODY, { now: NOW })).toThrow('no matching signature');
    expect(() => verifyEd25519(publicKeyOf(generatePrivateKey()), hdrs(sig), BODY, { now: NOW })).toThrow('no matching signature');
    expect(() => verifyEd25519(pub, hdrs(sig), BODY, { now: NOW + 301_000 })).toThrow('tolerance');
    expect(() => verifyEd25519(pub, hdrs(sig), BODY, { now: NOW - 301_000 })).toThrow('tolerance');
    expect(() => verifyEd25519(pub, hdrs(sig), BODY, { now: NOW + 3_000_000, toleranceSeconds: 3600 })).not.toThrow();
    expect(() => verifyEd25519(pub, hdrs(sig, ID, 'abc'), BODY, { now: NOW })).toThrow('invalid timestamp');
    expect(() => verifyEd25519('whpk_nope', hdrs(sig), BODY, { now: NOW })).toThrow(VerificationError);
    expect(() => verifyEd25519(key, hdrs(sig), BODY, { now: NOW })).toThrow(VerificationError);
  });

  test('a header with several signatures verifies when any v1a one matches', () => {
    const [a, b] = [generatePrivateKey(), generatePrivateKey()];
    const hmac = generateKey('hmac');
    const header = signatureHeader([a, hmac, b], ID, TS, BODY);
    const parts = header.split(' ');
    expect(parts.map((p) => p.split(',')[0])).toEqual(['v1a', 'v1', 'v1a']);
    for (const k of [a, b]) expect(() => verifyEd25519(publicKeyOf(k), hdrs(header), BODY, { now: NOW })).not.toThrow();
    // The HMAC part verifies with the reference Standard Webhooks library, which passes over the v1a parts.
    const ts = Math.floor(Date.now() / 1000);
    const wh = { 'webhook-id': ID, 'webhook-timestamp': String(ts), 'webhook-signature': signatureHeader([a, hmac, b], ID, ts, BODY) };
    expect(new Webhook(hmac).verify(BODY, wh)).toEqual({ test: 2432232314 });
    expect(() => new Webhook(generateKey('hmac')).verify(BODY, wh)).toThrow();
  });
});

describe('key encodings', () => {
  test('generated whsk_ is the 64-byte seed+public layout; whpk_ is the 32-byte public key', () => {
    const key = generatePrivateKey();
    expect(key).toMatch(/^whsk_[A-Za-z0-9+/]{86}==$/);
    const raw = Buffer.from(key.slice(5), 'base64');
    expect(raw).toHaveLength(64);
    const pub = publicKeyOf(key);
    expect(pub).toMatch(/^whpk_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(pub.slice(5), 'base64').equals(raw.subarray(32))).toBe(true);
    expect(generatePrivateKey()).not.toBe(key);
  });

  test('a 32-byte seed, padded or not, normalises to the 64-byte form', () => {
    const v = RFC8032[1]!;
    const full = whsk(v.seed, v.pub);
    expect(normalisePrivateKey(whsk(v.seed))).toBe(full);
    expect(normalisePrivateKey(whsk(v.seed).replace(/=+$/, ''))).toBe(full);
    expect(normalisePrivateKey(full.replace(/=+$/, ''))).toBe(full);
    expect(normalisePrivateKey(full)).toBe(full);
    expect(normaliseKey(whsk(v.seed))).toBe(full);
  });

  test.each([
    ['no prefix', b64(Buffer.alloc(32, 1))],
    ['empty', 'whsk_'],
    ['not base64', 'whsk_' + '!'.repeat(43)],
    ['url-safe alphabet', 'whsk_' + Buffer.alloc(32, 0xfb).toString('base64url')],
    ['31 bytes', 'whsk_' + b64(Buffer.alloc(31, 7))],
    ['33 bytes', 'whsk_' + b64(Buffer.alloc(33, 7))],
    ['63 bytes', 'whsk_' + b64(Buffer.alloc(63, 7))],
    ['65 bytes', 'whsk_' + b64(Buffer.alloc(65, 7))],
    ['padding inside', 'whsk_' + b64(Buffer.alloc(32, 7)).slice(0, 20) + '=' + b64(Buffer.alloc(32, 7)).slice(21)],
  ])('a malformed private key is refused: %s', (_name, key) => {
    expect(() => parsePrivateKey(key)).toThrow(KeyFormatError);
    expect(() => normalisePrivateKey(key)).toThrow();
  });

  test('non-canonical base64 (stray bits in the last character) is refused', () => {
    const key = whsk(RFC8032[0]!.seed);
    const body = key.slice(5).replace(/=+$/, '');
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const last = alphabet[alphabet.indexOf(body.at(-1)!) ^ 1]!;
    const tweaked = 'whsk_' + body.slice(0, -1) + last + '=';
    expect(Buffer.from(tweaked.slice(5), 'base64').equals(hex(RFC8032[0]!.seed))).toBe(true); // node would decode it
    expect(() => parsePrivateKey(tweaked)).toThrow(KeyFormatError);
  });

  test('a 64-byte key whose public half does not match its seed is refused', () => {
    const [a, b] = [RFC8032[0]!, RFC8032[1]!];
    expect(() => parsePrivateKey(whsk(a.seed, b.pub))).toThrow('does not match');
    expect(() => normaliseKey(whsk(a.seed, b.pub))).toThrow('does not match');
  });

  test('malformed public keys are refused', () => {
    expect(() => parsePublicKey(b64(Buffer.alloc(32, 1)))).toThrow(KeyFormatError);
    expect(() => parsePublicKey('whpk_' + b64(Buffer.alloc(31, 1)))).toThrow('32-byte');
    expect(() => parsePublicKey('whpk_' + b64(Buffer.alloc(64, 1)))).toThrow('32-byte');
    expect(() => parsePublicKey('whpk_***')).toThrow(KeyFormatError);
    expect(() => parsePublicKey(whsk(RFC8032[0]!.seed))).toThrow(KeyFormatError);
  });

  test('a whpk_ public key given as a signing key is refused with a message saying so', () => {
    expect(() => normaliseKey(publicKeyOf(generatePrivateKey()))).toThrow(/public key.*whsk_/);
  });
});

describe('both schemes side by side', () => {
  test('the prefix decides the scheme; the receiver key of an ed25519 key is its public key', () => {
    const sk = generateKey('ed25519');
    const sec = generateKey('hmac');
    expect(signatureTypeOf(sk)).toBe('ed25519');
    expect(signatureTypeOf(sec)).toBe('hmac');
    expect(sec).toMatch(/^whsec_/);
    expect(receiverKey(sk)).toBe(publicKeyOf(sk));
    expect(receiverKey(sec)).toBe(sec);
    expect(signWith(sk, ID, TS, BODY)).toBe(signEd25519(sk, ID, TS, BODY));
    expect(signWith('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', ID, TS, BODY)).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    expect(normaliseKey('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')).toBe('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
  });

  test('rotation between schemes keeps every key of the other scheme signing, capped at ten old keys', () => {
    const now = 1_000_000;
    const hmac = generateKey('hmac');
    const ed = generateKey('ed25519');
    let secrets = rotate([{ key: hmac, expiresAt: null }], ed, 3600, now);
    expect(currentKey(secrets)).toBe(ed);
    expect(signatureHeader(secrets.map((s) => s.key), ID, TS, BODY).split(' ').map((p) => p.split(',')[0])).toEqual(['v1a', 'v1']);
    const back = generateKey('hmac');
    secrets = rotate(secrets, back, 3600, now + 1);
    expect(signatureHeader(secrets.map((s) => s.key), ID, TS, BODY).split(' ').map((p) => p.split(',')[0])).toEqual(['v1', 'v1a', 'v1']);
    for (let i = 0; i < 15; i++) secrets = rotate(secrets, generateKey(i % 2 ? 'hmac' : 'ed25519'), 3600, now + 2 + i);
    expect(secrets).toHaveLength(1 + MAX_OLD_KEYS);
  });

  test('HOOKLANE_DEFAULT_SIGNATURE_TYPE: hmac by default, ed25519 on request, anything else refused naming the setting', () => {
    expect(loadConfig({}, {}).defaultSignatureType).toBe('hmac');
    expect(loadConfig({}, { HOOKLANE_DEFAULT_SIGNATURE_TYPE: 'ed25519' }).defaultSignatureType).toBe('ed25519');
    expect(loadConfig({}, { HOOKLANE_DEFAULT_SIGNATURE_TYPE: 'hmac' }).defaultSignatureType).toBe('hmac');
    expect(() => loadConfig({}, { HOOKLANE_DEFAULT_SIGNATURE_TYPE: 'rsa' })).toThrow(ConfigError);
    expect(() => loadConfig({}, { HOOKLANE_DEFAULT_SIGNATURE_TYPE: 'rsa' })).toThrow('HOOKLANE_DEFAULT_SIGNATURE_TYPE');
  });
});
