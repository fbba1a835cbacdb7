import type pg from 'pg';
import { tx } from './db.js';

/**
 * Numbered, forward-only migrations for PostgreSQL. They run in one
 * transaction together with the schema_migrations rows that record them,
 * under a transaction-scoped advisory lock: two processes starting at once
 * migrate once (the second waits, then finds nothing to do).
 *
 * Conventions of the schema:
 * - times are epoch milliseconds in BIGINT;
 * - key and name columns are COLLATE "C" so that ids sort bytewise, as they
 *   are designed to (time-sortable base62), whatever the database locale;
 * - JSON objects whose key order is the user's (metadata, headers, schemas)
 *   are `json`, which keeps the text as given; message channels are `jsonb`
 *   for the `?` containment test of the channel filter;
 * - constraint names are fixed: db.ts maps them to the field of a UniqueViolation.
 */
export const MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE settings (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE applications (
  id TEXT COLLATE "C" NOT NULL,
  uid TEXT COLLATE "C",
  name TEXT NOT NULL,
  metadata JSON NOT NULL,
  throttle_rate INTEGER,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  CONSTRAINT applications_pkey PRIMARY KEY (id),
  CONSTRAINT applications_uid_key UNIQUE (uid)
);

CREATE TABLE event_types (
  name TEXT COLLATE "C" NOT NULL,
  description TEXT NOT NULL,
  archived BOOLEAN NOT NULL,
  deprecated BOOLEAN NOT NULL,
  feature_flag TEXT,
  schemas JSON,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  CONSTRAINT event_types_pkey PRIMARY KEY (name)
);

CREATE TABLE endpoints (
  id TEXT COLLATE "C" NOT NULL,
  app_id TEXT COLLATE "C" NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  uid TEXT COLLATE "C",
  url TEXT NOT NULL,
  description TEXT NOT NULL,
  disabled BOOLEAN NOT NULL,
  event_types JSON,
  channels JSON,
  metadata JSON NOT NULL,
  throttle_rate INTEGER,
  headers JSON NOT NULL,
  secrets JSON NOT NULL,
  failing_since BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  CONSTRAINT endpoints_pkey PRIMARY KEY (id),
  CONSTRAINT endpoints_app_uid_key UNIQUE (app_id, uid)
);
CREATE INDEX endpoints_app ON endpoints(app_id, id);

CREATE TABLE messages (
  id TEXT COLLATE "C" NOT NULL,
  app_id TEXT COLLATE "C" NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  event_id TEXT COLLATE "C",
  event_type TEXT COLLATE "C" NOT NULL,
  channels JSONB,
  payload TEXT,
  created_at BIGINT NOT NULL,
  CONSTRAINT messages_pkey PRIMARY KEY (id)
);
CREATE INDEX messages_app ON messages(app_id, id);
CREATE UNIQUE INDEX messages_event_id_key ON messages(app_id, event_id) WHERE event_id IS NOT NULL;

-- status: 0 success, 1 pending, 2 fail, 3 sending (the contract's values)
CREATE TABLE deliveries (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  msg_id TEXT COLLATE "C" NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  app_id TEXT COLLATE "C" NOT NULL,
  endpoint_id TEXT COLLATE "C" NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
  status SMALLINT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at BIGINT,
  lease_until BIGINT,
  -- the worker that holds the lease: only it extends it or records the outcome
  lease_owner TEXT,
  manual BOOLEAN NOT NULL DEFAULT false,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  CONSTRAINT deliveries_msg_endpoint_key UNIQUE (msg_id, endpoint_id)
);
CREATE INDEX deliveries_due ON deliveries(endpoint_id, next_attempt_at) WHERE status = 1;
CREATE INDEX deliveries_leased ON deliveries(lease_until) WHERE status = 3;
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, msg_id);
CREATE INDEX deliveries_app ON deliveries(app_id);

-- One row per endpoint that has pending work. Claimers lock these rows with
-- SKIP LOCKED: each endpoint is worked by one claim at a time, endpoints are
-- picked by due time, and one endpoint's backlog is never scanned to reach
-- another's.
CREATE TABLE endpoint_queue (
  endpoint_id TEXT COLLATE "C" PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE,
  next_due_at BIGINT NOT NULL
);
CREATE INDEX endpoint_queue_due ON endpoint_queue(next_due_at, endpoint_id);

CREATE TABLE attempts (
  id TEXT COLLATE "C" PRIMARY KEY,
  msg_id TEXT COLLATE "C" NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  endpoint_id TEXT COLLATE "C" NOT NULL,
  app_id TEXT COLLATE "C" NOT NULL,
  url TEXT NOT NULL,
  status SMALLINT NOT NULL,
  status_code INTEGER NOT NULL,
  response TEXT NOT NULL,
  duration_ms INTEGER NOT NULL,
  trigger_type SMALLINT NOT NULL,
  error TEXT,
  created_at BIGINT NOT NULL
);
CREATE INDEX attempts_msg ON attempts(msg_id, id);
CREATE INDEX attempts_endpoint ON attempts(endpoint_id, id);
CREATE INDEX attempts_app ON attempts(app_id);

CREATE TABLE idempotency (
  key TEXT COLLATE "C" PRIMARY KEY,
  status_code INTEGER NOT NULL,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'api_tokens',
    // Tokens are stored as sha256 (hex) only. app_id NULL is an admin token,
    // otherwise the one application the token reaches. The admin token that
    // older versions generated at first start (a hash in settings) moves here.
    sql: `
CREATE TABLE api_tokens (
  id TEXT COLLATE "C" NOT NULL,
  name TEXT NOT NULL,
  hash TEXT COLLATE "C" NOT NULL,
  app_id TEXT COLLATE "C" REFERENCES applications(id) ON DELETE CASCADE,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT,
  revoked_at BIGINT,
  CONSTRAINT api_tokens_pkey PRIMARY KEY (id),
  CONSTRAINT api_tokens_hash_key UNIQUE (hash)
);
CREATE INDEX api_tokens_app ON api_tokens(app_id);
INSERT INTO api_tokens (id, name, hash, app_id, created_at)
  SELECT 'tok_generated_admin', 'admin (generated at first start)', value, NULL, (extract(epoch FROM now()) * 1000)::bigint
  FROM settings WHERE key = 'admin_token_sha256';
DELETE FROM settings WHERE key = 'admin_token_sha256';
`,
  },
  {
    version: 3,
    name: 'deliveries_leased_endpoint',
    // The claim counts an endpoint's unexpired leases, across processes, to
    // hold endpointConcurrency globally (queue/claim.ts): this reads only the
    // leased rows of the endpoints asked about, never their pending backlog.
    // Built inside the migration transaction (not CONCURRENTLY): writes to
    // deliveries wait for the build, which scans the table once.
    sql: `
CREATE INDEX deliveries_leased_endpoint ON deliveries(endpoint_id, lease_until) WHERE status = 3;
`,
  },
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * Brings the schema on `search_path` up to date; returns how many migrations
 * ran. Refuses a schema newer than this code (an older Hooklane must not
 * write to a database a newer one has changed).
 */
export async function migrate(pool: pg.Pool): Promise<number> {
  return tx(pool, async (c) => {
    // Keyed by schema, so tests migrating their own schemas do not queue behind each other.
    await c.query("SELECT pg_advisory_xact_lock(hashtext('hooklane:migrate'), hashtext(COALESCE(current_schema(), '')))");
    await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    const { rows } = await c.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations');
    const current = rows[0]?.v ?? 0;
    if (current > LATEST_VERSION) {
      throw new Error(`database schema version ${current} is newer than this Hooklane (${LATEST_VERSION}); upgrade Hooklane`);
    }
    let applied = 0;
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      await c.query(m.sql);
      await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
      applied++;
    }
    return applied;
  });
}

/** The schema version recorded in the database (0 when never migrated). */
export async function schemaVersion(pool: pg.Pool): Promise<number> {
  const exists = await pool.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
  if (exists.rows[0]?.t == null) return 0;
  const { rows } = await pool.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations');
  return rows[0]?.v ?? 0;
}
