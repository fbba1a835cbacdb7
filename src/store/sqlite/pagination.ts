import type { Page, PageQuery } from '../types.js';

/**
 * Keyset pagination over a unique, ordered key column. An iterator is the
 * key of the last row returned; `-key` walks back from the first row of a
 * page (that is what `prevIterator` holds).
 */
export interface PagedSql {
  /** Extra WHERE and ORDER BY for the keyset, and the LIMIT. */
  where: string;
  orderBy: string;
  params: unknown[];
  limit: number;
  backwards: boolean;
}

export function pageSql(column: string, q: PageQuery): PagedSql {
  const backwards = q.iterator !== null && q.iterator.startsWith('-');
  const key = q.iterator === null ? null : backwards ? q.iterator.slice(1) : q.iterator;
  // Walking backwards flips both the comparison and the sort.
  const ascending = (q.order === 'asc') !== backwards;
  const where = key === null ? '1=1' : `${column} ${ascending ? '>' : '<'} ?`;
  return {
    where,
    orderBy: `${column} ${ascending ? 'ASC' : 'DESC'}`,
    params: key === null ? [] : [key],
    limit: q.limit + 1,
    backwards,
  };
}

export function toPage<R, T>(rows: R[], q: PageQuery, backwards: boolean, key: (r: R) => string, map: (r: R) => T): Page<T> {
  const more = rows.length > q.limit;
  const slice = more ? rows.slice(0, q.limit) : rows;
  if (backwards) slice.reverse();
  const data = slice.map(map);
  const first = slice[0];
  const last = slice[slice.length - 1];
  if (backwards) {
    return {
      data,
      iterator: last ? key(last) : null,
      prevIterator: first ? '-' + key(first) : null,
      done: !more,
    };
  }
  return {
    data,
    iterator: last ? key(last) : q.iterator,
    prevIterator: first ? '-' + key(first) : null,
    done: !more,
  };
}
