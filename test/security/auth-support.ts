import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Config } from '../../src/config.js';
import { MIGRATIONS as PG_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { MIGRATIONS as SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { PG_URL } from '../store/engines.js';

/** Shared pieces of the secrets-and-auth suites: a server on either engine, the CLI. */

export interface EngineCase {
  name: 'sqlite' | 'postgres';
  available: boolean;
}
export const ENGINE_CASES: EngineCase[] = [
  { name: 'sqlite', available: true },
  { name: 'postgres', available: PG_URL !== undefined && PG_URL !== '' },
];

export interface PgSchema {
  /** PG_URL with this schema on the search_path of every connection. */
  url: string;
  schema: string;
  sql<T = any>(text: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A fresh PostgreSQL schema of its own (not migrated). */
export async function pgSchema(): Promise<PgSchema> {
  const schema = `hl_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL!, max: 2 });
  await admin.query(`CREATE SCHEMA ${schema}`);
  const url = new URL(PG_URL!);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    schema,
    sql: async (text, params = []) => {
      const c = await admin.connect();
      try {
        await c.query(`SET search_path = ${schema}`);
        return (await c.query(text, params)).rows;
      } finally {
        c.release();
      }
    },
    drop: async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}

/** A real server on a SQLite file, or on a PostgreSQL schema of its own. */
export async function startOn(engine: EngineCase['name'], overrides: Partial<Config> = {}): Promise<TestServer & { pg?: PgSchema }> {
  if (engine === 'sqlite') return startServer(overrides);
  const schema = await pgSchema();
  const server = await startServer({ databaseUrl: schema.url, ...overrides });
  return {
    ...server,
    pg: schema,
    close: async () => {
      await server.close();
      await schema.drop();
    },
  };
}

/**
 * The schema as the previous release left it (PostgreSQL migration 1, SQLite
 * migrations 1-2, recorded in schema_migrations), in the PostgreSQL schema
 * `db.pg` or else the SQLite file in `db.dir`; `seed` then adds the rows
 * that release wrote.
 */
export async function previousReleaseSchema(
  db: { dir: string; pg?: PgSchema },
  seed: { pg(pg: PgSchema): Promise<void>; sqlite(raw: Database.Database): void },
): Promise<void> {
  if (db.pg) {
    await db.pg.sql('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    await db.pg.sql(PG_MIGRATIONS[0]!.sql);
    await db.pg.sql("INSERT INTO schema_migrations VALUES (1, 'initial', 0)");
    await seed.pg(db.pg);
  } else {
    const raw = new Database(join(db.dir, 'hooklane.db'));
    raw.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    for (const m of SQLITE_MIGRATIONS.slice(0, 2)) {
      raw.exec(m.sql);
      raw.prepare('INSERT INTO schema_migrations VALUES (?, ?, 0)').run(m.version, m.name);
    }
    seed.sqlite(raw);
    raw.close();
  }
}

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

/** Runs `hooklane …` to its end, with stdout and stderr apart. */
export function cli(args: string[], env: Record<string, string | undefined>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const merged = Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([, v]) => v !== undefined)) as Record<string, string>;
    const proc = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { env: merged, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d) => (stdout += d));
    proc.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`hooklane ${args.join(' ')} did not finish: ${stdout}${stderr}`));
    }, 60_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
