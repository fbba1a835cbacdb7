import type pg from 'pg';
import { Status, type AttemptResult } from '../../types.js';
import { notifyWork, tx } from '../db.js';
import { earliest, enqueueEndpoints } from './endpoint-queue.js';

/**
 * Records attempt outcomes, one transaction. Only results whose delivery
 * `owner` still holds are applied; the rest are dropped whole (the lease was
 * lost, the delivery is someone else's now). Lock order, shared with the
 * other writers so they cannot deadlock: deliveries by id, queue rows by
 * endpoint, endpoints by id.
 */
export async function completeAttempts(pool: pg.Pool, owner: string, results: AttemptResult[]): Promise<number> {
  // One outcome per delivery: a second one would find the lease released by the first.
  const seen = new Set<number>();
  const unique = results.filter((r) => !seen.has(r.deliveryId) && seen.add(r.deliveryId));
  if (unique.length === 0) return 0;
  return tx(pool, async (c) => {
    const held = await c.query<{ id: number }>(
      `SELECT id FROM deliveries WHERE id = ANY($1::bigint[]) AND status = ${Status.sending} AND lease_owner = $2 ORDER BY id FOR UPDATE`,
      [unique.map((r) => r.deliveryId), owner],
    );
    const heldIds = new Set(held.rows.map((r) => r.id));
    const applied = unique.filter((r) => heldIds.has(r.deliveryId));
    if (applied.length === 0) return 0;

    await c.query(
      `UPDATE deliveries d SET status = r.status, next_attempt_at = r.next, attempts = d.attempts + r.inc,
         lease_until = NULL, lease_owner = NULL, manual = false, updated_at = r.at
       FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::int[], $5::bigint[]) AS r(id, status, next, inc, at)
       WHERE d.id = r.id`,
      [applied.map((r) => r.deliveryId), applied.map((r) => r.status), applied.map((r) => r.nextAttemptAt), applied.map((r) => (r.attempt ? 1 : 0)), applied.map((r) => r.at)],
    );

    const attempts = applied.flatMap((r) => (r.attempt ? [r.attempt] : []));
    if (attempts.length > 0) {
      await c.query(
        `INSERT INTO attempts (id, msg_id, endpoint_id, app_id, url, status, status_code, response, duration_ms, trigger_type, error, created_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[], $7::int[], $8::text[], $9::int[],
                              $10::smallint[], $11::text[], $12::bigint[])`,
        [
          attempts.map((a) => a.id), attempts.map((a) => a.msgId), attempts.map((a) => a.endpointId), attempts.map((a) => a.appId), attempts.map((a) => a.url),
          attempts.map((a) => a.status), attempts.map((a) => a.statusCode), attempts.map((a) => a.response), attempts.map((a) => Math.round(a.durationMs)),
          attempts.map((a) => a.triggerType), attempts.map((a) => a.error), attempts.map((a) => a.createdAt),
        ],
      );
    }

    const retries = new Map<string, number>();
    for (const r of applied) if (r.status === Status.pending && r.nextAttemptAt !== null) earliest(retries, r.endpointId, r.nextAttemptAt);
    if (retries.size > 0) {
      await enqueueEndpoints(c, retries);
      await notifyWork(c);
    }

    await applyEndpointHealth(c, applied.filter((r) => r.attempt !== null));
    return applied.length;
  });
}

interface Health { failing_since: number | null; disabled: boolean; updated_at: number }

/**
 * Endpoint health, result by result in batch order, with the same rules as
 * the SQLite engine: a success clears failing_since; a failure starts it if
 * unset, and disables the endpoint on 410 Gone or once failing since the
 * cutoff (judged on failing_since from before that attempt). Rows are locked
 * FOR NO KEY UPDATE, which does not block inserts referencing them.
 */
async function applyEndpointHealth(c: pg.PoolClient, results: AttemptResult[]): Promise<void> {
  if (results.length === 0) return;
  const ids = [...new Set(results.map((r) => r.endpointId))].sort();
  const { rows } = await c.query<Health & { id: string }>(
    'SELECT id, failing_since, disabled, updated_at FROM endpoints WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE',
    [ids],
  );
  const state = new Map(rows.map((r) => [r.id, { ...r }]));
  const changed = new Set<string>();
  for (const r of results) {
    const s = state.get(r.endpointId);
    if (!s) continue;
    const before = JSON.stringify(s);
    if (r.endpointOk) s.failing_since = null;
    else {
      const since = s.failing_since ?? r.at;
      if ((r.disableEndpoint || since <= r.failingCutoff) && !s.disabled) {
        s.disabled = true;
        s.updated_at = r.at;
      }
      s.failing_since = since;
    }
    if (JSON.stringify(s) !== before) changed.add(r.endpointId);
  }
  if (changed.size === 0) return;
  const list = [...changed].sort().map((id) => state.get(id)!);
  await c.query(
    `UPDATE endpoints e SET failing_since = u.failing_since, disabled = u.disabled, updated_at = u.updated_at
     FROM unnest($1::text[], $2::bigint[], $3::boolean[], $4::bigint[]) AS u(id, failing_since, disabled, updated_at)
     WHERE e.id = u.id`,
    [list.map((s) => s.id), list.map((s) => s.failing_since), list.map((s) => s.disabled), list.map((s) => s.updated_at)],
  );
}
