import type { PageQuery } from '../types.js';
import type { Params } from './db.js';

// Turning rows into a page is engine-neutral: shared with the SQLite engine.
export { toPage } from '../sqlite/pagination.js';

/**
 * Keyset pagination over a unique key column (COLLATE "C", so bytewise like
 * SQLite). An iterator is the key of the last row returned; `-key` walks
 * back from the first row of a page (that is what `prevIterator` holds).
 */
export function pageSql(column: string, q: PageQuery, params: Params): { where: string; orderBy: string; limit: string; backwards: boolean } {
  const backwards = q.iterator !== null && q.iterator.startsWith('-');
  const key = q.iterator === null ? null : backwards ? q.iterator.slice(1) : q.iterator;
  // Walking backwards flips both the comparison and the sort.
  const ascending = (q.order === 'asc') !== backwards;
  return {
    where: key === null ? 'TRUE' : `${column} ${ascending ? '>' : '<'} ${params.add(key)}`,
    orderBy: `${column} ${ascending ? 'ASC' : 'DESC'}`,
    limit: params.add(q.limit + 1),
    backwards,
  };
}
