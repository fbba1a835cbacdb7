import { execFileSync } from 'node:child_process';
import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { Config } from '../../src/config.js';
import { startServer, TEST_TOKEN, type TestServer } from '../helpers/server.js';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  body: any;
}

export interface RawOptions {
  body?: string | Buffer;
  headers?: OutgoingHttpHeaders;
  /** Leave out the admin token. */
  anonymous?: boolean;
  /** Send the body in chunks (transfer-encoding: chunked), without content-length. */
  chunked?: boolean;
  /** PEM CA to trust, for https URLs. */
  ca?: string | Buffer;
  timeoutMs?: number;
}

/**
 * One request with node:http, so that the path goes out exactly as given
 * (no `..` folding, no re-encoding) and the body may be any bytes.
 */
export function raw(baseUrl: string, method: string, path: string, opts: RawOptions = {}): Promise<RawResponse> {
  const url = new URL(baseUrl);
  const headers: OutgoingHttpHeaders = { ...(opts.anonymous ? {} : { authorization: `Bearer ${TEST_TOKEN}` }), ...opts.headers };
  if (opts.body !== undefined && !opts.chunked && headers['content-length'] === undefined) headers['content-length'] = Buffer.byteLength(opts.body);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      { host: url.hostname, port: url.port, method, path, headers, ca: opts.ca, timeout: opts.timeoutMs ?? 15_000, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text === '' ? null : JSON.parse(text);
          } catch {
            /* not JSON: keep the text */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path}`)));
    // An error after the answer arrived (the server closed while the body was still going out) is not a failure.
    let answered = false;
    req.on('response', () => (answered = true));
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    if (opts.body !== undefined && opts.chunked) {
      const b = Buffer.from(opts.body);
      for (let i = 0; i < b.length; i += 16 * 1024) req.write(b.subarray(i, i + 16 * 1024));
    } else if (opts.body !== undefined) {
      req.write(opts.body);
    }
    req.end();
  });
}

/** `{code, detail}` with two strings. */
export function isHttpError(body: unknown): boolean {
  const b = body as { code?: unknown; detail?: unknown } | null;
  return b !== null && typeof b === 'object' && typeof b.code === 'string' && typeof b.detail === 'string';
}

/** `{detail: [{loc, msg, type}, ...]}`. */
export function isValidationError(body: unknown): boolean {
  const d = (body as { detail?: unknown } | null)?.detail;
  return (
    Array.isArray(d) &&
    d.length > 0 &&
    d.every((i: any) => Array.isArray(i.loc) && i.loc.every((x: unknown) => typeof x === 'string') && typeof i.msg === 'string' && typeof i.type === 'string')
  );
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// --- a self-signed certificate built with node:crypto (DER by hand) -------------

const der = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
};
const seq = (...p: Buffer[]) => der(0x30, ...p);
const oid = (dotted: string): Buffer => {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [a! * 40 + b!];
  for (const v of rest) {
    const enc = [v & 0x7f];
    for (let x = v >> 7; x > 0; x >>= 7) enc.unshift((x & 0x7f) | 0x80);
    bytes.push(...enc);
  }
  return der(0x06, Buffer.from(bytes));
};
const utcTime = (d: Date) => der(0x17, Buffer.from(d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'));

/** An ECDSA P-256 certificate for CN=localhost with subjectAltName IP:127.0.0.1, DNS:localhost. */
function nodeCryptoCert(): { certPem: string; keyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const name = seq(der(0x31, seq(oid('2.5.4.3'), der(0x0c, Buffer.from('localhost')))));
  const san = seq(der(0x87, Buffer.from([127, 0, 0, 1])), der(0x82, Buffer.from('localhost')));
  const tbs = seq(
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, Buffer.concat([Buffer.from([0x01]), randomBytes(8)])),
    ecdsaSha256,
    name,
    seq(utcTime(new Date(Date.now() - 3600_000)), utcTime(new Date(Date.now() + 2 * 86400_000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    der(0xa3, seq(seq(oid('2.5.29.17'), der(0x04, san)))),
  );
  const signature = sign('sha256', tbs, privateKey);
  const cert = seq(tbs, ecdsaSha256, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const b64 = cert.toString('base64').replace(/.{64}/g, '$&\n');
  return { certPem: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/**
 * A self-signed certificate for 127.0.0.1 and localhost, written to `dir`.
 * Made with openssl when it is installed, else with node:crypto.
 */
export function selfSignedCert(dir: string, name = 'hooklane', how: 'auto' | 'node' = 'auto'): { cert: string; key: string; certPem: string } {
  const cert = join(dir, `${name}-cert.pem`);
  const key = join(dir, `${name}-key.pem`);
  if (how === 'auto' && hasOpenssl()) {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      { stdio: 'ignore' },
    );
  } else {
    const made = nodeCryptoCert();
    writeFileSync(cert, made.certPem);
    writeFileSync(key, made.keyPem);
  }
  return { cert, key, certPem: readFileSync(cert, 'utf8') };
}

export function writeFile(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

// --- engines ------------------------------------------------------------------------

const PG_URL = process.env.HOOKLANE_TEST_DATABASE_URL;

export type EngineName = 'sqlite' | 'postgres';
/** SQLite always; PostgreSQL when HOOKLANE_TEST_DATABASE_URL is set (CI sets it). */
export const ENGINES: EngineName[] = PG_URL ? ['sqlite', 'postgres'] : ['sqlite'];

/** A server on a fresh SQLite file, or on a PostgreSQL schema of its own (dropped on close). */
export async function startOnEngine(engine: EngineName, overrides: Partial<Config> = {}): Promise<TestServer> {
  if (engine === 'sqlite') return startServer(overrides);
  const schema = `hl_sec_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL!, max: 1 });
  await admin.query(`CREATE SCHEMA ${schema}`);
  const url = new URL(PG_URL!);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const server = await startServer({ databaseUrl: url.toString(), ...overrides });
  return {
    ...server,
    close: async () => {
      await server.close();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}
