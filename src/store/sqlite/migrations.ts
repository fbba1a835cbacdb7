import type Database from 'better-sqlite3';

/**
 * Numbered, forward-only migrations. Each runs in a transaction together
 * with the row that records it; the write lock SQLite takes for
 * `BEGIN IMMEDIATE` keeps two processes from migrating at once.
 */
export const MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE applications (
  id TEXT PRIMARY KEY,
  uid TEXT UNIQUE,
  name TEXT NOT NULL,
  metadata TEXT NOT NULL,
  throttle_rate INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE event_types (
  name TEXT PRIMARY KEY,
  description TEXT NOT NULL,
  archived INTEGER NOT NULL,
  deprecated INTEGER NOT NULL,
  feature_flag TEXT,
  schemas TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE endpoints (
  id TEXT PRIMARY KEY,
  app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  uid TEXT,
  url TEXT NOT NULL,
  description TEXT NOT NULL,
  disabled INTEGER NOT NULL,
  event_types TEXT,
  channels TEXT,
  metadata TEXT NOT NULL,
  throttle_rate INTEGER,
  headers TEXT NOT NULL,
  secrets TEXT NOT NULL,
  failing_since INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (app_id, uid)
);
CREATE INDEX endpoints_app ON endpoints(app_id, id);

CREATE TABLE messages (
  id TEXT PRIMARY KEY,
  app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  event_id TEXT,
  event_type TEXT NOT NULL,
  channels TEXT,
  payload TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX messages_app ON messages(app_id, id);
CREATE UNIQUE INDEX messages_event_id ON messages(app_id, event_id) WHERE event_id IS NOT NULL;

-- status: 0 success, 1 pending, 2 fail, 3 sending (the contract's values)
CREATE TABLE deliveries (
  id INTEGER PRIMARY KEY,
  msg_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  app_id TEXT NOT NULL,
  endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
  status INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,
  lease_until INTEGER,
  manual INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (msg_id, endpoint_id)
);
CREATE INDEX deliveries_due ON deliveries(endpoint_id, next_attempt_at) WHERE status = 1;
CREATE INDEX deliveries_leased ON deliveries(lease_until) WHERE status = 3;
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, msg_id);

-- One row per endpoint that has pending work: lets the dispatcher pick
-- endpoints by due time without scanning one endpoint's whole backlog.
CREATE TABLE endpoint_queue (
  endpoint_id TEXT PRIMARY KEY,
  next_due_at INTEGER NOT NULL
);
CREATE INDEX endpoint_queue_due ON endpoint_queue(next_due_at);

CREATE TABLE attempts (
  id TEXT PRIMARY KEY,
  msg_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  endpoint_id TEXT NOT NULL,
  app_id TEXT NOT NULL,
  url TEXT NOT NULL,
  status INTEGER NOT NULL,
  status_code INTEGER NOT NULL,
  response TEXT NOT NULL,
  duration_ms INTEGER NOT NULL,
  trigger_type INTEGER NOT NULL,
  error TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX attempts_msg ON attempts(msg_id, id);
CREATE INDEX attempts_endpoint ON attempts(endpoint_id, id);

CREATE TABLE idempotency (
  key TEXT PRIMARY KEY,
  status_code INTEGER NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'lease_owner',
    // The worker that holds a lease: only it extends the lease or records the outcome.
    sql: 'ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;',
  },
  {
    version: 3,
    name: 'api_tokens',
    // Tokens are stored as sha256 (hex) only. app_id NULL is an admin token,
    // otherwise the one application the token reaches. The admin token that
    // older versions generated at first start (a hash in settings) moves here.
    sql: `
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  app_id TEXT REFERENCES applications(id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER,
  revoked_at INTEGER
);
INSERT INTO api_tokens (id, name, hash, app_id, created_at)
  SELECT 'tok_generated_admin', 'admin (generated at first start)', value, NULL, CAST(strftime('%s', 'now') AS INTEGER) * 1000
  FROM settings WHERE key = 'admin_token_sha256';
DELETE FROM settings WHERE key = 'admin_token_sha256';
`,
  },
];

export function migrate(db: Database.Database): number {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  const latest = MIGRATIONS[MIGRATIONS.length - 1]!.version;
  let applied = 0;
  db.transaction(() => {
    const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
    const current = row.v ?? 0;
    if (current > latest) {
      throw new Error(`database schema version ${current} is newer than this Hooklane (${latest}); upgrade Hooklane`);
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
      applied++;
    }
  }).immediate();
  return applied;
}
