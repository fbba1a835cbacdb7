import type pg from 'pg';
import { Status } from '../../types.js';
import { notifyWork, tx } from '../db.js';
import { earliest, enqueueEndpoints } from './endpoint-queue.js';

/**
 * Graceful shutdown: makes the deliveries `owner` still holds pending and
 * due now, and notifies the other workers. Rows are locked in id order, as
 * the heartbeat and completion of the same worker lock them; the queue rows
 * are written after the deliveries, as every writer that makes work due does.
 */
export async function releaseLeases(pool: pg.Pool, owner: string, deliveryIds: number[]): Promise<number> {
  if (deliveryIds.length === 0) return 0;
  return tx(pool, async (c) => {
    const now = Date.now();
    const { rows } = await c.query<{ endpoint_id: string }>(
      `UPDATE deliveries SET status = ${Status.pending}, lease_until = NULL, lease_owner = NULL, next_attempt_at = $3, updated_at = $3
       WHERE id IN (SELECT id FROM deliveries WHERE id = ANY($1::bigint[]) AND status = ${Status.sending} AND lease_owner = $2 ORDER BY id FOR UPDATE)
       RETURNING endpoint_id`,
      [deliveryIds, owner, now],
    );
    if (rows.length === 0) return 0;
    const due = new Map<string, number>();
    for (const r of rows) earliest(due, r.endpoint_id, now);
    await enqueueEndpoints(c, due);
    await notifyWork(c);
    return rows.length;
  });
}
