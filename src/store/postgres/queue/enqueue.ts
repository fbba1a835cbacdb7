import type pg from 'pg';
import { UniqueViolation, type AppRow, type IdempotentResponse, type NewMessage } from '../../types.js';
import { notifyWork, tx } from '../db.js';
import { jsonParam } from '../rows.js';
import { earliest, enqueueEndpoints } from './endpoint-queue.js';

/** Caps one multi-row INSERT of messages (a statement's parameters are held in memory at once). */
const CHUNK_ROWS = 500;
const CHUNK_BYTES = 16 << 20;

/**
 * Inserts messages with their deliveries: one transaction for the batch
 * (group commit), set-based statements rather than one round trip per row.
 *
 * Per-item failure without SAVEPOINTs: messages go in with
 * `ON CONFLICT DO NOTHING`, in batch order, so a duplicate (of a stored
 * message or of an earlier item of the batch) is simply not inserted and
 * that item alone gets a UniqueViolation, as if inserted one by one. A
 * concurrent transaction inserting the same eventId makes this one wait for
 * its outcome instead of failing. Any other error fails the whole batch.
 */
export async function insertMessages(pool: pg.Pool, items: NewMessage[]): Promise<(Error | null)[]> {
  if (items.length === 0) return [];
  return tx(pool, async (c) => {
    await createApps(c, items);

    const inserted = new Set<string>();
    for (const chunk of chunks(items)) {
      const ms = chunk.map((i) => i.message);
      const { rows } = await c.query<{ id: string }>(
        `INSERT INTO messages (id, app_id, event_id, event_type, channels, payload, created_at)
         SELECT id, app_id, event_id, event_type, channels::jsonb, payload, created_at
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
           WITH ORDINALITY AS u(id, app_id, event_id, event_type, channels, payload, created_at, n)
         ORDER BY n
         ON CONFLICT DO NOTHING
         RETURNING id`,
        [
          ms.map((m) => m.id), ms.map((m) => m.appId), ms.map((m) => m.eventId), ms.map((m) => m.eventType),
          ms.map((m) => jsonParam(m.channels)), ms.map((m) => m.payload), ms.map((m) => m.createdAt),
        ],
      );
      for (const r of rows) inserted.add(r.id);
    }

    // Which constraint a skipped item hit: its id already stored, else its eventId.
    const skipped = items.filter((i) => !inserted.has(i.message.id)).map((i) => i.message.id);
    const takenIds = new Set<string>();
    if (skipped.length > 0) {
      const { rows } = await c.query<{ id: string }>('SELECT id FROM messages WHERE id = ANY($1::text[])', [skipped]);
      for (const r of rows) takenIds.add(r.id);
    }

    const msgIds: string[] = [];
    const appIds: string[] = [];
    const epIds: string[] = [];
    const times: number[] = [];
    const due = new Map<string, number>();
    const idem = new Map<string, IdempotentResponse>();
    const results: (Error | null)[] = [];
    const claimed = new Set<string>();
    for (const item of items) {
      const m = item.message;
      // A message id is accepted once per batch (the first item, as one by one).
      if (!inserted.has(m.id) || claimed.has(m.id)) {
        results.push(new UniqueViolation(takenIds.has(m.id) || claimed.has(m.id) ? 'id' : 'eventId'));
        continue;
      }
      claimed.add(m.id);
      for (const epId of item.endpointIds) {
        msgIds.push(m.id);
        appIds.push(m.appId);
        epIds.push(epId);
        times.push(m.createdAt);
        earliest(due, epId, m.createdAt);
      }
      if (item.idempotency) idem.set(item.idempotency.key, item.idempotency); // last one wins, like INSERT OR REPLACE
      results.push(null);
    }

    if (msgIds.length > 0) {
      await c.query(
        `INSERT INTO deliveries (msg_id, app_id, endpoint_id, status, next_attempt_at, created_at, updated_at)
         SELECT m, a, e, 1, t, t, t FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(m, a, e, t)`,
        [msgIds, appIds, epIds, times],
      );
      await enqueueEndpoints(c, due);
      await notifyWork(c);
    }
    if (idem.size > 0) {
      const rs = [...idem.values()];
      await c.query(
        `INSERT INTO idempotency (key, status_code, body, created_at)
         SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[])
         ON CONFLICT (key) DO UPDATE SET status_code = excluded.status_code, body = excluded.body, created_at = excluded.created_at`,
        [rs.map((r) => r.key), rs.map((r) => r.statusCode), rs.map((r) => r.body), rs.map((r) => r.createdAt)],
      );
    }
    return results;
  });
}

/**
 * Apps named by an unknown uid are made on the fly. When that uid exists by
 * now (another item of the batch, another request), the message goes to the
 * existing app: `item.message.appId` is rewritten, as the SQLite engine does.
 */
async function createApps(c: pg.PoolClient, items: NewMessage[]): Promise<void> {
  const wanted = new Map<string, AppRow>();
  for (const i of items) {
    const a = i.createApp;
    if (a && !wanted.has(a.uid ?? a.id)) wanted.set(a.uid ?? a.id, a);
  }
  if (wanted.size === 0) return;
  const apps = [...wanted.values()];
  await c.query(
    `INSERT INTO applications (id, uid, name, metadata, throttle_rate, created_at, updated_at)
     SELECT id, uid, name, metadata::json, throttle_rate, created_at, updated_at
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[])
       WITH ORDINALITY AS u(id, uid, name, metadata, throttle_rate, created_at, updated_at, n)
     ORDER BY n
     ON CONFLICT (uid) DO NOTHING`,
    [
      apps.map((a) => a.id), apps.map((a) => a.uid), apps.map((a) => a.name), apps.map((a) => jsonParam(a.metadata)),
      apps.map((a) => a.throttleRate), apps.map((a) => a.createdAt), apps.map((a) => a.updatedAt),
    ],
  );
  const uids = apps.map((a) => a.uid).filter((u): u is string => u !== null);
  const { rows } = await c.query<{ id: string; uid: string }>('SELECT id, uid FROM applications WHERE uid = ANY($1::text[])', [uids]);
  const byUid = new Map(rows.map((r) => [r.uid, r.id]));
  for (const i of items) {
    const uid = i.createApp?.uid;
    if (uid != null) i.message.appId = byUid.get(uid) ?? i.message.appId;
  }
}

function* chunks(items: NewMessage[]): Generator<NewMessage[]> {
  let chunk: NewMessage[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = item.message.payload?.length ?? 0;
    if (chunk.length > 0 && (chunk.length >= CHUNK_ROWS || bytes + size > CHUNK_BYTES)) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(item);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}
