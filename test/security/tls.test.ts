import { rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { startServer, tempDir, type TestServer } from '../helpers/server.js';
import { hasOpenssl, raw, selfSignedCert, writeFile } from './support.js';

/**
 * TLS for the server itself: HOOKLANE_TLS_CERT and HOOKLANE_TLS_KEY, both or
 * neither, checked when the configuration is loaded. Certificates are made
 * here: with openssl where it is installed, and always once with node:crypto.
 */

let dir: string;
let pair: ReturnType<typeof selfSignedCert>;
let other: ReturnType<typeof selfSignedCert>;
beforeAll(() => {
  dir = tempDir('hooklane-tls-');
  pair = selfSignedCert(dir, 'main');
  other = selfSignedCert(dir, 'other', 'node');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('settings', () => {
  const env = (e: Record<string, string>) => () => loadConfig({}, e);

  test('neither is plain HTTP; both name readable, matching PEM files', () => {
    expect(loadConfig({}, {}).tlsCert).toBeUndefined();
    const c = loadConfig({}, { HOOKLANE_TLS_CERT: pair.cert, HOOKLANE_TLS_KEY: pair.key });
    expect([c.tlsCert, c.tlsKey]).toEqual([pair.cert, pair.key]);
  });

  test('one without the other stops the start, naming the missing setting', () => {
    expect(env({ HOOKLANE_TLS_CERT: pair.cert })).toThrow(ConfigError);
    expect(env({ HOOKLANE_TLS_CERT: pair.cert })).toThrow(/HOOKLANE_TLS_KEY is not/);
    expect(env({ HOOKLANE_TLS_KEY: pair.key })).toThrow(/HOOKLANE_TLS_CERT is not/);
  });

  test('an unreadable file, a non-PEM file or a key of another certificate stops the start', () => {
    expect(env({ HOOKLANE_TLS_CERT: `${dir}/missing.pem`, HOOKLANE_TLS_KEY: pair.key })).toThrow(/HOOKLANE_TLS_CERT: cannot read .*missing\.pem: ENOENT/);
    expect(env({ HOOKLANE_TLS_CERT: pair.cert, HOOKLANE_TLS_KEY: dir })).toThrow(/HOOKLANE_TLS_KEY: cannot read/);
    const junk = writeFile(dir, 'junk.pem', 'not a certificate\n');
    expect(env({ HOOKLANE_TLS_CERT: junk, HOOKLANE_TLS_KEY: pair.key })).toThrow(/not a PEM certificate with its matching private key/);
    expect(env({ HOOKLANE_TLS_CERT: pair.cert, HOOKLANE_TLS_KEY: other.key })).toThrow(/not a PEM certificate with its matching private key/);
    // And the secret key text is never echoed.
    try {
      loadConfig({}, { HOOKLANE_TLS_CERT: pair.cert, HOOKLANE_TLS_KEY: other.key });
    } catch (e) {
      expect((e as Error).message).not.toContain('PRIVATE KEY');
    }
  });
});

describe('serving HTTPS', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ tlsCert: pair.cert, tlsKey: pair.key });
  });
  afterAll(async () => {
    await s?.close();
  });

  test('the server listens on https and answers the API with HSTS', async () => {
    expect(s.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const health = await raw(s.url, 'GET', '/api/v1/health', { ca: pair.certPem, anonymous: true });
    expect(health.status).toBe(204);
    const created = await raw(s.url, 'POST', '/api/v1/app', { ca: pair.certPem, body: JSON.stringify({ name: 'over tls' }), headers: { 'content-type': 'application/json' } });
    expect(created.status).toBe(201);
    expect(created.body.name).toBe('over tls');
    expect(created.headers['strict-transport-security']).toBe('max-age=31536000');
  });

  test('an untrusted client is refused by its own check; plain HTTP gets no API', async () => {
    await expect(raw(s.url, 'GET', '/api/v1/health', { anonymous: true })).rejects.toThrow(/self[- ]signed|certificate/i);
    const port = new URL(s.url).port;
    const plain = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/api/v1/health', timeout: 5000 }, (res) => resolve(`status ${res.statusCode}`));
      req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
      req.on('timeout', () => req.destroy());
      req.end();
    });
    expect(plain).not.toBe('status 204');
  });

  test('old protocol versions are refused', async () => {
    const port = Number(new URL(s.url).port);
    const outcome = await new Promise<string>((resolve) => {
      const sock = tlsConnect({ host: '127.0.0.1', port, ca: pair.certPem, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }, () => resolve('connected'));
      sock.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    });
    expect(outcome).toMatch(/^error/);
  });

  test('a certificate made with node:crypto works as well', async () => {
    const s2 = await startServer({ tlsCert: other.cert, tlsKey: other.key });
    try {
      expect((await raw(s2.url, 'GET', '/api/v1/health', { ca: other.certPem, anonymous: true })).status).toBe(204);
    } finally {
      await s2.close();
    }
  });

  test.runIf(hasOpenssl())('openssl made the main certificate', () => {
    expect(pair.certPem).toMatch(/BEGIN CERTIFICATE/);
  });
});
