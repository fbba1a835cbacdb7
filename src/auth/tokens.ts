import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { newId } from '../ids.js';
import type { ApiTokenRow, Store } from '../store/types.js';

/**
 * API tokens. A token is `hl_` + 32 random bytes (base64url); only its
 * sha256 is stored (the tokens are high-entropy, so a fast hash is enough:
 * there is nothing to brute-force). Two kinds:
 * - admin: the whole API (HOOKLANE_API_TOKEN, the token generated on the
 *   first start, `hooklane token create`);
 * - app: one application and what it owns (`hooklane token create --app`).
 */

/** Who is calling, as the route layer sees it (`req.auth`). */
export type Auth = { kind: 'admin'; tokenId: string | null } | { kind: 'app'; appId: string; tokenId: string };

export const TOKEN_PREFIX = 'hl_';
/** A revoked token may keep working this long in processes that cached it. */
export const TOKEN_CACHE_MS = 5_000;
/** last_used_at is written at most this often per token. */
export const TOUCH_INTERVAL_MS = 60_000;
const CACHE_MAX = 10_000;
/** Settings key that elects the one process that generates the first admin token. */
const GENERATED_ADMIN_SETTING = 'generated_admin_token_id';

export const generateToken = (): string => TOKEN_PREFIX + randomBytes(32).toString('base64url');
export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === 32 && y.length === 32 && timingSafeEqual(x, y);
}

/** Creates a token; the token text is returned once and never stored. */
export async function createToken(store: Store, opts: { name: string; appId: string | null; now?: number }): Promise<{ token: string; row: ApiTokenRow }> {
  const now = opts.now ?? Date.now();
  const token = generateToken();
  const row: ApiTokenRow = { id: newId('tok', now), name: opts.name, hash: hashToken(token), appId: opts.appId, createdAt: now, lastUsedAt: null, revokedAt: null };
  await store.insertToken(row);
  return { token, row };
}

/**
 * With no HOOKLANE_API_TOKEN and no admin token in the table yet (the first
 * start), creates one and returns its text to be shown once. Processes
 * starting together elect one creator through a settings claim.
 */
export async function bootstrapAdminToken(store: Store, envToken: string | undefined): Promise<string | null> {
  if (envToken) return null;
  if ((await store.listTokens()).some((t) => t.appId === null)) return null;
  const id = newId('tok');
  if ((await store.claimSetting(GENERATED_ADMIN_SETTING, id)) !== id) return null;
  const token = generateToken();
  await store.insertToken({
    id, name: 'admin (generated at first start)', hash: hashToken(token), appId: null, createdAt: Date.now(), lastUsedAt: null, revokedAt: null,
  });
  return token;
}

/**
 * Checks bearer tokens. Rows are cached briefly by hash so that a request
 * costs no database round trip; last_used_at is written at most once a
 * minute per token, in the background.
 */
export class TokenAuthenticator {
  private readonly envHash: string | null;
  private readonly cache = new Map<string, { row: ApiTokenRow | null; at: number }>();
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly store: Store,
    envToken: string | undefined,
    private readonly log: Logger,
  ) {
    this.envHash = envToken ? hashToken(envToken) : null;
  }

  async authenticate(token: string, now = Date.now()): Promise<Auth | null> {
    const hash = hashToken(token);
    if (this.envHash !== null && sameHash(hash, this.envHash)) return { kind: 'admin', tokenId: null };
    const row = await this.lookup(hash, now);
    // The row was found by its hash; compare again in constant time all the same.
    if (!row || row.revokedAt !== null || !sameHash(row.hash, hash)) return null;
    this.touch(row, now);
    return row.appId === null ? { kind: 'admin', tokenId: row.id } : { kind: 'app', appId: row.appId, tokenId: row.id };
  }

  /** Forget cached rows (after a revocation in this process). */
  invalidate(): void {
    this.cache.clear();
  }

  private async lookup(hash: string, now: number): Promise<ApiTokenRow | null> {
    const hit = this.cache.get(hash);
    if (hit && now - hit.at < TOKEN_CACHE_MS) return hit.row;
    const row = await this.store.findTokenByHash(hash);
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    // Unknown hashes are not cached: they would let anyone fill the cache.
    if (row) this.cache.set(hash, { row, at: now });
    else this.cache.delete(hash);
    return row;
  }

  private touch(row: ApiTokenRow, now: number): void {
    const last = Math.max(this.touched.get(row.id) ?? 0, row.lastUsedAt ?? 0);
    if (now - last < TOUCH_INTERVAL_MS) return;
    if (this.touched.size >= CACHE_MAX) this.touched.clear();
    this.touched.set(row.id, now);
    this.store.touchToken(row.id, now, now - TOUCH_INTERVAL_MS).catch((e: unknown) => this.log.warn({ err: e, tokenId: row.id }, 'recording token use failed'));
  }
}
