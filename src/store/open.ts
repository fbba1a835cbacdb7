import { SqliteStore } from './sqlite/store.js';
import type { Store } from './types.js';

/** Picks the engine from the database URL. */
export async function openStore(url: string): Promise<Store> {
  if (url.startsWith('sqlite:')) return SqliteStore.fromUrl(url);
  throw new Error(`unsupported database URL ${url.split(':')[0]}: (PostgreSQL support is not built yet)`);
}
