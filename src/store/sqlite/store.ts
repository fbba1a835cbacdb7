import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SecretCipher } from '../endpoint-secrets.js';
import {
  Status, UniqueViolation,
  type ApiTokenRow, type AppRow, type AttemptFilter, type AttemptResult, type AttemptRow, type ClaimOptions, type ClaimedDelivery, type DeliveryRow, type EndpointRow,
  type EventTypeRow, type IdempotentResponse, type MessageFilter, type MessageRow, type NewMessage, type Page, type PageQuery, type Store,
  type StoreCapabilities,
} from '../types.js';
import { Checkpointer } from './checkpointer.js';
import { migrate } from './migrations.js';
import { endpointStatsFromCounts } from '../shared.js';
import { pageSql, toPage } from './pagination.js';
import {
  appFromRow, appToRow, attemptFromRow, attemptToRow, deliveryFromRow, endpointFromRow, endpointToRow, eventTypeFromRow, eventTypeToRow, messageFromRow,
  type AppCols, type AttemptCols, type DeliveryCols, type EndpointCols, type EventTypeCols, type MessageCols,
} from './rows.js';
import * as tokens from './tokens.js';

export interface SqliteOptions {
  /** Seals endpoint secrets (endpoint-secrets.ts); without it they can be neither written nor read sealed. */
  cipher?: SecretCipher;
  /** Checkpoint the WAL on a worker thread (./checkpointer.ts) instead of inside commits: for the server. */
  backgroundCheckpoint?: boolean;
}

/** The file of a `sqlite:` URL (`sqlite:./data/hooklane.db`, `sqlite:///abs/path.db`, `sqlite::memory:`). */
export const sqlitePath = (url: string): string => url.replace(/^sqlite:(\/\/)?/, '');

function uniqueField(e: unknown): string | null {
  const err = e as { code?: string; message?: string };
  if (err.code !== 'SQLITE_CONSTRAINT_UNIQUE' && err.code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') return null;
  const m = /UNIQUE constraint failed: [a-z_]+\.([a-z_]+(, [a-z_.]+)*)/.exec(err.message ?? '');
  return m?.[1]?.split(', ').pop()?.split('.').pop() ?? 'id';
}

function rethrowUnique(e: unknown): never {
  const field = uniqueField(e);
  if (field) throw new UniqueViolation(field);
  throw e;
}

/** Adds `AND …` clauses for the message filters; `m` is the messages alias. */
function messageWhere(f: MessageFilter, params: unknown[]): string {
  let sql = '';
  if (f.channel !== undefined) {
    sql += ' AND EXISTS (SELECT 1 FROM json_each(m.channels) WHERE value = ?)';
    params.push(f.channel);
  }
  if (f.eventTypes && f.eventTypes.length > 0) {
    sql += ` AND m.event_type IN (${f.eventTypes.map(() => '?').join(',')})`;
    params.push(...f.eventTypes);
  }
  if (f.before !== undefined) {
    sql += ' AND m.created_at < ?';
    params.push(f.before);
  }
  if (f.after !== undefined) {
    sql += ' AND m.created_at > ?';
    params.push(f.after);
  }
  return sql;
}

function attemptWhere(f: AttemptFilter, params: unknown[], alias: string): string {
  let sql = '';
  if (f.status !== undefined) {
    sql += ` AND ${alias}.status = ?`;
    params.push(f.status);
  }
  if (f.statusCodeClass !== undefined) {
    if (f.statusCodeClass === 0) sql += ` AND ${alias}.status_code = 0`;
    else {
      sql += ` AND ${alias}.status_code >= ? AND ${alias}.status_code < ?`;
      params.push(f.statusCodeClass, f.statusCodeClass + 100);
    }
  }
  if (f.endpointId !== undefined) {
    sql += ` AND ${alias}.endpoint_id = ?`;
    params.push(f.endpointId);
  }
  return sql;
}

/**
 * The embedded engine: one better-sqlite3 connection in WAL mode with
 * synchronous=FULL, so a committed transaction is on disk (fsync) before
 * its promise resolves. Calls are synchronous underneath; batching callers
 * (group commit) amortise the fsync.
 */
export class SqliteStore implements Store {
  readonly engine = 'sqlite';
  /** One process owns the file, so at start every leased delivery is orphaned; wake-ups are in-process. */
  readonly capabilities: StoreCapabilities = { singleProcess: true, notifications: false };
  readonly db: Database.Database;
  private readonly stmts: ReturnType<SqliteStore['prepare']>;
  /**
   * Fan-out reads, cached: this process owns the file (singleProcess), so
   * every write passes through here and can drop what it makes stale.
   * Callers must not mutate what these caches hand out.
   */
  private readonly appCache = new Map<string, AppRow>();
  private readonly endpointCache = new Map<string, EndpointRow[]>();
  private forgetApps(): void {
    this.appCache.clear();
    this.endpointCache.clear();
  }

  /**
   * Queue bookkeeping runs at synchronous=NORMAL: committed without an fsync
   * of its own (the next FULL commit or a checkpoint syncs it). A process
   * crash loses nothing (the OS has the writes); a power loss may undo a
   * lease or an outcome, and the delivery is then sent again: at-least-once
   * still holds. Accepting messages and every API write stay FULL.
   */
  private relaxed<T>(fn: () => T): T {
    // exec, not a prepared statement: SQLite applies this pragma when it prepares it.
    this.db.exec('PRAGMA synchronous = NORMAL');
    try {
      return this.db.transaction(fn)();
    } finally {
      this.db.exec('PRAGMA synchronous = FULL');
    }
  }

  /** Prepared statements by SQL text: preparing costs more than running most of them. */
  private readonly statements = new Map<string, Database.Statement>();

  private sql(text: string): Database.Statement {
    let st = this.statements.get(text);
    if (!st) {
      if (this.statements.size > 1000) this.statements.clear();
      st = this.db.prepare(text);
      this.statements.set(text, st);
    }
    return st;
  }

  private readonly cipher: SecretCipher | undefined;

  constructor(path: string, opts: SqliteOptions = {}) {
    this.cipher = opts.cipher;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
    this.stmts = this.prepare();
    if (opts.backgroundCheckpoint && path !== ':memory:') {
      this.db.pragma('wal_autocheckpoint = 0');
      this.checkpointer = new Checkpointer(path);
    }
  }

  private checkpointer: Checkpointer | null = null;

  static fromUrl(url: string, opts: SqliteOptions = {}): SqliteStore {
    return new SqliteStore(sqlitePath(url), opts);
  }

  private prepare() {
    const d = this.db;
    return {
      insertMessage: d.prepare('INSERT INTO messages (id, app_id, event_id, event_type, channels, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      insertLeasedDelivery: d.prepare(
        'INSERT INTO deliveries (msg_id, app_id, endpoint_id, status, next_attempt_at, lease_until, lease_owner, created_at, updated_at) VALUES (?, ?, ?, 3, ?, ?, ?, ?, ?)',
      ),
      insertDelivery: d.prepare('INSERT INTO deliveries (msg_id, app_id, endpoint_id, status, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?, ?)'),
      enqueueEndpoint: d.prepare(
        'INSERT INTO endpoint_queue (endpoint_id, next_due_at) VALUES (?, ?) ON CONFLICT (endpoint_id) DO UPDATE SET next_due_at = MIN(next_due_at, excluded.next_due_at)',
      ),
      insertIdem: d.prepare('INSERT OR REPLACE INTO idempotency (key, status_code, body, created_at) VALUES (?, ?, ?, ?)'),
      insertApp: d.prepare('INSERT INTO applications (id, uid, name, metadata, throttle_rate, created_at, updated_at) VALUES (@id, @uid, @name, @metadata, @throttle_rate, @created_at, @updated_at)'),
      dueEndpoints: d.prepare('SELECT endpoint_id FROM endpoint_queue WHERE next_due_at <= ? ORDER BY next_due_at LIMIT ? OFFSET ?'),
      dueDeliveries: d.prepare('SELECT * FROM deliveries WHERE endpoint_id = ? AND status = 1 AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?'),
      leaseDelivery: d.prepare('UPDATE deliveries SET status = 3, lease_until = ?, lease_owner = ?, updated_at = ? WHERE id = ?'),
      minDue: d.prepare('SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE endpoint_id = ? AND status = 1'),
      setQueue: d.prepare('UPDATE endpoint_queue SET next_due_at = ? WHERE endpoint_id = ?'),
      dropQueue: d.prepare('DELETE FROM endpoint_queue WHERE endpoint_id = ?'),
      getEndpoint: d.prepare('SELECT * FROM endpoints WHERE id = ?'),
      getMessage: d.prepare('SELECT * FROM messages WHERE id = ?'),
      insertAttempt: d.prepare(
        'INSERT INTO attempts (id, msg_id, endpoint_id, app_id, url, status, status_code, response, duration_ms, trigger_type, error, created_at) ' +
          'VALUES (@id, @msg_id, @endpoint_id, @app_id, @url, @status, @status_code, @response, @duration_ms, @trigger_type, @error, @created_at)',
      ),
      // Applies only while the caller still holds the lease.
      finishDelivery: d.prepare(
        'UPDATE deliveries SET status = ?, next_attempt_at = ?, attempts = attempts + ?, lease_until = NULL, lease_owner = NULL, manual = 0, updated_at = ? ' +
          'WHERE id = ? AND status = 3 AND lease_owner = ?',
      ),
      // Both CASEs read the old row, so the cutoff test sees the failing_since from before this attempt.
      endpointFailed: d.prepare(
        'UPDATE endpoints SET failing_since = COALESCE(failing_since, @now), ' +
          'disabled = CASE WHEN @gone = 1 OR COALESCE(failing_since, @now) <= @cutoff THEN 1 ELSE disabled END, ' +
          'updated_at = CASE WHEN disabled = 0 AND (@gone = 1 OR COALESCE(failing_since, @now) <= @cutoff) THEN @now ELSE updated_at END WHERE id = @id',
      ),
      endpointDisabled: d.prepare('SELECT disabled FROM endpoints WHERE id = ?'),
      endpointOk: d.prepare('UPDATE endpoints SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL'),
    };
  }

  async close(): Promise<void> {
    await this.checkpointer?.stop();
    this.checkpointer = null;
    if (this.db.open) this.db.close();
  }

  async getSetting(key: string): Promise<string | null> {
    const r = this.sql('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value ?? null;
  }
  async setSetting(key: string, value: string): Promise<void> {
    this.sql('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }
  async claimSetting(key: string, value: string): Promise<string> {
    return tokens.claimSetting(this.db, key, value);
  }
  async sealPlaintextSecrets(): Promise<number> {
    this.forgetApps();
    return tokens.sealPlaintextSecrets(this.db, this.cipher);
  }

  // --- API tokens (./tokens.ts) -------------------------------------------

  async insertToken(t: ApiTokenRow): Promise<void> {
    tokens.insertToken(this.db, t);
  }
  async findTokenByHash(hash: string): Promise<ApiTokenRow | null> {
    return tokens.findTokenByHash(this.db, hash);
  }
  async listTokens(): Promise<ApiTokenRow[]> {
    return tokens.listTokens(this.db);
  }
  async revokeToken(id: string, at: number): Promise<boolean> {
    return tokens.revokeToken(this.db, id, at);
  }
  async touchToken(id: string, at: number, notBefore: number): Promise<void> {
    tokens.touchToken(this.db, id, at, notBefore);
  }

  // --- applications -------------------------------------------------------

  async insertApp(app: AppRow): Promise<void> {
    this.forgetApps();
    try {
      this.stmts.insertApp.run(appToRow(app));
    } catch (e) {
      rethrowUnique(e);
    }
  }
  async findApp(idOrUid: string): Promise<AppRow | null> {
    const hit = this.appCache.get(idOrUid);
    if (hit) return hit;
    const r = this.sql('SELECT * FROM applications WHERE id = ? UNION ALL SELECT * FROM applications WHERE uid = ? LIMIT 1').get(idOrUid, idOrUid) as AppCols | undefined;
    if (!r) return null;
    const app = appFromRow(r);
    if (this.appCache.size > 10_000) this.appCache.clear();
    this.appCache.set(idOrUid, app);
    return app;
  }
  async listApps(q: PageQuery): Promise<Page<AppRow>> {
    const p = pageSql('id', q);
    const rows = this.sql(`SELECT * FROM applications WHERE ${p.where} ORDER BY ${p.orderBy} LIMIT ?`).all(...p.params, p.limit) as AppCols[];
    return toPage(rows, q, p.backwards, (r) => r.id, appFromRow);
  }
  async updateApp(app: AppRow): Promise<void> {
    this.forgetApps();
    try {
      this.sql('UPDATE applications SET uid=@uid, name=@name, metadata=@metadata, throttle_rate=@throttle_rate, updated_at=@updated_at WHERE id=@id').run(appToRow(app));
    } catch (e) {
      rethrowUnique(e);
    }
  }
  async deleteApp(id: string): Promise<void> {
    this.forgetApps();
    this.db.transaction(() => {
      this.sql('DELETE FROM endpoint_queue WHERE endpoint_id IN (SELECT id FROM endpoints WHERE app_id = ?)').run(id);
      this.sql('DELETE FROM deliveries WHERE app_id = ?').run(id);
      this.sql('DELETE FROM attempts WHERE app_id = ?').run(id);
      this.sql('DELETE FROM applications WHERE id = ?').run(id);
    })();
  }

  // --- event types --------------------------------------------------------

  async insertEventType(et: EventTypeRow): Promise<void> {
    try {
      this.sql('INSERT INTO event_types VALUES (@name, @description, @archived, @deprecated, @feature_flag, @schemas, @created_at, @updated_at)').run(eventTypeToRow(et));
    } catch (e) {
      rethrowUnique(e);
    }
  }
  async findEventType(name: string): Promise<EventTypeRow | null> {
    const r = this.sql('SELECT * FROM event_types WHERE name = ?').get(name) as EventTypeCols | undefined;
    return r ? eventTypeFromRow(r) : null;
  }
  async listEventTypes(q: PageQuery, includeArchived: boolean): Promise<Page<EventTypeRow>> {
    const p = pageSql('name', q);
    const rows = this.sql(`SELECT * FROM event_types WHERE ${p.where} ${includeArchived ? '' : 'AND archived = 0'} ORDER BY ${p.orderBy} LIMIT ?`)
      .all(...p.params, p.limit) as EventTypeCols[];
    return toPage(rows, q, p.backwards, (r) => r.name, eventTypeFromRow);
  }
  async updateEventType(et: EventTypeRow): Promise<void> {
    this.sql('UPDATE event_types SET description=@description, archived=@archived, deprecated=@deprecated, feature_flag=@feature_flag, schemas=@schemas, updated_at=@updated_at WHERE name=@name')
      .run(eventTypeToRow(et));
  }
  async deleteEventType(name: string): Promise<void> {
    this.sql('DELETE FROM event_types WHERE name = ?').run(name);
  }

  // --- endpoints ----------------------------------------------------------

  async insertEndpoint(ep: EndpointRow): Promise<void> {
    this.endpointCache.delete(ep.appId);
    try {
      this.sql(
          'INSERT INTO endpoints VALUES (@id, @app_id, @uid, @url, @description, @disabled, @event_types, @channels, @metadata, @throttle_rate, @headers, @secrets, @failing_since, @created_at, @updated_at)',
        )
        .run(endpointToRow(ep, this.cipher));
    } catch (e) {
      rethrowUnique(e);
    }
  }
  async findEndpoint(appId: string, idOrUid: string): Promise<EndpointRow | null> {
    const r = this.sql('SELECT * FROM endpoints WHERE app_id = ? AND id = ? UNION ALL SELECT * FROM endpoints WHERE app_id = ? AND uid = ? LIMIT 1')
      .get(appId, idOrUid, appId, idOrUid) as EndpointCols | undefined;
    return r ? endpointFromRow(r, this.cipher) : null;
  }
  async listEndpoints(appId: string, q: PageQuery): Promise<Page<EndpointRow>> {
    const p = pageSql('id', q);
    const rows = this.sql(`SELECT * FROM endpoints WHERE app_id = ? AND ${p.where} ORDER BY ${p.orderBy} LIMIT ?`).all(appId, ...p.params, p.limit) as EndpointCols[];
    return toPage(rows, q, p.backwards, (r) => r.id, (r) => endpointFromRow(r, this.cipher));
  }
  async appEndpoints(appId: string): Promise<EndpointRow[]> {
    const hit = this.endpointCache.get(appId);
    if (hit) return hit;
    const rows = (this.sql('SELECT * FROM endpoints WHERE app_id = ? ORDER BY id').all(appId) as EndpointCols[]).map((r) => endpointFromRow(r, this.cipher));
    if (this.endpointCache.size > 10_000) this.endpointCache.clear();
    this.endpointCache.set(appId, rows);
    return rows;
  }
  async updateEndpoint(ep: EndpointRow): Promise<void> {
    this.endpointCache.delete(ep.appId);
    try {
      this.sql(
          'UPDATE endpoints SET uid=@uid, url=@url, description=@description, disabled=@disabled, event_types=@event_types, channels=@channels, metadata=@metadata, ' +
            'throttle_rate=@throttle_rate, headers=@headers, secrets=@secrets, failing_since=@failing_since, updated_at=@updated_at WHERE id=@id',
        )
        .run(endpointToRow(ep, this.cipher));
    } catch (e) {
      rethrowUnique(e);
    }
  }
  async deleteEndpoint(id: string): Promise<void> {
    this.endpointCache.clear();
    this.db.transaction(() => {
      this.sql('DELETE FROM endpoint_queue WHERE endpoint_id = ?').run(id);
      this.sql('DELETE FROM deliveries WHERE endpoint_id = ?').run(id);
      this.sql('DELETE FROM endpoints WHERE id = ?').run(id);
    })();
  }

  // --- messages -----------------------------------------------------------

  async insertMessages(items: NewMessage[]): Promise<(Error | null)[]> {
    const s = this.stmts;
    const results: (Error | null)[] = [];
    this.db.transaction(() => {
      for (const item of items) {
        const m = item.message;
        try {
          if (item.createApp) {
            try {
              s.insertApp.run(appToRow(item.createApp));
            } catch (e) {
              if (!uniqueField(e)) throw e;
              // Made meanwhile (another item of this batch, another request): use that one.
              const existing = this.sql('SELECT id FROM applications WHERE uid = ?').get(item.createApp.uid) as { id: string };
              m.appId = existing.id;
            }
          }
          s.insertMessage.run(m.id, m.appId, m.eventId, m.eventType, m.channels === null ? null : JSON.stringify(m.channels), m.payload, m.createdAt);
        } catch (e) {
          const field = uniqueField(e);
          if (!field) throw e;
          results.push(new UniqueViolation(field === 'event_id' ? 'eventId' : field));
          continue;
        }
        for (const epId of item.endpointIds) {
          const d = item.direct;
          if (d && d.endpointIds.has(epId)) {
            const id = s.insertLeasedDelivery.run(m.id, m.appId, epId, m.createdAt, d.leaseUntil, d.owner, m.createdAt, m.createdAt).lastInsertRowid;
            (d.directIds ??= new Map()).set(epId, Number(id));
            continue;
          }
          s.insertDelivery.run(m.id, m.appId, epId, m.createdAt, m.createdAt, m.createdAt);
          s.enqueueEndpoint.run(epId, m.createdAt);
        }
        if (item.idempotency) {
          const r = item.idempotency;
          s.insertIdem.run(r.key, r.statusCode, r.body, r.createdAt);
        }
        results.push(null);
      }
    })();
    return results;
  }
  async findMessage(appId: string, idOrEventId: string): Promise<MessageRow | null> {
    const r = this.sql('SELECT * FROM messages WHERE app_id = ? AND id = ? UNION ALL SELECT * FROM messages WHERE app_id = ? AND event_id = ? LIMIT 1')
      .get(appId, idOrEventId, appId, idOrEventId) as MessageCols | undefined;
    return r ? messageFromRow(r) : null;
  }
  async listMessages(appId: string, f: MessageFilter, q: PageQuery): Promise<Page<MessageRow>> {
    const p = pageSql('m.id', q);
    const params: unknown[] = [appId];
    const extra = messageWhere(f, params);
    const rows = this.sql(`SELECT m.* FROM messages m WHERE m.app_id = ? ${extra} AND ${p.where} ORDER BY ${p.orderBy} LIMIT ?`)
      .all(...params, ...p.params, p.limit) as MessageCols[];
    return toPage(rows, q, p.backwards, (r) => r.id, messageFromRow);
  }
  async expungeMessage(msgId: string): Promise<void> {
    this.sql('UPDATE messages SET payload = NULL WHERE id = ?').run(msgId);
  }

  async getIdempotent(key: string): Promise<IdempotentResponse | null> {
    const r = this.sql('SELECT * FROM idempotency WHERE key = ?').get(key) as { key: string; status_code: number; body: string; created_at: number } | undefined;
    return r ? { key: r.key, statusCode: r.status_code, body: r.body, createdAt: r.created_at } : null;
  }
  async putIdempotent(r: IdempotentResponse): Promise<void> {
    this.stmts.insertIdem.run(r.key, r.statusCode, r.body, r.createdAt);
  }

  // --- the delivery queue -------------------------------------------------

  /**
   * `opts.endpointCap` is not needed here: one process owns the database, so
   * its dispatcher's `slots` already count every lease of the endpoint.
   */
  async claimDue(
    owner: string, now: number, limit: number, leaseMs: number, slots: (endpointId: string) => number, opts: ClaimOptions = {},
  ): Promise<ClaimedDelivery[]> {
    const s = this.stmts;
    const claimed: ClaimedDelivery[] = [];
    const unreadable = new Map<string, unknown>();
    this.relaxed(() => {
      const PAGE = 64;
      // Walk endpoints by due time; saturated endpoints are skipped without
      // touching their backlog, so they cannot hold others up.
      for (let offset = 0; claimed.length < limit && offset < 4096; offset += PAGE) {
        const eps = s.dueEndpoints.all(now, PAGE, offset) as { endpoint_id: string }[];
        for (const { endpoint_id } of eps) {
          const free = Math.min(slots(endpoint_id), limit - claimed.length);
          if (free <= 0) continue;
          const rows = s.dueDeliveries.all(endpoint_id, now, free) as DeliveryCols[];
          if (rows.length > 0) {
            const epRow = s.getEndpoint.get(endpoint_id) as EndpointCols | undefined;
            if (!epRow) continue;
            let endpoint: EndpointRow;
            try {
              endpoint = endpointFromRow(epRow, this.cipher);
            } catch (e) {
              // Secrets that do not open: its deliveries stay pending, its queue row as it is; the others go on.
              unreadable.set(endpoint_id, e);
              continue;
            }
            for (const r of rows) {
              s.leaseDelivery.run(now + leaseMs, owner, now, r.id);
              const msg = s.getMessage.get(r.msg_id) as MessageCols;
              claimed.push({ delivery: { ...deliveryFromRow(r), status: Status.sending }, message: messageFromRow(msg), endpoint });
            }
          }
          const next = (s.minDue.get(endpoint_id) as { t: number | null }).t;
          if (next === null) s.dropQueue.run(endpoint_id);
          else s.setQueue.run(next, endpoint_id);
        }
        if (eps.length < PAGE) break;
      }
    });
    if (opts.onUnreadableEndpoint) for (const [id, e] of unreadable) opts.onUnreadableEndpoint(id, e);
    return claimed;
  }

  async reclaimExpired(now: number): Promise<number> {
    let n = 0;
    this.relaxed(() => {
      const rows = this.sql('SELECT id, endpoint_id FROM deliveries WHERE status = 3 AND lease_until < ?').all(now) as { id: number; endpoint_id: string }[];
      const t = Math.min(now, Date.now());
      for (const r of rows) {
        this.sql('UPDATE deliveries SET status = 1, lease_until = NULL, lease_owner = NULL, next_attempt_at = ? WHERE id = ?').run(t, r.id);
        this.stmts.enqueueEndpoint.run(r.endpoint_id, t);
      }
      n = rows.length;
    });
    return n;
  }

  async extendLeases(owner: string, deliveryIds: number[], until: number): Promise<number> {
    if (deliveryIds.length === 0) return 0;
    let n = 0;
    const stmt = this.sql('UPDATE deliveries SET lease_until = ? WHERE id = ? AND status = 3 AND lease_owner = ?');
    this.relaxed(() => {
      for (const id of deliveryIds) n += stmt.run(until, id, owner).changes;
    });
    return n;
  }

  async releaseLeases(owner: string, deliveryIds: number[]): Promise<number> {
    if (deliveryIds.length === 0) return 0;
    let n = 0;
    const now = Date.now();
    const release = this.sql(
      'UPDATE deliveries SET status = 1, lease_until = NULL, lease_owner = NULL, next_attempt_at = ?, updated_at = ? WHERE id = ? AND status = 3 AND lease_owner = ? ' +
        'RETURNING endpoint_id',
    );
    this.relaxed(() => {
      for (const id of deliveryIds) {
        const r = release.get(now, now, id, owner) as { endpoint_id: string } | undefined;
        if (!r) continue;
        this.stmts.enqueueEndpoint.run(r.endpoint_id, now);
        n++;
      }
    });
    return n;
  }

  async completeAttempts(owner: string, results: AttemptResult[]): Promise<number> {
    const s = this.stmts;
    let applied = 0;
    this.relaxed(() => {
      for (const r of results) {
        // A lost lease (reclaimed, maybe claimed again) drops the whole result.
        if (s.finishDelivery.run(r.status, r.nextAttemptAt, r.attempt ? 1 : 0, r.at, r.deliveryId, owner).changes === 0) continue;
        applied++;
        if (r.attempt) s.insertAttempt.run(attemptToRow(r.attempt));
        if (r.nextAttemptAt !== null && r.status === Status.pending) s.enqueueEndpoint.run(r.endpointId, r.nextAttemptAt);
        if (!r.attempt) continue;
        if (r.endpointOk) s.endpointOk.run(r.endpointId);
        else {
          s.endpointFailed.run({ now: r.at, gone: r.disableEndpoint ? 1 : 0, cutoff: r.failingCutoff, id: r.endpointId });
          // A disabled endpoint must drop out of fan-out at once.
          if ((s.endpointDisabled.get(r.endpointId) as { disabled: number } | undefined)?.disabled === 1) this.endpointCache.clear();
        }
      }
    });
    return applied;
  }

  async nextDueAt(): Promise<number | null> {
    const r = this.sql('SELECT MIN(next_due_at) AS t FROM endpoint_queue').get() as { t: number | null };
    return r.t;
  }

  async resend(msgId: string, endpointId: string, now: number): Promise<void> {
    this.db.transaction(() => {
      const existing = this.sql('SELECT id, app_id, status FROM deliveries WHERE msg_id = ? AND endpoint_id = ?').get(msgId, endpointId) as
        | { id: number; status: number }
        | undefined;
      if (existing) {
        // A delivery already in flight keeps its claim; the manual flag makes its next attempt manual.
        if (existing.status === Status.sending) return;
        this.sql('UPDATE deliveries SET status = 1, next_attempt_at = ?, manual = 1, updated_at = ? WHERE id = ?').run(now, now, existing.id);
      } else {
        const m = this.stmts.getMessage.get(msgId) as MessageCols;
        this.sql('INSERT INTO deliveries (msg_id, app_id, endpoint_id, status, next_attempt_at, manual, created_at, updated_at) VALUES (?, ?, ?, 1, ?, 1, ?, ?)')
          .run(msgId, m.app_id, endpointId, now, now, now);
      }
      this.stmts.enqueueEndpoint.run(endpointId, now);
    })();
  }

  async recover(endpointId: string, since: number, until: number, now: number): Promise<number> {
    let n = 0;
    this.db.transaction(() => {
      n = this.sql('UPDATE deliveries SET status = 1, next_attempt_at = ?, updated_at = ? WHERE endpoint_id = ? AND status = 2 AND created_at >= ? AND created_at < ?')
        .run(now, now, endpointId, since, until).changes;
      if (n > 0) this.stmts.enqueueEndpoint.run(endpointId, now);
    })();
    return n;
  }

  async findDelivery(msgId: string, endpointId: string): Promise<DeliveryRow | null> {
    const r = this.sql('SELECT * FROM deliveries WHERE msg_id = ? AND endpoint_id = ?').get(msgId, endpointId) as DeliveryCols | undefined;
    return r ? deliveryFromRow(r) : null;
  }

  async listDestinations(msgId: string, q: PageQuery): Promise<Page<{ endpoint: EndpointRow; delivery: DeliveryRow }>> {
    const p = pageSql('e.id', q);
    const rows = this.sql(
        `SELECT e.*, d.id AS d_id, d.msg_id AS d_msg_id, d.status AS d_status, d.attempts AS d_attempts, d.next_attempt_at AS d_next, d.manual AS d_manual,
                d.created_at AS d_created, d.updated_at AS d_updated
         FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id WHERE d.msg_id = ? AND ${p.where} ORDER BY ${p.orderBy} LIMIT ?`,
      )
      .all(msgId, ...p.params, p.limit) as (EndpointCols & Record<string, number | string>)[];
    return toPage(rows, q, p.backwards, (r) => r.id, (r) => ({
      endpoint: endpointFromRow(r, this.cipher),
      delivery: deliveryFromRow({
        id: r.d_id as number, msg_id: r.d_msg_id as string, app_id: r.app_id, endpoint_id: r.id, status: r.d_status as number, attempts: r.d_attempts as number,
        next_attempt_at: r.d_next as number | null, manual: r.d_manual as number, created_at: r.d_created as number, updated_at: r.d_updated as number,
      }),
    }));
  }

  async listEndpointMessages(endpointId: string, f: AttemptFilter, q: PageQuery): Promise<Page<{ message: MessageRow; delivery: DeliveryRow }>> {
    const p = pageSql('m.id', q);
    const params: unknown[] = [endpointId];
    let extra = messageWhere(f, params);
    if (f.status !== undefined) {
      extra += ' AND d.status = ?';
      params.push(f.status);
    }
    const rows = this.sql(
        `SELECT m.*, d.id AS d_id, d.status AS d_status, d.attempts AS d_attempts, d.next_attempt_at AS d_next, d.manual AS d_manual, d.created_at AS d_created,
                d.updated_at AS d_updated, d.endpoint_id AS d_endpoint
         FROM deliveries d JOIN messages m ON m.id = d.msg_id WHERE d.endpoint_id = ? ${extra} AND ${p.where} ORDER BY ${p.orderBy} LIMIT ?`,
      )
      .all(...params, ...p.params, p.limit) as (MessageCols & Record<string, number | string>)[];
    return toPage(rows, q, p.backwards, (r) => r.id, (r) => ({
      message: messageFromRow(r),
      delivery: deliveryFromRow({
        id: r.d_id as number, msg_id: r.id, app_id: r.app_id, endpoint_id: r.d_endpoint as string, status: r.d_status as number, attempts: r.d_attempts as number,
        next_attempt_at: r.d_next as number | null, manual: r.d_manual as number, created_at: r.d_created as number, updated_at: r.d_updated as number,
      }),
    }));
  }

  async endpointStats(endpointId: string, since: number | null, until: number | null) {
    const rows = this.sql('SELECT status, COUNT(*) AS n FROM deliveries WHERE endpoint_id = ? AND created_at >= ? AND created_at < ? GROUP BY status')
      .all(endpointId, since ?? 0, until ?? Number.MAX_SAFE_INTEGER) as { status: number; n: number }[];
    return endpointStatsFromCounts(rows);
  }

  // --- attempts -----------------------------------------------------------

  async findAttempt(msgId: string, attemptId: string): Promise<AttemptRow | null> {
    const r = this.sql('SELECT * FROM attempts WHERE msg_id = ? AND id = ?').get(msgId, attemptId) as AttemptCols | undefined;
    return r ? attemptFromRow(r) : null;
  }
  private listAttempts(column: 'msg_id' | 'endpoint_id', value: string, f: AttemptFilter, q: PageQuery): Page<AttemptRow> {
    const p = pageSql('a.id', q);
    const params: unknown[] = [value];
    let extra = attemptWhere(f, params, 'a');
    const needsMessage = f.channel !== undefined || (f.eventTypes?.length ?? 0) > 0;
    const msgParams: unknown[] = [];
    const msgExtra = messageWhere({ channel: f.channel, eventTypes: f.eventTypes }, msgParams);
    if (f.before !== undefined) {
      extra += ' AND a.created_at < ?';
      params.push(f.before);
    }
    if (f.after !== undefined) {
      extra += ' AND a.created_at > ?';
      params.push(f.after);
    }
    const sql = needsMessage
      ? `SELECT a.* FROM attempts a JOIN messages m ON m.id = a.msg_id WHERE a.${column} = ? ${extra} ${msgExtra} AND ${p.where} ORDER BY ${p.orderBy} LIMIT ?`
      : `SELECT a.* FROM attempts a WHERE a.${column} = ? ${extra} AND ${p.where} ORDER BY ${p.orderBy} LIMIT ?`;
    const rows = this.sql(sql).all(...params, ...msgParams, ...p.params, p.limit) as AttemptCols[];
    return toPage(rows, q, p.backwards, (r) => r.id, attemptFromRow);
  }
  async listAttemptsByMessage(msgId: string, f: AttemptFilter, q: PageQuery): Promise<Page<AttemptRow>> {
    return this.listAttempts('msg_id', msgId, f, q);
  }
  async listAttemptsByEndpoint(endpointId: string, f: AttemptFilter, q: PageQuery): Promise<Page<AttemptRow>> {
    return this.listAttempts('endpoint_id', endpointId, f, q);
  }
  async expungeAttempt(attemptId: string): Promise<void> {
    this.sql("UPDATE attempts SET response = '' WHERE id = ?").run(attemptId);
  }
}
