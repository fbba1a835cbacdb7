import pg from 'pg';
import { UniqueViolation } from '../types.js';

/** Anything that runs a query: the pool, or one client inside a transaction. */
export type Db = pg.Pool | pg.PoolClient | pg.Client;

/** NOTIFY channel that tells every dispatcher new work was written. */
export const WORK_CHANNEL = 'hooklane_work';

const INT8_OID = 20;

/**
 * Timestamps (epoch ms), ids and counts are BIGINT; all stay below 2^53, so
 * they are parsed to numbers. Per connection, not pg.types globally, so other
 * pg users in the process keep their defaults.
 */
export const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

export interface ConnectOptions {
  /** Schema to work in (sets search_path for every connection); default: the server's. */
  schema?: string;
  /** Pool size (default 10). */
  max?: number;
  /** application_name of the connections, shown in pg_stat_activity (an `application_name` in the URL wins). */
  applicationName?: string;
}

/**
 * How long getting a connection may take, pool wait included: with the
 * database unreachable (or the pool exhausted), a request fails with 503
 * after this rather than hanging.
 */
export const CONNECT_TIMEOUT_MS = 10_000;

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Client settings shared by the pool and the LISTEN connection. The schema
 * may also come in the URL (`?options=-c%20search_path%3D…`); pg lets the
 * URL win over `schema`.
 */
export function clientConfig(url: string, opts: ConnectOptions): pg.ClientConfig {
  const config: pg.ClientConfig = {
    connectionString: url,
    types: pgTypes,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // Notices a peer that vanished without closing the connection (network partition, failover).
    keepAlive: true,
    ...(opts.applicationName !== undefined ? { application_name: opts.applicationName } : {}),
  };
  if (opts.schema !== undefined) {
    if (!SCHEMA_NAME.test(opts.schema)) throw new Error(`invalid schema name ${JSON.stringify(opts.schema)}`);
    config.options = `-c search_path=${opts.schema}`;
  }
  return config;
}

export function createPool(url: string, opts: ConnectOptions): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(url, opts), max: opts.max ?? 10 });
  // An idle client that loses its connection is dropped by the pool; without a
  // listener the 'error' event would crash the process.
  pool.on('error', () => {});
  return pool;
}

const RETRYABLE = new Set(['40P01', '40001']); // deadlock detected, serialization failure

/**
 * Runs `fn` in a transaction on one pooled client. A deadlock or
 * serialization failure rolls back and runs it again (fn must be safe to
 * repeat); any other error rolls back and is rethrown.
 */
export async function tx<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    const client = await pool.connect();
    let broken: Error | undefined;
    // A checked-out client has no pool listener: a connection lost between two of
    // fn's queries would be emitted as an unhandled 'error' and kill the process.
    // The next query fails instead ("not queryable") and the client is discarded.
    const onError = (e: Error) => (broken ??= e);
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (e) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackError) {
        broken = rollbackError as Error; // the connection is unusable: let the pool discard it
      }
      if (i < attempts && RETRYABLE.has((e as { code?: string }).code ?? '')) {
        await new Promise((r) => setTimeout(r, 5 * i + Math.random() * 10 * i));
        continue;
      }
      throw e;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }
}

/** Constraint names of the schema, mapped to the record field they protect. */
const UNIQUE_FIELDS: Record<string, string> = {
  applications_pkey: 'id',
  applications_uid_key: 'uid',
  endpoints_pkey: 'id',
  endpoints_app_uid_key: 'uid',
  event_types_pkey: 'name',
  messages_pkey: 'id',
  messages_event_id_key: 'eventId',
};

/** The field a unique violation (SQLSTATE 23505) is about, or null for any other error. */
export function uniqueField(e: unknown): string | null {
  const err = e as { code?: string; constraint?: string };
  if (err.code !== '23505') return null;
  return UNIQUE_FIELDS[err.constraint ?? ''] ?? 'id';
}

export function rethrowUnique(e: unknown): never {
  const field = uniqueField(e);
  if (field) throw new UniqueViolation(field);
  throw e;
}

/** Delivered at COMMIT, once per transaction however often it is called. */
export async function notifyWork(db: Db): Promise<void> {
  await db.query(`NOTIFY ${WORK_CHANNEL}`);
}

/** `$n` placeholders: push a value, get its placeholder. */
export class Params {
  readonly values: unknown[] = [];
  constructor(...initial: unknown[]) {
    this.values.push(...initial);
  }
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}
