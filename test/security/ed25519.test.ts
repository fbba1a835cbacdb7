import { createPublicKey, generateKeyPairSync, randomBytes, verify as cryptoVerify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { verifyEd25519 } from '../../src/signing/ed25519.js';
import { at, header, send, settled, signedBy, sleep, Status } from '../delivery/support.js';
import { startReceiver, type Received, type Receiver } from '../helpers/receiver.js';
import { startServer, type Api, type TestServer } from '../helpers/server.js';

/*
 * ed25519 (`v1a,`) signatures end to end: a real Hooklane on SQLite, a real
 * receiver on loopback. Neither `standardwebhooks` nor `svix` in node_modules
 * implements v1a (both only compute v1 HMAC), so the independent check of
 * the ed25519 signatures is node's crypto.verify with the public key
 * imported from the raw `whpk_` bytes as a JWK, next to our verifyEd25519.
 * The HMAC side is checked with the `standardwebhooks` package.
 */

let s: TestServer;
let sEd: TestServer;
let rx: Receiver;
beforeAll(async () => {
  // The second server reads its default scheme the way an operator sets it: HOOKLANE_DEFAULT_SIGNATURE_TYPE.
  const { defaultSignatureType } = loadConfig({}, { HOOKLANE_DEFAULT_SIGNATURE_TYPE: 'ed25519' });
  [s, sEd, rx] = await Promise.all([startServer(), startServer({ defaultSignatureType }), startReceiver()]);
});
afterAll(async () => {
  await rx.close();
  await Promise.all([s.close(), sEd.close()]);
});

interface Ep {
  api: Api;
  app: string;
  ep: string;
}

/** A key pair made with node directly (not src/signing): whsk_ as the 32-byte seed or the 64-byte seed+public layout. */
function keyPair(layout: 'seed' | 'seed+public' = 'seed+public'): { sk: string; pk: string; seed: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const d = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  const x = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const raw = layout === 'seed' ? d : Buffer.concat([d, x]);
  return { sk: 'whsk_' + raw.toString('base64'), pk: 'whpk_' + x.toString('base64'), seed: d.toString('base64') };
}
const hmacSecret = () => 'whsec_' + randomBytes(24).toString('base64');

let apps = 0;
async function makeEp(api: Api, body: Record<string, unknown>): Promise<Ep> {
  const app = await api('POST', '/app', { name: 'ed25519', uid: `ed-${++apps}` });
  expect(app.status).toBe(201);
  const ep = await api('POST', `/app/${app.body.id}/endpoint`, body);
  expect(ep.status, JSON.stringify(ep.body)).toBe(201);
  return { api, app: app.body.id, ep: ep.body.id };
}

async function keyOf(t: Ep): Promise<string> {
  const r = await t.api('GET', `/app/${t.app}/endpoint/${t.ep}/secret`);
  expect(r.status).toBe(200);
  return r.body.key as string;
}

async function rotate(t: Ep, body: Record<string, unknown>): Promise<void> {
  const r = await t.api('POST', `/app/${t.app}/endpoint/${t.ep}/secret/rotate`, body);
  expect(r.status, JSON.stringify(r.body)).toBe(204);
}

let paths = 0;
const newPath = () => `/ed/${++paths}`;

async function deliverOne(t: Ep, path: string): Promise<Received> {
  const msgId = await send(t.api, t.app, { eventType: 'a.b', payload: { at: Date.now(), text: 'héllo ☃' } });
  await settled(t.api, t.app, msgId, t.ep, Status.success);
  const req = at(rx.requests, path).find((r) => header(r, 'webhook-id') === msgId);
  expect(req).toBeDefined();
  return req!;
}

const signatures = (req: Received) => header(req, 'webhook-signature').split(' ');
const ofVersion = (req: Received, v: 'v1' | 'v1a') => signatures(req).filter((x) => x.startsWith(`${v},`));

/** Our verifier, on the whole header or on one signature of it. */
function edVerifies(pk: string, req: Received, signature = header(req, 'webhook-signature')): boolean {
  try {
    verifyEd25519(pk, { id: header(req, 'webhook-id'), timestamp: header(req, 'webhook-timestamp'), signature }, req.body);
    return true;
  } catch {
    return false;
  }
}

/** The independent check: node's crypto.verify over id.timestamp.body with the raw whpk_ bytes as a JWK. */
function nodeVerifies(pk: string, req: Received, signature: string): boolean {
  expect(signature.startsWith('v1a,')).toBe(true);
  const x = Buffer.from(pk.slice('whpk_'.length), 'base64');
  expect(x).toHaveLength(32);
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') }, format: 'jwk' });
  const content = Buffer.from(`${header(req, 'webhook-id')}.${header(req, 'webhook-timestamp')}.${req.body}`, 'utf8');
  return cryptoVerify(null, content, key, Buffer.from(signature.slice(4), 'base64'));
}

/** The endpoint's API surface does not disclose the private key. */
async function expectNoPrivateKey(t: Ep, ...secrets: string[]): Promise<void> {
  for (const path of [`/app/${t.app}/endpoint/${t.ep}`, `/app/${t.app}/endpoint`, `/app/${t.app}/endpoint/${t.ep}/secret`]) {
    const text = JSON.stringify((await t.api('GET', path)).body);
    expect(text).not.toContain('whsk_');
    for (const secret of secrets) expect(text).not.toContain(secret);
  }
}

describe('an endpoint with an ed25519 key', () => {
  test('a given whsk_ key signs v1a; GET secret gives its whpk_, which verifies', async () => {
    for (const layout of ['seed', 'seed+public'] as const) {
      const kp = keyPair(layout);
      const path = newPath();
      const t = await makeEp(s.api, { url: `${rx.url}${path}`, secret: kp.sk });
      expect(await keyOf(t)).toBe(kp.pk);
      await expectNoPrivateKey(t, kp.seed);

      const req = await deliverOne(t, path);
      const sigs = signatures(req);
      expect(sigs).toHaveLength(1);
      expect(sigs[0]).toMatch(/^v1a,[A-Za-z0-9+/]{86}==$/);
      expect(edVerifies(kp.pk, req)).toBe(true);
      expect(nodeVerifies(kp.pk, req, sigs[0]!)).toBe(true);
      // Teeth: another public key, or a changed body, does not verify.
      expect(edVerifies(keyPair().pk, req)).toBe(false);
      expect(nodeVerifies(keyPair().pk, req, sigs[0]!)).toBe(false);
      expect(edVerifies(kp.pk, { ...req, body: req.body.replace('héllo', 'hello') })).toBe(false);
      expect(nodeVerifies(kp.pk, { ...req, headers: { ...req.headers, 'webhook-id': 'msg_other' } }, sigs[0]!)).toBe(false);
    }
  });

  test('PATCH with a whsk_ secret switches the endpoint to ed25519', async () => {
    const path = newPath();
    const t = await makeEp(s.api, { url: `${rx.url}${path}` });
    expect(await keyOf(t)).toMatch(/^whsec_/);
    const kp = keyPair();
    const r = await s.api('PATCH', `/app/${t.app}/endpoint/${t.ep}`, { secret: kp.sk });
    expect(r.status).toBe(200);
    expect(await keyOf(t)).toBe(kp.pk);
    const req = await deliverOne(t, path);
    expect(ofVersion(req, 'v1a')).toHaveLength(1);
    expect(nodeVerifies(kp.pk, req, ofVersion(req, 'v1a')[0]!)).toBe(true);
  });
});

describe('HOOKLANE_DEFAULT_SIGNATURE_TYPE=ed25519', () => {
  test('endpoints created without a secret get a generated ed25519 key and v1a signatures', async () => {
    const path = newPath();
    const t = await makeEp(sEd.api, { url: `${rx.url}${path}` });
    const pk = await keyOf(t);
    expect(pk).toMatch(/^whpk_[A-Za-z0-9+/]{43}=$/);
    await expectNoPrivateKey(t);
    const req = await deliverOne(t, path);
    expect(signatures(req)).toHaveLength(1);
    expect(ofVersion(req, 'v1a')).toHaveLength(1);
    expect(edVerifies(pk, req)).toBe(true);
    expect(nodeVerifies(pk, req, signatures(req)[0]!)).toBe(true);

    // PUT creating an endpoint by uid gets one too; each endpoint its own key.
    const put = await sEd.api('PUT', `/app/${t.app}/endpoint/by-put`, { url: `${rx.url}${newPath()}` });
    expect(put.status).toBe(201);
    const pk2 = await keyOf({ ...t, ep: put.body.id });
    expect(pk2).toMatch(/^whpk_/);
    expect(pk2).not.toBe(pk);
  });

  test('an explicit whsec_ secret still makes an HMAC endpoint', async () => {
    const path = newPath();
    const secret = hmacSecret();
    const t = await makeEp(sEd.api, { url: `${rx.url}${path}`, secret });
    expect(await keyOf(t)).toBe(secret);
    const req = await deliverOne(t, path);
    expect(signatures(req)).toHaveLength(1);
    expect(signedBy(secret, req)).toBe(true);
  });

  test('the server with the default setting still generates HMAC secrets', async () => {
    const t = await makeEp(s.api, { url: `${rx.url}${newPath()}` });
    expect(await keyOf(t)).toMatch(/^whsec_/);
  });
});

describe('rotation between HMAC and ed25519', () => {
  test('HMAC -> ed25519: during the grace period v1 and v1a both sign, each verifying with its own key', async () => {
    const path = newPath();
    const t = await makeEp(s.api, { url: `${rx.url}${path}` });
    const oldSecret = await keyOf(t);
    expect(oldSecret).toMatch(/^whsec_/);
    const kp = keyPair('seed');
    await rotate(t, { key: kp.sk });
    expect(await keyOf(t)).toBe(kp.pk);
    await expectNoPrivateKey(t, kp.seed);

    const req = await deliverOne(t, path);
    expect(signatures(req)).toHaveLength(2);
    const [v1] = ofVersion(req, 'v1');
    const [v1a] = ofVersion(req, 'v1a');
    expect(v1).toBeDefined();
    expect(v1a).toBeDefined();
    // Each signature on its own, with its own key.
    expect(signedBy(oldSecret, req, v1)).toBe(true);
    expect(edVerifies(kp.pk, req, v1a)).toBe(true);
    expect(nodeVerifies(kp.pk, req, v1a!)).toBe(true);
    // And not with the other one.
    expect(signedBy(oldSecret, req, v1a)).toBe(false);
    expect(edVerifies(kp.pk, req, v1)).toBe(false);
    // A receiver holding either key accepts the whole header.
    expect(signedBy(oldSecret, req)).toBe(true);
    expect(edVerifies(kp.pk, req)).toBe(true);
  });

  test('ed25519 -> HMAC: both sign during the grace period, then only the new HMAC secret', async () => {
    const path = newPath();
    const kp = keyPair();
    const t = await makeEp(s.api, { url: `${rx.url}${path}`, secret: kp.sk });
    const secret = hmacSecret();
    await rotate(t, { key: secret, gracePeriodSeconds: 1 });
    expect(await keyOf(t)).toBe(secret);

    const during = await deliverOne(t, path);
    expect(signatures(during)).toHaveLength(2);
    const [v1] = ofVersion(during, 'v1');
    const [v1a] = ofVersion(during, 'v1a');
    expect(signedBy(secret, during, v1)).toBe(true);
    expect(edVerifies(kp.pk, during, v1a)).toBe(true);
    expect(nodeVerifies(kp.pk, during, v1a!)).toBe(true);
    expect(signedBy(secret, during, v1a)).toBe(false);

    await sleep(1300);
    const after = await deliverOne(t, path);
    expect(signatures(after)).toHaveLength(1);
    expect(signedBy(secret, after)).toBe(true);
    expect(ofVersion(after, 'v1a')).toHaveLength(0);
    expect(edVerifies(kp.pk, after)).toBe(false);
  });

  test('rotate without a key generates a key of the current scheme, whatever the default', async () => {
    const ed = await makeEp(s.api, { url: `${rx.url}${newPath()}`, secret: keyPair().sk });
    const before = await keyOf(ed);
    await rotate(ed, {});
    const after = await keyOf(ed);
    expect(after).toMatch(/^whpk_/);
    expect(after).not.toBe(before);
    await expectNoPrivateKey(ed);

    const hm = await makeEp(sEd.api, { url: `${rx.url}${newPath()}`, secret: hmacSecret() });
    const hBefore = await keyOf(hm);
    await rotate(hm, { gracePeriodSeconds: 60 });
    const hAfter = await keyOf(hm);
    expect(hAfter).toMatch(/^whsec_/);
    expect(hAfter).not.toBe(hBefore);
  });

  test('at most ten old keys keep signing, of both schemes', async () => {
    const path = newPath();
    // keys[i]: even i ed25519, odd i HMAC; keys[0] is the endpoint's first key, then twelve rotations.
    const keys = Array.from({ length: 13 }, (_, i) => (i % 2 === 0 ? { kind: 'ed' as const, ...keyPair() } : { kind: 'hmac' as const, secret: hmacSecret() }));
    const given = (k: (typeof keys)[number]) => (k.kind === 'ed' ? k.sk : k.secret);
    const t = await makeEp(s.api, { url: `${rx.url}${path}`, secret: given(keys[0]!) });
    for (const k of keys.slice(1)) await rotate(t, { key: given(k), gracePeriodSeconds: 3600 });

    const req = await deliverOne(t, path);
    const sigs = signatures(req);
    expect(sigs).toHaveLength(11);
    // keys 2..12 sign (6 ed25519, 5 HMAC); keys 0 and 1 were dropped as the oldest.
    expect(ofVersion(req, 'v1a')).toHaveLength(6);
    expect(ofVersion(req, 'v1')).toHaveLength(5);
    keys.forEach((k, i) => {
      const ok = k.kind === 'ed' ? edVerifies(k.pk, req) : signedBy(k.secret, req);
      expect(ok, `key ${i} (${k.kind})`).toBe(i >= 2);
      if (k.kind === 'ed' && i >= 2) expect(ofVersion(req, 'v1a').filter((sig) => nodeVerifies(k.pk, req, sig))).toHaveLength(1);
    });
  });
});

describe('malformed ed25519 keys are refused with 422', () => {
  const seed = randomBytes(32);
  const cases: [string, string, RegExp][] = [
    ['31-byte seed', 'whsk_' + randomBytes(31).toString('base64'), /whsk_.*32-byte.*64-byte/],
    ['48 bytes', 'whsk_' + randomBytes(48).toString('base64'), /whsk_.*32-byte.*64-byte/],
    ['public half of another key', 'whsk_' + Buffer.concat([seed, Buffer.from(keyPair().pk.slice(5), 'base64')]).toString('base64'), /does not match/],
    ['a whpk_ public key', keyPair().pk, /public key.*whsk_/],
    ['url-safe base64', 'whsk_' + Buffer.alloc(32, 0xff).toString('base64url'), /./],
    ['not base64', 'whsk_' + '!'.repeat(43), /./],
    ['too long', 'whsk_' + randomBytes(120).toString('base64'), /./],
  ];

  test.each(cases)('on create: %s', async (_name, secret, msg) => {
    const app = await s.api('POST', '/app', { name: 'bad keys', uid: `ed-bad-${++apps}` });
    const r = await s.api('POST', `/app/${app.body.id}/endpoint`, { url: `${rx.url}/never`, secret });
    expect(r.status).toBe(422);
    expect(r.body.detail[0].loc).toEqual(['body', 'secret']);
    expect(r.body.detail[0].msg).toMatch(msg);
    expect((await s.api('GET', `/app/${app.body.id}/endpoint`)).body.data).toHaveLength(0);
  });

  test('on rotate and PATCH, leaving the key unchanged', async () => {
    const kp = keyPair();
    const t = await makeEp(s.api, { url: `${rx.url}${newPath()}`, secret: kp.sk });
    for (const [, bad, msg] of cases) {
      const r = await s.api('POST', `/app/${t.app}/endpoint/${t.ep}/secret/rotate`, { key: bad });
      expect(r.status).toBe(422);
      expect(r.body.detail[0].loc).toEqual(['body', 'key']);
      expect(r.body.detail[0].msg).toMatch(msg);
      const p = await s.api('PATCH', `/app/${t.app}/endpoint/${t.ep}`, { secret: bad });
      expect(p.status).toBe(422);
      expect(p.body.detail[0].loc).toEqual(['body', 'secret']);
    }
    expect(await keyOf(t)).toBe(kp.pk);
  });
});
