import type pg from 'pg';
import { Status } from '../../types.js';
import { notifyWork, tx } from '../db.js';
import { enqueueEndpoints } from './endpoint-queue.js';

/** (Re)queues one delivery for a manual attempt now. */
export async function resend(pool: pg.Pool, msgId: string, endpointId: string, now: number): Promise<void> {
  await tx(pool, async (c) => {
    const { rows } = await c.query<{ id: number; status: number }>(
      'SELECT id, status FROM deliveries WHERE msg_id = $1 AND endpoint_id = $2 FOR UPDATE',
      [msgId, endpointId],
    );
    const existing = rows[0];
    if (existing) {
      // A delivery in flight keeps its claim.
      if (existing.status === Status.sending) return;
      await c.query(`UPDATE deliveries SET status = ${Status.pending}, next_attempt_at = $1, manual = true, updated_at = $1 WHERE id = $2`, [now, existing.id]);
    } else {
      const ins = await c.query(
        `INSERT INTO deliveries (msg_id, app_id, endpoint_id, status, next_attempt_at, manual, created_at, updated_at)
         SELECT id, app_id, $2, ${Status.pending}, $3, true, $3, $3 FROM messages WHERE id = $1
         ON CONFLICT (msg_id, endpoint_id) DO NOTHING`,
        [msgId, endpointId, now],
      );
      if (ins.rowCount === 0) return;
    }
    await enqueueEndpoints(c, new Map([[endpointId, now]]));
    await notifyWork(c);
  });
}

/** Requeues failed deliveries of an endpoint created in [since, until). */
export async function recover(pool: pg.Pool, endpointId: string, since: number, until: number, now: number): Promise<number> {
  return tx(pool, async (c) => {
    const { rowCount } = await c.query(
      `UPDATE deliveries SET status = ${Status.pending}, next_attempt_at = $1, updated_at = $1
       WHERE endpoint_id = $2 AND status = ${Status.fail} AND created_at >= $3 AND created_at < $4`,
      [now, endpointId, since, until],
    );
    const n = rowCount ?? 0;
    if (n > 0) {
      await enqueueEndpoints(c, new Map([[endpointId, now]]));
      await notifyWork(c);
    }
    return n;
  });
}
