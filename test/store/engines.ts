import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { SecretBox } from '../../src/auth/secret-box.js';
import type { SecretCipher } from '../../src/store/endpoint-secrets.js';
import { migrate as migratePostgres } from '../../src/store/postgres/migrations.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { migrate as migrateSqlite } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { Store } from '../../src/store/types.js';
import { tempDir } from '../helpers/server.js';

/**
 * How the conformance suite gets a fresh, isolated database per test:
 * SQLite a new file in a temp directory; PostgreSQL a new schema
 * (hl_test_<random>) that every connection of the test uses through
 * search_path, dropped afterwards.
 */
export interface Harness {
  store: Store;
  /** Runs the engine's migrations again on the same database; returns how many ran. */
  migrateAgain(): Promise<number>;
  /** Records a schema version newer than the code knows. */
  recordVersion(version: number): Promise<void>;
  /** Opens another store on the same database (a second process); closed by cleanup. TEST_CIPHER unless given (null: none). */
  open(opts?: { migrate?: boolean; max?: number; cipher?: SecretCipher | null }): Promise<Store>;
  /** Runs SQL on the database directly (inspection and fault injection). */
  sql<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  cleanup(): Promise<void>;
}

export interface Engine {
  name: string;
  available: boolean;
  create(): Promise<Harness>;
}

export const PG_URL = process.env.HOOKLANE_TEST_DATABASE_URL;

/** The cipher that seals endpoint secrets in conformance stores (openStore builds it from HOOKLANE_MAIN_SECRET). */
export const TEST_CIPHER = SecretBox.fromMainSecret('conformance-main-secret-0123456789abcdef');

const sqlite: Engine = {
  name: 'sqlite',
  available: true,
  async create() {
    const dir = tempDir('hooklane-store-');
    const file = join(dir, 'hooklane.db');
    const store = new SqliteStore(file, { cipher: TEST_CIPHER });
    const extra: SqliteStore[] = [];
    return {
      store,
      migrateAgain: async () => migrateSqlite(store.db),
      recordVersion: async (v) => {
        store.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(v, 'from the future', Date.now());
      },
      open: async (opts = {}) => {
        const s = new SqliteStore(file, { cipher: opts.cipher === undefined ? TEST_CIPHER : (opts.cipher ?? undefined) });
        extra.push(s);
        return s;
      },
      sql: async <T>(text: string, params: unknown[] = []) => {
        const stmt = store.db.prepare(text.replace(/\$\d+/g, '?'));
        return (stmt.reader ? stmt.all(...params) : (stmt.run(...params), [])) as T[];
      },
      cleanup: async () => {
        for (const s of extra) await s.close();
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

const postgres: Engine = {
  name: 'postgres',
  available: PG_URL !== undefined && PG_URL !== '',
  async create() {
    const url = PG_URL!;
    const schema = `hl_test_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Pool({ connectionString: url, max: 1 });
    await admin.query(`CREATE SCHEMA ${schema}`);
    const stores: PostgresStore[] = [];
    const open = async ({ cipher, ...opts }: { migrate?: boolean; max?: number; cipher?: SecretCipher | null } = {}) => {
      const s = await PostgresStore.open(url, { schema, ...opts, cipher: cipher === undefined ? TEST_CIPHER : (cipher ?? undefined) });
      stores.push(s);
      return s;
    };
    const store = await open();
    return {
      store,
      migrateAgain: () => migratePostgres(store.pool),
      recordVersion: async (v) => {
        await store.pool.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [v, 'from the future', Date.now()]);
      },
      open,
      sql: async <T>(text: string, params: unknown[] = []) => (await store.pool.query(text, params)).rows as T[],
      cleanup: async () => {
        for (const s of stores) await s.close();
        await admin.query(`DROP SCHEMA ${schema} CASCADE`);
        await admin.end();
      },
    };
  },
};

export const ENGINES: Engine[] = [sqlite, postgres];

/** A fresh schema of its own, not migrated, for migration tests (PostgreSQL). */
export async function emptyPostgresSchema(): Promise<{ schema: string; drop(): Promise<void> }> {
  const schema = `hl_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL!, max: 1 });
  await admin.query(`CREATE SCHEMA ${schema}`);
  return {
    schema,
    drop: async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}
