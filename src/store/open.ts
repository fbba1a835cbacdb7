import { KEY_CHECK_SETTING, type SecretCipher } from './endpoint-secrets.js';
import { PostgresStore } from './postgres/store.js';
import { SqliteStore } from './sqlite/store.js';
import type { Store } from './types.js';

export interface OpenOptions {
  /**
   * Bring the schema up to date on open (default true). With false a
   * PostgreSQL schema of another version is refused (run `hooklane migrate`
   * first); SQLite, embedded and single-process, always migrates.
   */
  migrate?: boolean;
  /** PostgreSQL: connections in this process's pool (default 10). */
  poolSize?: number;
  /** PostgreSQL: where the LISTEN connection goes when not `url` (a session-mode URL behind PgBouncer). */
  listenUrl?: string;
  /** PostgreSQL: application_name of the connections (pg_stat_activity). */
  applicationName?: string;
  /**
   * Seals endpoint secrets at rest (from HOOKLANE_MAIN_SECRET). Without one
   * the store can neither write nor read sealed secrets (tools that do not
   * touch endpoints).
   */
  cipher?: SecretCipher;
  /** SQLite: checkpoint the WAL on a worker thread (long-running servers). */
  backgroundCheckpoint?: boolean;
}

/** The key a database was first used with is not the one given. */
export class MainSecretMismatch extends Error {
  constructor() {
    super('HOOKLANE_MAIN_SECRET does not match the key this database was encrypted with; set the main secret it was first started with');
  }
}

/**
 * Picks the engine from the database URL. With a cipher: the key check value
 * in settings is set on first use and verified on every later open (a wrong
 * key fails here, never silently), then endpoint secrets still stored in
 * plaintext by an older version are sealed.
 */
export async function openStore(url: string, opts: OpenOptions = {}): Promise<Store> {
  const store = await openEngine(url, opts);
  if (opts.cipher) {
    try {
      const check = await store.claimSetting(KEY_CHECK_SETTING, opts.cipher.checkValue());
      if (!opts.cipher.matchesCheck(check)) throw new MainSecretMismatch();
      await store.sealPlaintextSecrets();
    } catch (e) {
      await store.close();
      throw e;
    }
  }
  return store;
}

async function openEngine(url: string, opts: OpenOptions): Promise<Store> {
  if (url.startsWith('sqlite:')) return SqliteStore.fromUrl(url, { cipher: opts.cipher, backgroundCheckpoint: opts.backgroundCheckpoint });
  if (/^postgres(ql)?:\/\//.test(url)) {
    return PostgresStore.open(url, {
      migrate: opts.migrate ?? true, max: opts.poolSize, listenUrl: opts.listenUrl, applicationName: opts.applicationName, cipher: opts.cipher,
    });
  }
  throw new Error(`unsupported database URL ${url.split(':')[0]}: (use sqlite: or postgres://)`);
}
