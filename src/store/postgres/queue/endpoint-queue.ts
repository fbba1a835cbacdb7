import type { Db } from '../db.js';

/**
 * Marks endpoints as having work due at the given times (an earlier time
 * wins). Rows are written in endpoint order, so writers that touch several
 * endpoints lock queue rows in one global order and cannot deadlock. A row
 * locked by a claim in progress makes this wait for that short transaction.
 */
export async function enqueueEndpoints(c: Db, due: Map<string, number>): Promise<void> {
  if (due.size === 0) return;
  const ids = [...due.keys()].sort();
  await c.query(
    `INSERT INTO endpoint_queue (endpoint_id, next_due_at)
     SELECT e, t FROM unnest($1::text[], $2::bigint[]) AS u(e, t) ORDER BY e
     ON CONFLICT (endpoint_id) DO UPDATE SET next_due_at = LEAST(endpoint_queue.next_due_at, excluded.next_due_at)`,
    [ids, ids.map((id) => due.get(id))],
  );
}

/** Adds `endpointId` due at `at` to a map of earliest due times. */
export function earliest(due: Map<string, number>, endpointId: string, at: number): void {
  const t = due.get(endpointId);
  if (t === undefined || at < t) due.set(endpointId, at);
}
