import Database from 'better-sqlite3';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, test } from 'vitest';
import { MAIN_SECRET_FILE } from '../../src/auth/main-secret.js';
import { ConfigError, loadConfig, type Config } from '../../src/config.js';
import { startHooklane, type Hooklane } from '../../src/hooklane.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { apiClient, tempDir, testConfig, type Api } from '../helpers/server.js';
import { cli, ENGINE_CASES, pgSchema, previousReleaseSchema, type PgSchema } from './auth-support.js';

/**
 * Endpoint secrets at rest: sealed with AES-256-GCM under
 * HOOKLANE_MAIN_SECRET in every engine, the key generated for SQLite when
 * unset and required for PostgreSQL, a wrong key refused at start, and
 * plaintext rows of older versions sealed on upgrade.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const KEY_1 = 'main-secret-one-0123456789abcdefghijklmnopq';
const KEY_2 = 'main-secret-two-0123456789abcdefghijklmnopq';
const SECRET = 'whsec_' + Buffer.from('the endpoint secret, 32 bytes!!!').toString('base64');
const ROTATED = 'whsec_' + Buffer.from('the rotated secret, 32 bytes!!!!').toString('base64');

function capture(): { logger: pino.Logger; lines: () => Record<string, unknown>[]; text: () => string } {
  const out: string[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void out.push(s) });
  return { logger, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>), text: () => out.join('') };
}

interface Db {
  dir: string;
  url: string;
  pg?: PgSchema;
  /** The secrets column of every endpoint, as stored. */
  rawSecrets(): Promise<string[]>;
}

async function database(engine: 'sqlite' | 'postgres'): Promise<Db> {
  const dir = tempDir('hooklane-at-rest-');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  if (engine === 'sqlite') {
    const file = join(dir, 'hooklane.db');
    return {
      dir,
      url: `sqlite:${file}`,
      rawSecrets: async () => {
        const db = new Database(file, { readonly: true });
        try {
          return (db.prepare('SELECT secrets FROM endpoints ORDER BY id').all() as { secrets: string }[]).map((r) => r.secrets);
        } finally {
          db.close();
        }
      },
    };
  }
  const pg = await pgSchema();
  cleanups.push(() => pg.drop());
  return { dir, url: pg.url, pg, rawSecrets: async () => (await pg.sql<{ s: string }>('SELECT secrets::text AS s FROM endpoints ORDER BY id')).map((r) => r.s) };
}

async function start(config: Config, logger = pino({ level: 'silent' })): Promise<{ hl: Hooklane; api: Api }> {
  const hl = await startHooklane(config, { logger });
  const close = hl.close;
  let closing: Promise<void> | undefined;
  hl.close = () => (closing ??= close());
  cleanups.push(() => hl.close());
  return { hl, api: apiClient(hl.url) };
}

async function receiver(): Promise<Receiver> {
  const r = await startReceiver();
  cleanups.push(() => r.close());
  return r;
}

/** Every byte of the SQLite files in `dir`, as latin1 text. */
const sqliteBytes = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.startsWith('hooklane.db'))
    .map((f) => readFileSync(join(dir, f)).toString('latin1'))
    .join('');

function expectNoSecretText(text: string): void {
  for (const s of ['whsec_', 'whsk_', SECRET.slice(6), ROTATED.slice(6)]) expect(text, `stored text holds ${s}`).not.toContain(s);
}

describe.each(ENGINE_CASES)('secrets at rest: $name', ({ name, available }) => {
  test.skipIf(!available)('the database holds only ciphertext; the API returns the secret and deliveries are signed with it', async () => {
    const db = await database(name);
    const r = await receiver();
    const { hl, api } = await start(testConfig(db.dir, { databaseUrl: db.url, mainSecret: KEY_1 }));
    const app = (await api('POST', '/app', { name: 'A' })).body;
    const ep = await api('POST', `/app/${app.id}/endpoint`, { url: r.url, secret: SECRET });
    expect(ep.status, JSON.stringify(ep.body)).toBe(201);
    const other = await api('POST', `/app/${app.id}/endpoint`, { url: `${r.url}/generated` });
    const generated = (await api('GET', `/app/${app.id}/endpoint/${other.body.id}/secret`)).body.key as string;

    const stored = await db.rawSecrets();
    expect(stored).toHaveLength(2);
    for (const s of stored) expect(s).toMatch(/^"?hlenc1:/);
    expectNoSecretText(stored.join('\n'));
    expect(stored.join('\n')).not.toContain(generated.replace(/^wh(sec|sk)_/, ''));
    expect((await api('GET', `/app/${app.id}/endpoint/${ep.body.id}/secret`)).body.key).toBe(SECRET);

    // Rotation is sealed too; during the grace period both keys sign.
    expect((await api('POST', `/app/${app.id}/endpoint/${ep.body.id}/secret/rotate`, { key: ROTATED })).status).toBe(204);
    expectNoSecretText((await db.rawSecrets()).join('\n'));
    expect((await api('GET', `/app/${app.id}/endpoint/${ep.body.id}/secret`)).body.key).toBe(ROTATED);
    expect((await api('POST', `/app/${app.id}/msg`, { eventType: 'user.created', payload: { n: 1 } })).status).toBe(202);
    const [req] = (await r.waitFor(2)).filter((x) => x.path === '/');
    const headers = { 'webhook-id': String(req!.headers['webhook-id']), 'webhook-timestamp': String(req!.headers['webhook-timestamp']), 'webhook-signature': String(req!.headers['webhook-signature']) };
    expect(() => new Webhook(ROTATED).verify(req!.body, headers)).not.toThrow();
    expect(() => new Webhook(SECRET).verify(req!.body, headers)).not.toThrow();

    await hl.close();
    if (!db.pg) expectNoSecretText(sqliteBytes(db.dir));
  });

  test.skipIf(!available)('another HOOKLANE_MAIN_SECRET stops the start with a message naming it; the right one still works', async () => {
    const db = await database(name);
    const first = await start(testConfig(db.dir, { databaseUrl: db.url, mainSecret: KEY_1 }));
    const app = (await first.api('POST', '/app', { name: 'A' })).body;
    const ep = (await first.api('POST', `/app/${app.id}/endpoint`, { url: 'http://127.0.0.1:9/x', secret: SECRET })).body;
    await first.hl.close();

    const wrong = startHooklane(testConfig(db.dir, { databaseUrl: db.url, mainSecret: KEY_2 }), { logger: pino({ level: 'silent' }) });
    await expect(wrong).rejects.toThrow(ConfigError);
    await expect(wrong).rejects.toThrow('HOOKLANE_MAIN_SECRET does not match the key this database was encrypted with');

    const again = await start(testConfig(db.dir, { databaseUrl: db.url, mainSecret: KEY_1 }));
    expect((await again.api('GET', `/app/${app.id}/endpoint/${ep.id}/secret`)).body.key).toBe(SECRET);
  });

  test.skipIf(!available)('endpoint secrets stored in plaintext by an older version are sealed on upgrade', async () => {
    const db = await database(name);
    const legacy = JSON.stringify([{ key: SECRET, expiresAt: null }]);
    const rows = [
      "INSERT INTO applications VALUES ('app_old', 'old', 'Old', '{}', NULL, 0, 0)",
      `INSERT INTO endpoints VALUES ('ep_old', 'app_old', NULL, 'http://127.0.0.1:9/x', '', false, NULL, NULL, '{}', NULL, '{}', '${legacy}', NULL, 0, 0)`,
    ];
    await previousReleaseSchema(db, {
      pg: async (pg) => {
        for (const sql of rows) await pg.sql(sql);
      },
      sqlite: (raw) => {
        for (const sql of rows) raw.exec(sql.replace('false', '0'));
      },
    });
    expect((await db.rawSecrets()).join()).toContain(SECRET);

    const { hl, api } = await start(testConfig(db.dir, { databaseUrl: db.url, mainSecret: KEY_1 }));
    const stored = await db.rawSecrets();
    expect(stored[0]).toMatch(/^"?hlenc1:/);
    expectNoSecretText(stored.join());
    expect((await api('GET', '/app/old/endpoint/ep_old/secret')).body.key).toBe(SECRET);
    await hl.close();
    if (!db.pg) expectNoSecretText(sqliteBytes(db.dir));
  });
});

describe('the main secret', () => {
  test('SQLite without HOOKLANE_MAIN_SECRET: one is generated next to the database (mode 0600, with a warning) and reused', async () => {
    const db = await database('sqlite');
    const config = testConfig(db.dir, { mainSecret: undefined });
    const file = join(db.dir, MAIN_SECRET_FILE);
    const log = capture();
    const first = await start(config, log.logger);
    expect(existsSync(file)).toBe(true);
    const key = readFileSync(file, 'utf8').trim();
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    if (process.platform !== 'win32') expect(statSync(file).mode & 0o777).toBe(0o600);
    const warning = log.lines().find((l) => l.level === 40 && String(l.msg).includes('HOOKLANE_MAIN_SECRET is not set'));
    expect(warning).toMatchObject({ file });
    expect(log.text()).not.toContain(key);

    const app = (await first.api('POST', '/app', { name: 'A' })).body;
    const ep = (await first.api('POST', `/app/${app.id}/endpoint`, { url: 'http://127.0.0.1:9/x', secret: SECRET })).body;
    await first.hl.close();
    expectNoSecretText(sqliteBytes(db.dir));

    const log2 = capture();
    const second = await start(config, log2.logger);
    expect(readFileSync(file, 'utf8').trim()).toBe(key);
    expect(log2.text()).not.toContain('generated');
    expect((await second.api('GET', `/app/${app.id}/endpoint/${ep.id}/secret`)).body.key).toBe(SECRET);
  });

  test('SQLite: a lost key file is not silently replaced; the start fails and leaves no new key behind', async () => {
    const db = await database('sqlite');
    const config = testConfig(db.dir, { mainSecret: undefined });
    const first = await start(config);
    await first.api('POST', '/app', { name: 'A' });
    await first.hl.close();
    unlinkSync(join(db.dir, MAIN_SECRET_FILE));

    const failed = startHooklane(config, { logger: pino({ level: 'silent' }) });
    await expect(failed).rejects.toThrow(/HOOKLANE_MAIN_SECRET does not match the key this database was encrypted with.*No key file was found at .*main-secret\.key/);
    expect(existsSync(join(db.dir, MAIN_SECRET_FILE))).toBe(false);
  });

  test.skipIf(!ENGINE_CASES[1]!.available)('PostgreSQL requires HOOKLANE_MAIN_SECRET: the start fails naming it, and so does `hooklane serve`', async () => {
    const db = await database('postgres');
    const failed = startHooklane(testConfig(db.dir, { databaseUrl: db.url, mainSecret: undefined }), { logger: pino({ level: 'silent' }) });
    await expect(failed).rejects.toThrow(ConfigError);
    await expect(failed).rejects.toThrow(/HOOKLANE_MAIN_SECRET is required with PostgreSQL/);

    const served = await cli(['serve'], { HOOKLANE_DATABASE_URL: db.url, HOOKLANE_MAIN_SECRET: undefined, HOOKLANE_PORT: '0', HOOKLANE_HOST: '127.0.0.1', HOOKLANE_API_TOKEN: 'x' });
    expect(served.code).toBe(2);
    expect(served.stderr).toMatch(/^hooklane: HOOKLANE_MAIN_SECRET is required with PostgreSQL/);
  }, 60_000);

  test('a malformed HOOKLANE_MAIN_SECRET is refused by name, without echoing it', () => {
    const short = 'too-short-secret';
    const load = () => loadConfig({}, { HOOKLANE_MAIN_SECRET: short });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/HOOKLANE_MAIN_SECRET=\(hidden\): must be at least 32 characters/);
    try {
      load();
    } catch (e) {
      expect((e as Error).message).not.toContain(short);
    }
    expect(loadConfig({}, { HOOKLANE_MAIN_SECRET: KEY_1 }).mainSecret).toBe(KEY_1);
    expect(loadConfig({}, {}).mainSecret).toBeUndefined();
  });
});
