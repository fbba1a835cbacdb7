import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, test } from 'vitest';
import { openStore } from '../../src/store/open.js';
import { LATEST_VERSION, MIGRATIONS as PG_MIGRATIONS, migrate as migratePostgres } from '../../src/store/postgres/migrations.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { MIGRATIONS as SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { tempDir } from '../helpers/server.js';
import { PG_URL, emptyPostgresSchema } from './engines.js';

/** Engine-specific migration behaviour the conformance suite cannot express alike. */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('sqlite migrations', () => {
  test('a version 1 database gains lease_owner (version 2) and keeps its leased deliveries', async () => {
    const dir = tempDir('hooklane-migrate-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'v1.db');
    const db = new Database(file);
    db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    db.exec(SQLITE_MIGRATIONS[0]!.sql);
    db.prepare('INSERT INTO schema_migrations VALUES (1, ?, 0)').run('initial');
    db.exec(`INSERT INTO applications VALUES ('app_1', NULL, 'a', '{}', NULL, 0, 0);
             INSERT INTO endpoints VALUES ('ep_1', 'app_1', NULL, 'https://x', '', 0, NULL, NULL, '{}', NULL, '{}', '[]', NULL, 0, 0);
             INSERT INTO messages VALUES ('msg_1', 'app_1', NULL, 't', NULL, '{}', 0);
             INSERT INTO deliveries (msg_id, app_id, endpoint_id, status, lease_until, created_at, updated_at) VALUES ('msg_1', 'app_1', 'ep_1', 3, 5, 0, 0);`);
    db.close();

    const store = new SqliteStore(file);
    cleanups.push(() => store.close());
    const versions = store.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[];
    expect(versions.map((v) => v.version)).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
    // A lease from before owners existed is still reclaimed, then claimed with an owner.
    expect(await store.reclaimExpired(Number.MAX_SAFE_INTEGER)).toBe(1);
    const [c] = await store.claimDue('w', Date.now(), 10, 1000, () => 10);
    expect(c!.delivery.msgId).toBe('msg_1');
    expect(store.db.prepare('SELECT lease_owner FROM deliveries').get()).toEqual({ lease_owner: 'w' });
  });
});

describe.skipIf(!PG_URL)('postgres migrations', () => {
  async function schema(): Promise<string> {
    const s = await emptyPostgresSchema();
    cleanups.push(() => s.drop());
    return s.schema;
  }
  function pool(schemaName: string): pg.Pool {
    const p = new pg.Pool({ connectionString: PG_URL, options: `-c search_path=${schemaName}`, max: 1 });
    cleanups.push(() => p.end());
    return p;
  }

  test('processes starting at once migrate once', async () => {
    const s = await schema();
    const pools = Array.from({ length: 4 }, () => pool(s));
    const applied = await Promise.all(pools.map((p) => migratePostgres(p)));
    expect(applied.sort()).toEqual([0, 0, 0, PG_MIGRATIONS.length]);
    const { rows } = await pools[0]!.query('SELECT version FROM schema_migrations ORDER BY version');
    expect(rows.map((r) => r.version)).toEqual(PG_MIGRATIONS.map((m) => m.version));
  });

  test('migrate: false refuses a schema that is not current, and opens a current one', async () => {
    const s = await schema();
    await expect(PostgresStore.open(PG_URL!, { schema: s, migrate: false })).rejects.toThrow(/older than this Hooklane.*hooklane migrate/);
    const migrated = await PostgresStore.open(PG_URL!, { schema: s });
    cleanups.push(() => migrated.close());
    const store = await PostgresStore.open(PG_URL!, { schema: s, migrate: false });
    cleanups.push(() => store.close());
    expect(await store.getSetting('x')).toBeNull();
    await store.pool.query('INSERT INTO schema_migrations VALUES ($1, $2, 0)', [LATEST_VERSION + 1, 'future']);
    await expect(PostgresStore.open(PG_URL!, { schema: s, migrate: false })).rejects.toThrow(/newer than this Hooklane/);
    await expect(PostgresStore.open(PG_URL!, { schema: s })).rejects.toThrow(/newer than this Hooklane/);
  });

  test('openStore picks PostgreSQL for postgres:// and postgresql:// URLs, honouring migrate: false', async () => {
    const s = await schema();
    const url = new URL(PG_URL!);
    url.searchParams.set('options', `-c search_path=${s}`);
    await expect(openStore(url.toString(), { migrate: false })).rejects.toThrow(/older than this Hooklane/);
    for (const scheme of ['postgres:', 'postgresql:']) {
      url.protocol = scheme;
      const store = await openStore(url.toString());
      cleanups.push(() => store.close());
      expect(store.engine).toBe('postgres');
      expect(store.capabilities).toEqual({ singleProcess: false, notifications: true });
    }
    const { rows } = await pool(s).query('SELECT COUNT(*)::int AS n FROM schema_migrations');
    expect(rows[0].n).toBe(PG_MIGRATIONS.length);
  });
});
