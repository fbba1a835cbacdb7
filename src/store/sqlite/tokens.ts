import type Database from 'better-sqlite3';
import { isPlaintextSecrets, sealSecrets, openSecrets, type SecretCipher } from '../endpoint-secrets.js';
import type { ApiTokenRow } from '../types.js';

/** API tokens, settings claims and the sealing of old plaintext secrets, for SQLite. */

interface TokenCols { id: string; name: string; hash: string; app_id: string | null; created_at: number; last_used_at: number | null; revoked_at: number | null }
const tokenFromRow = (r: TokenCols): ApiTokenRow => ({
  id: r.id, name: r.name, hash: r.hash, appId: r.app_id, createdAt: r.created_at, lastUsedAt: r.last_used_at, revokedAt: r.revoked_at,
});

export function insertToken(db: Database.Database, t: ApiTokenRow): void {
  db.prepare('INSERT INTO api_tokens (id, name, hash, app_id, created_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
    .run(t.id, t.name, t.hash, t.appId, t.createdAt, t.lastUsedAt, t.revokedAt);
}

export function findTokenByHash(db: Database.Database, hash: string): ApiTokenRow | null {
  const r = db.prepare('SELECT * FROM api_tokens WHERE hash = ?').get(hash) as TokenCols | undefined;
  return r ? tokenFromRow(r) : null;
}

export function listTokens(db: Database.Database): ApiTokenRow[] {
  return (db.prepare('SELECT * FROM api_tokens ORDER BY created_at, id').all() as TokenCols[]).map(tokenFromRow);
}

export function revokeToken(db: Database.Database, id: string, at: number): boolean {
  const exists = db.prepare('SELECT 1 FROM api_tokens WHERE id = ?').get(id) !== undefined;
  if (exists) db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id);
  return exists;
}

export function touchToken(db: Database.Database, id: string, at: number, notBefore: number): void {
  db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)').run(at, id, notBefore);
}

export function claimSetting(db: Database.Database, key: string, value: string): string {
  db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING').run(key, value);
  return (db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string }).value;
}

/** Seals every plaintext secrets column; one transaction, compare-and-set per row. */
export function sealPlaintextSecrets(db: Database.Database, cipher: SecretCipher | undefined): number {
  let n = 0;
  db.transaction(() => {
    const rows = db.prepare("SELECT id, secrets FROM endpoints WHERE secrets LIKE '[%'").all() as { id: string; secrets: string }[];
    const update = db.prepare('UPDATE endpoints SET secrets = ? WHERE id = ? AND secrets = ?');
    for (const r of rows) {
      if (!isPlaintextSecrets(r.secrets)) continue;
      n += update.run(sealSecrets(cipher, r.id, openSecrets(cipher, r.id, r.secrets)), r.id, r.secrets).changes;
    }
  }).immediate();
  return n;
}
