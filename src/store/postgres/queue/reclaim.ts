import type pg from 'pg';
import { Status } from '../../types.js';
import { notifyWork, tx } from '../db.js';
import { earliest, enqueueEndpoints } from './endpoint-queue.js';

/**
 * Makes deliveries whose lease ran out pending again, due now. Rows are
 * taken SKIP LOCKED: one being completed by its (late) owner right now is
 * left to it, and reclaimers in several processes split the work.
 */
export async function reclaimExpired(pool: pg.Pool, now: number): Promise<number> {
  // `now` may be "everything" (a single-process engine at start); never schedule in the future.
  const t = Math.min(now, Date.now());
  return tx(pool, async (c) => {
    const { rows } = await c.query<{ endpoint_id: string }>(
      `UPDATE deliveries SET status = ${Status.pending}, lease_until = NULL, lease_owner = NULL, next_attempt_at = $2
       WHERE id IN (SELECT id FROM deliveries WHERE status = ${Status.sending} AND lease_until < $1 FOR UPDATE SKIP LOCKED)
       RETURNING endpoint_id`,
      [now, t],
    );
    if (rows.length === 0) return 0;
    const due = new Map<string, number>();
    for (const r of rows) earliest(due, r.endpoint_id, t);
    await enqueueEndpoints(c, due);
    await notifyWork(c);
    return rows.length;
  });
}
