import type pg from 'pg';
import { isPlaintextSecrets, openSecrets, sealSecrets, type SecretCipher } from '../endpoint-secrets.js';
import type { ApiTokenRow } from '../types.js';
import { tx } from './db.js';
import { jsonParam } from './rows.js';

/** API tokens, settings claims and the sealing of old plaintext secrets, for PostgreSQL. */

const TOKEN_COLS = 'id, name, hash, app_id, created_at, last_used_at, revoked_at';
interface TokenCols { id: string; name: string; hash: string; app_id: string | null; created_at: number; last_used_at: number | null; revoked_at: number | null }
const tokenFromRow = (r: TokenCols): ApiTokenRow => ({
  id: r.id, name: r.name, hash: r.hash, appId: r.app_id, createdAt: r.created_at, lastUsedAt: r.last_used_at, revokedAt: r.revoked_at,
});

export async function insertToken(pool: pg.Pool, t: ApiTokenRow): Promise<void> {
  await pool.query(`INSERT INTO api_tokens (${TOKEN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
    t.id, t.name, t.hash, t.appId, t.createdAt, t.lastUsedAt, t.revokedAt,
  ]);
}

export async function findTokenByHash(pool: pg.Pool, hash: string): Promise<ApiTokenRow | null> {
  const { rows } = await pool.query<TokenCols>(`SELECT ${TOKEN_COLS} FROM api_tokens WHERE hash = $1`, [hash]);
  return rows[0] ? tokenFromRow(rows[0]) : null;
}

export async function listTokens(pool: pg.Pool): Promise<ApiTokenRow[]> {
  return (await pool.query<TokenCols>(`SELECT ${TOKEN_COLS} FROM api_tokens ORDER BY created_at, id`)).rows.map(tokenFromRow);
}

export async function revokeToken(pool: pg.Pool, id: string, at: number): Promise<boolean> {
  // COALESCE keeps the first revocation time.
  const r = await pool.query('UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1', [id, at]);
  return (r.rowCount ?? 0) > 0;
}

export async function touchToken(pool: pg.Pool, id: string, at: number, notBefore: number): Promise<void> {
  await pool.query('UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)', [id, at, notBefore]);
}

export async function claimSetting(pool: pg.Pool, key: string, value: string): Promise<string> {
  // The no-op update makes RETURNING give the row whether it was inserted or already there.
  const { rows } = await pool.query<{ value: string }>(
    'INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = settings.value RETURNING value',
    [key, value],
  );
  return rows[0]!.value;
}

/**
 * Seals every plaintext secrets column (a JSON array; sealed ones are a JSON
 * string). The rows are locked while they are rewritten, so processes
 * starting together and concurrent endpoint updates are safe.
 */
export async function sealPlaintextSecrets(pool: pg.Pool, cipher: SecretCipher | undefined): Promise<number> {
  return tx(pool, async (c) => {
    const { rows } = await c.query<{ id: string; secrets: unknown }>(
      "SELECT id, secrets FROM endpoints WHERE json_typeof(secrets) = 'array' FOR UPDATE",
    );
    let n = 0;
    for (const r of rows) {
      if (!isPlaintextSecrets(r.secrets)) continue;
      const sealed = jsonParam(sealSecrets(cipher, r.id, openSecrets(cipher, r.id, r.secrets)));
      n += (await c.query('UPDATE endpoints SET secrets = $2 WHERE id = $1', [r.id, sealed])).rowCount ?? 0;
    }
    return n;
  });
}
