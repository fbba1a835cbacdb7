import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Config } from '../../src/config.js';
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
