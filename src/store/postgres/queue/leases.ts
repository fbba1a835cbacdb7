import type pg from 'pg';
import { Status } from '../../types.js';

/**
 * Heartbeat: extends the leases `owner` still holds. Rows are locked in id
 * order (as completeAttempts does) so a heartbeat and a completion of the
 * same worker cannot deadlock; a row being reclaimed is waited for and then
 * no longer matches.
 */
export async function extendLeases(pool: pg.Pool, owner: string, deliveryIds: number[], until: number): Promise<number> {
  if (deliveryIds.length === 0) return 0;
  const { rowCount } = await pool.query(
    `UPDATE deliveries SET lease_until = $3
     WHERE id IN (SELECT id FROM deliveries WHERE id = ANY($1::bigint[]) AND status = ${Status.sending} AND lease_owner = $2 ORDER BY id FOR UPDATE)`,
    [deliveryIds, owner, until],
  );
  return rowCount ?? 0;
}
