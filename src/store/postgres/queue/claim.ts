import type pg from 'pg';
import type { SecretCipher } from '../../endpoint-secrets.js';
import { Status, type ClaimOptions, type ClaimedDelivery, type EndpointRow } from '../../types.js';
import { tx } from '../db.js';
import {
  DELIVERY_COLS, ENDPOINT_COLS, MESSAGE_COLS, deliveryFromRow, endpointFromRow, messageFromRow,
  type DeliveryCols, type EndpointCols, type MessageCols,
} from '../rows.js';

/** Queue rows read per round trip, and at most per claim. */
const PAGE = 256;
const MAX_ENDPOINTS = 4096;

/**
 * Claims due deliveries, safely with any number of claiming processes.
 *
 * Fairness and concurrency come from endpoint_queue (one row per endpoint
 * with pending work, keyed by its earliest due time):
 * 1. due queue rows are locked `FOR UPDATE SKIP LOCKED` in due order, so
 *    concurrent claimers split the endpoints between them and never wait;
 * 2. each endpoint is asked for its free `slots` (this process's share); a
 *    saturated endpoint is passed over without reading its backlog, so a
 *    dead endpoint with a million pending rows costs one queue row, not a
 *    scan;
 * 3. with `endpointCap`, the unexpired leases of the page's remaining
 *    endpoints are counted (all processes, one statement over a partial
 *    index of leased rows, at most about cap rows each) and each endpoint
 *    gets at most what the cap leaves. The queue row lock makes the count
 *    exact: no other claim can lease for that endpoint until we commit;
 * 4. the endpoints about to be worked are read; one whose row cannot be read
 *    (sealed secrets that do not open) is left out, its deliveries pending
 *    and its queue row as it was, and reported after the transaction;
 * 5. up to `free` of each endpoint's due deliveries are leased in one
 *    statement (also SKIP LOCKED, as a safety net);
 * 6. the queue rows of the endpoints worked on get their new earliest due
 *    time (a future retry keeps the endpoint out until then), or go.
 * Writers that make work due (insert, retry, reclaim, resend) upsert the
 * queue row after writing the delivery, in the same transaction, so a claim
 * that recomputes a queue row cannot lose their work: either they wait for
 * its lock and then lower the due time, or the claim sees their commit.
 */
export async function claimDue(
  pool: pg.Pool, owner: string, now: number, limit: number, leaseMs: number, slots: (endpointId: string) => number, cipher: SecretCipher | undefined,
  opts: ClaimOptions = {},
): Promise<ClaimedDelivery[]> {
  if (limit <= 0) return [];
  const unreadable = new Map<string, unknown>();
  const claimed = await tx(pool, async (c) => {
    unreadable.clear(); // tx may run this again (deadlock): report what the committed run saw
    const leased: DeliveryCols[] = [];
    const endpoints = new Map<string, EndpointRow>();
    const worked: string[] = [];
    let after: { due: number; id: string } | null = null;
    for (let seen = 0; leased.length < limit && seen < MAX_ENDPOINTS; ) {
      const eps = await dueEndpoints(c, now, after);
      seen += eps.length;
      let wants = eps.map((e) => ({ id: e.endpoint_id, free: slots(e.endpoint_id) })).filter((w) => w.free > 0);
      if (opts.endpointCap !== undefined) wants = await withinCap(c, wants, opts.endpointCap, now);
      while (wants.length > 0 && leased.length < limit) {
        // Hand the remaining room out in due order; endpoints that had fewer
        // due deliveries than offered (or could not be read) leave room for the next ones.
        let room = limit - leased.length;
        const batch: { id: string; n: number }[] = [];
        for (const w of wants) {
          if (room <= 0) break;
          const n = Math.min(w.free, room);
          batch.push({ id: w.id, n });
          room -= n;
        }
        wants = wants.slice(batch.length);
        const readable = await readEndpoints(c, batch, cipher, endpoints, unreadable);
        if (readable.length === 0) continue;
        leased.push(...(await leaseDeliveries(c, readable, owner, now, now + leaseMs)));
        worked.push(...readable.map((b) => b.id));
      }
      if (eps.length < PAGE) break;
      const last = eps[eps.length - 1]!;
      after = { due: last.next_due_at, id: last.endpoint_id };
    }
    await refreshQueue(c, worked);
    return withMessages(c, leased, endpoints);
  });
  if (opts.onUnreadableEndpoint) for (const [id, e] of unreadable) opts.onUnreadableEndpoint(id, e);
  return claimed;
}

async function dueEndpoints(c: pg.PoolClient, now: number, after: { due: number; id: string } | null) {
  const { rows } = await c.query<{ endpoint_id: string; next_due_at: number }>(
    `SELECT endpoint_id, next_due_at FROM endpoint_queue
     WHERE next_due_at <= $1 ${after ? 'AND (next_due_at, endpoint_id) > ($3, $4)' : ''}
     ORDER BY next_due_at, endpoint_id
     LIMIT $2
     FOR UPDATE SKIP LOCKED`,
    after ? [now, PAGE, after.due, after.id] : [now, PAGE],
  );
  return rows;
}

/**
 * Trims each endpoint's free slots to what `cap` leaves once every
 * process's unexpired leases on it are counted; drops the endpoints left
 * with none. Reads only leased rows (partial index deliveries_leased_endpoint
 * on (endpoint_id, lease_until) WHERE status = 3), never an endpoint's
 * pending backlog.
 */
async function withinCap(c: pg.PoolClient, wants: { id: string; free: number }[], cap: number, now: number): Promise<{ id: string; free: number }[]> {
  if (wants.length === 0) return wants;
  // A subquery per endpoint: one range scan of deliveries_leased_endpoint each (endpoint_id = x AND
  // lease_until >= now). As one `= ANY` filter the planner may walk deliveries_leased instead: every lease of every endpoint.
  const { rows } = await c.query<{ endpoint_id: string; n: number }>(
    `SELECT w.id AS endpoint_id,
            (SELECT COUNT(*) FROM deliveries d WHERE d.endpoint_id = w.id AND d.status = ${Status.sending} AND d.lease_until >= $2)::int AS n
     FROM unnest($1::text[]) AS w(id)`,
    [wants.map((w) => w.id), now],
  );
  const held = new Map(rows.map((r) => [r.endpoint_id, r.n]));
  return wants.map((w) => ({ id: w.id, free: Math.min(w.free, cap - (held.get(w.id) ?? 0)) })).filter((w) => w.free > 0);
}

/**
 * Reads the batch's endpoints into `endpoints`; those whose row cannot be
 * read (secrets that do not open) go to `unreadable` instead and are left
 * out of the batch, so their deliveries are not leased.
 */
async function readEndpoints(
  c: pg.PoolClient, batch: { id: string; n: number }[], cipher: SecretCipher | undefined, endpoints: Map<string, EndpointRow>, unreadable: Map<string, unknown>,
): Promise<{ id: string; n: number }[]> {
  const ids = batch.map((b) => b.id).filter((id) => !endpoints.has(id) && !unreadable.has(id));
  if (ids.length > 0) {
    const { rows } = await c.query<EndpointCols>(`SELECT ${ENDPOINT_COLS} FROM endpoints WHERE id = ANY($1::text[])`, [ids]);
    for (const r of rows) {
      try {
        endpoints.set(r.id, endpointFromRow(r, cipher));
      } catch (e) {
        unreadable.set(r.id, e);
      }
    }
  }
  return batch.filter((b) => endpoints.has(b.id));
}

/** Leases up to `n` due deliveries of each endpoint, earliest first. */
async function leaseDeliveries(c: pg.PoolClient, batch: { id: string; n: number }[], owner: string, now: number, until: number): Promise<DeliveryCols[]> {
  const { rows } = await c.query<DeliveryCols>(
    `WITH picked AS (
       SELECT d.id FROM unnest($1::text[], $2::int[]) AS w(endpoint_id, n)
       CROSS JOIN LATERAL (
         SELECT id FROM deliveries
         WHERE endpoint_id = w.endpoint_id AND status = 1 AND next_attempt_at <= $3
         ORDER BY next_attempt_at
         LIMIT w.n
         FOR UPDATE SKIP LOCKED
       ) d
     )
     UPDATE deliveries SET status = ${Status.sending}, lease_until = $4, lease_owner = $5, updated_at = $3
     FROM picked WHERE deliveries.id = picked.id
     RETURNING ${DELIVERY_COLS.split(', ').map((col) => `deliveries.${col}`).join(', ')}`,
    [batch.map((b) => b.id), batch.map((b) => b.n), now, until, owner],
  );
  // RETURNING has no order: hand them out by endpoint due order, then due time.
  const rank = new Map(batch.map((b, i) => [b.id, i]));
  return rows.sort((a, b) => rank.get(a.endpoint_id)! - rank.get(b.endpoint_id)! || (a.next_attempt_at ?? 0) - (b.next_attempt_at ?? 0) || a.id - b.id);
}

/** Sets each worked endpoint's queue row to its earliest pending delivery, or drops it. */
async function refreshQueue(c: pg.PoolClient, endpointIds: string[]): Promise<void> {
  if (endpointIds.length === 0) return;
  await c.query(
    `WITH v AS (
       SELECT u.e AS endpoint_id,
              (SELECT MIN(next_attempt_at) FROM deliveries d WHERE d.endpoint_id = u.e AND d.status = 1) AS t
       FROM unnest($1::text[]) AS u(e)
     ), kept AS (
       UPDATE endpoint_queue q SET next_due_at = v.t FROM v WHERE q.endpoint_id = v.endpoint_id AND v.t IS NOT NULL
     )
     DELETE FROM endpoint_queue q USING v WHERE q.endpoint_id = v.endpoint_id AND v.t IS NULL`,
    [endpointIds],
  );
}

async function withMessages(c: pg.PoolClient, leased: DeliveryCols[], endpoints: Map<string, EndpointRow>): Promise<ClaimedDelivery[]> {
  if (leased.length === 0) return [];
  const msgs = await c.query<MessageCols>(`SELECT ${MESSAGE_COLS} FROM messages WHERE id = ANY($1::text[])`, [[...new Set(leased.map((d) => d.msg_id))]]);
  const msgById = new Map(msgs.rows.map((r) => [r.id, messageFromRow(r)]));
  const out: ClaimedDelivery[] = [];
  for (const d of leased) {
    const message = msgById.get(d.msg_id);
    const endpoint = endpoints.get(d.endpoint_id);
    // Both exist while the delivery row does (foreign keys); guard anyway.
    if (message && endpoint) out.push({ delivery: deliveryFromRow(d), message, endpoint });
  }
  return out;
}
