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
}

/** Picks the engine from the database URL. */
export async function openStore(url: string, opts: OpenOptions = {}): Promise<Store> {
  if (url.startsWith('sqlite:')) return SqliteStore.fromUrl(url);
  if (/^postgres(ql)?:\/\//.test(url)) return PostgresStore.open(url, { migrate: opts.migrate ?? true });
  throw new Error(`unsupported database URL ${url.split(':')[0]}: (use sqlite: or postgres://)`);
}
