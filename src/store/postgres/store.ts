import type pg from 'pg';
import { sealSecrets, type SecretCipher } from '../endpoint-secrets.js';
import {
  type ApiTokenRow, type AppRow, type AttemptFilter, type AttemptResult, type AttemptRow, type ClaimOptions, type ClaimedDelivery, type DeliveryRow, type EndpointRow,
  type EventTypeRow, type IdempotentResponse, type MessageFilter, type MessageRow, type NewMessage, type Page, type PageQuery, type Store,
  type StoreCapabilities,
} from '../types.js';
import { Params, clientConfig, createPool, rethrowUnique, tx, type ConnectOptions } from './db.js';
import { listenForWork } from './listen.js';
import { LATEST_VERSION, migrate, schemaVersion } from './migrations.js';
import { endpointStatsFromCounts } from '../shared.js';
import { pageSql, toPage } from './pagination.js';
import { claimDue } from './queue/claim.js';
import { completeAttempts } from './queue/complete.js';
import { insertMessages } from './queue/enqueue.js';
import { extendLeases } from './queue/leases.js';
import { releaseLeases } from './queue/release.js';
import { reclaimExpired } from './queue/reclaim.js';
import { recover, resend } from './queue/requeue.js';
import {
  APP_COLS, ATTEMPT_COLS, DELIVERY_AS_D, ENDPOINT_COLS, EVENT_TYPE_COLS, MESSAGE_COLS,
  appFromRow, appParams, attemptFromRow, deliveryFromPrefixed, endpointFromRow, endpointParams, eventTypeFromRow, eventTypeParams, jsonParam, messageFromRow,
  placeholders,
  type AppCols, type AttemptCols, type EndpointCols, type EventTypeCols, type MessageCols,
} from './rows.js';
import * as tokens from './tokens.js';

export interface PostgresOptions extends ConnectOptions {
  /** Bring the schema up to date on open (default true); when false, a schema of another version is refused. */
  migrate?: boolean;
  /** Seals endpoint secrets (endpoint-secrets.ts); without it they can be neither written nor read sealed. */
  cipher?: SecretCipher;
  /**
   * Where the LISTEN connection goes, when not `url`: LISTEN needs a session
   * of its own, which a transaction-pooling PgBouncer does not keep.
   */
  listenUrl?: string;
}

/** Adds `AND …` clauses for the message filters; `m` is the messages alias. */
function messageWhere(f: MessageFilter, p: Params): string {
  let sql = '';
  if (f.channel !== undefined) sql += ` AND m.channels ? ${p.add(f.channel)}`;
  if (f.eventTypes && f.eventTypes.length > 0) sql += ` AND m.event_type = ANY(${p.add(f.eventTypes)}::text[])`;
  if (f.before !== undefined) sql += ` AND m.created_at < ${p.add(f.before)}`;
  if (f.after !== undefined) sql += ` AND m.created_at > ${p.add(f.after)}`;
  return sql;
}

function attemptWhere(f: AttemptFilter, p: Params, alias: string): string {
  let sql = '';
  if (f.status !== undefined) sql += ` AND ${alias}.status = ${p.add(f.status)}`;
  if (f.statusCodeClass !== undefined) {
    if (f.statusCodeClass === 0) sql += ` AND ${alias}.status_code = 0`;
    else sql += ` AND ${alias}.status_code >= ${p.add(f.statusCodeClass)} AND ${alias}.status_code < ${p.add(f.statusCodeClass + 100)}`;
  }
  if (f.endpointId !== undefined) sql += ` AND ${alias}.endpoint_id = ${p.add(f.endpointId)}`;
  return sql;
}

/**
 * The scale-out engine: a pg.Pool over one PostgreSQL database, shared by any
 * number of Hooklane processes. Queue operations live in ./queue/, one file
 * each with its SQL; this class maps the rest of the Store to SQL.
 */
export class PostgresStore implements Store {
  readonly engine = 'postgres';
  /** Many processes share the database; LISTEN/NOTIFY wakes their dispatchers. */
  readonly capabilities: StoreCapabilities = { singleProcess: false, notifications: true };
  readonly pool: pg.Pool;
  private readonly watchers = new Set<() => Promise<void>>();

  private constructor(
    private readonly url: string,
    private readonly opts: PostgresOptions,
  ) {
    this.pool = createPool(url, opts);
  }

  /** Connects, and migrates unless `migrate: false` (then the schema must be current). */
  static async open(url: string, opts: PostgresOptions = {}): Promise<PostgresStore> {
    const store = new PostgresStore(url, opts);
    try {
      if (opts.migrate === false) {
        const v = await schemaVersion(store.pool);
        if (v > LATEST_VERSION) throw new Error(`database schema version ${v} is newer than this Hooklane (${LATEST_VERSION}); upgrade Hooklane`);
        if (v < LATEST_VERSION) throw new Error(`database schema version ${v} is older than this Hooklane (${LATEST_VERSION}); run \`hooklane migrate\``);
      } else {
        await migrate(store.pool);
      }
    } catch (e) {
      await store.pool.end();
      throw e;
    }
    return store;
  }

  async close(): Promise<void> {
    await Promise.all([...this.watchers].map((stop) => stop()));
    this.watchers.clear();
    if (!this.pool.ended) await this.pool.end();
  }

  async watchWork(onWork: () => void): Promise<() => Promise<void>> {
    const stop = await listenForWork(clientConfig(this.opts.listenUrl ?? this.url, this.opts), onWork);
    const unwatch = async () => {
      this.watchers.delete(unwatch);
      await stop();
    };
    this.watchers.add(unwatch);
    return unwatch;
  }

  private async rows<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pool.query<T>(sql, params)).rows;
  }

  async getSetting(key: string): Promise<string | null> {
    return (await this.rows<{ value: string }>('SELECT value FROM settings WHERE key = $1', [key]))[0]?.value ?? null;
  }
  async setSetting(key: string, value: string): Promise<void> {
    await this.pool.query('INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }
  claimSetting(key: string, value: string): Promise<string> {
    return tokens.claimSetting(this.pool, key, value);
  }
  sealPlaintextSecrets(): Promise<number> {
    return tokens.sealPlaintextSecrets(this.pool, this.opts.cipher);
  }

  // --- API tokens (./tokens.ts) -------------------------------------------

  insertToken(t: ApiTokenRow): Promise<void> {
    return tokens.insertToken(this.pool, t);
  }
  findTokenByHash(hash: string): Promise<ApiTokenRow | null> {
    return tokens.findTokenByHash(this.pool, hash);
  }
  listTokens(): Promise<ApiTokenRow[]> {
    return tokens.listTokens(this.pool);
  }
  revokeToken(id: string, at: number): Promise<boolean> {
    return tokens.revokeToken(this.pool, id, at);
  }
  touchToken(id: string, at: number, notBefore: number): Promise<void> {
    return tokens.touchToken(this.pool, id, at, notBefore);
  }

  // --- applications -------------------------------------------------------

  async insertApp(app: AppRow): Promise<void> {
    await this.pool.query(`INSERT INTO applications (${APP_COLS}) VALUES (${placeholders(7)})`, appParams(app)).catch(rethrowUnique);
  }
  async findApp(idOrUid: string): Promise<AppRow | null> {
    // An id match wins over a uid match.
    const r = await this.rows<AppCols>(`SELECT ${APP_COLS} FROM applications WHERE id = $1 OR uid = $1 ORDER BY id = $1 DESC LIMIT 1`, [idOrUid]);
    return r[0] ? appFromRow(r[0]) : null;
  }
  async listApps(q: PageQuery): Promise<Page<AppRow>> {
    const p = new Params();
    const ks = pageSql('id', q, p);
    const rows = await this.rows<AppCols>(`SELECT ${APP_COLS} FROM applications WHERE ${ks.where} ORDER BY ${ks.orderBy} LIMIT ${ks.limit}`, p.values);
    return toPage(rows, q, ks.backwards, (r) => r.id, appFromRow);
  }
  async updateApp(app: AppRow): Promise<void> {
    await this.pool
      .query('UPDATE applications SET uid = $2, name = $3, metadata = $4, throttle_rate = $5, updated_at = $6 WHERE id = $1', [
        app.id, app.uid, app.name, jsonParam(app.metadata), app.throttleRate, app.updatedAt,
      ])
      .catch(rethrowUnique);
  }
  async deleteApp(id: string): Promise<void> {
    // Endpoints, messages, deliveries and queue rows go by cascade; attempts have no foreign key to the app.
    await tx(this.pool, async (c) => {
      await c.query('DELETE FROM attempts WHERE app_id = $1', [id]);
      await c.query('DELETE FROM applications WHERE id = $1', [id]);
    });
  }

  // --- event types --------------------------------------------------------

  async insertEventType(et: EventTypeRow): Promise<void> {
    await this.pool.query(`INSERT INTO event_types (${EVENT_TYPE_COLS}) VALUES (${placeholders(8)})`, eventTypeParams(et)).catch(rethrowUnique);
  }
  async findEventType(name: string): Promise<EventTypeRow | null> {
    const r = await this.rows<EventTypeCols>(`SELECT ${EVENT_TYPE_COLS} FROM event_types WHERE name = $1`, [name]);
    return r[0] ? eventTypeFromRow(r[0]) : null;
  }
  async listEventTypes(q: PageQuery, includeArchived: boolean): Promise<Page<EventTypeRow>> {
    const p = new Params();
    const ks = pageSql('name', q, p);
    const rows = await this.rows<EventTypeCols>(
      `SELECT ${EVENT_TYPE_COLS} FROM event_types WHERE ${ks.where} ${includeArchived ? '' : 'AND NOT archived'} ORDER BY ${ks.orderBy} LIMIT ${ks.limit}`,
      p.values,
    );
    return toPage(rows, q, ks.backwards, (r) => r.name, eventTypeFromRow);
  }
  async updateEventType(et: EventTypeRow): Promise<void> {
    await this.pool.query(
      'UPDATE event_types SET description = $2, archived = $3, deprecated = $4, feature_flag = $5, schemas = $6, updated_at = $7 WHERE name = $1',
      [et.name, et.description, et.archived, et.deprecated, et.featureFlag, jsonParam(et.schemas), et.updatedAt],
    );
  }
  async deleteEventType(name: string): Promise<void> {
    await this.pool.query('DELETE FROM event_types WHERE name = $1', [name]);
  }

  // --- endpoints ----------------------------------------------------------

  async insertEndpoint(ep: EndpointRow): Promise<void> {
    await this.pool.query(`INSERT INTO endpoints (${ENDPOINT_COLS}) VALUES (${placeholders(15)})`, endpointParams(ep, this.opts.cipher)).catch(rethrowUnique);
  }
  async findEndpoint(appId: string, idOrUid: string): Promise<EndpointRow | null> {
    const r = await this.rows<EndpointCols>(
      `SELECT ${ENDPOINT_COLS} FROM endpoints WHERE app_id = $1 AND (id = $2 OR uid = $2) ORDER BY id = $2 DESC LIMIT 1`,
      [appId, idOrUid],
    );
    return r[0] ? endpointFromRow(r[0], this.opts.cipher) : null;
  }
  async listEndpoints(appId: string, q: PageQuery): Promise<Page<EndpointRow>> {
    const p = new Params(appId);
    const ks = pageSql('id', q, p);
    const rows = await this.rows<EndpointCols>(
      `SELECT ${ENDPOINT_COLS} FROM endpoints WHERE app_id = $1 AND ${ks.where} ORDER BY ${ks.orderBy} LIMIT ${ks.limit}`,
      p.values,
    );
    return toPage(rows, q, ks.backwards, (r) => r.id, (r) => endpointFromRow(r, this.opts.cipher));
  }
  async appEndpoints(appId: string): Promise<EndpointRow[]> {
    return (await this.rows<EndpointCols>(`SELECT ${ENDPOINT_COLS} FROM endpoints WHERE app_id = $1 ORDER BY id`, [appId])).map((r) => endpointFromRow(r, this.opts.cipher));
  }
  async updateEndpoint(ep: EndpointRow): Promise<void> {
    await this.pool
      .query(
        'UPDATE endpoints SET uid = $2, url = $3, description = $4, disabled = $5, event_types = $6, channels = $7, metadata = $8, ' +
          'throttle_rate = $9, headers = $10, secrets = $11, failing_since = $12, updated_at = $13 WHERE id = $1',
        [
          ep.id, ep.uid, ep.url, ep.description, ep.disabled, jsonParam(ep.eventTypes), jsonParam(ep.channels), jsonParam(ep.metadata), ep.throttleRate,
          jsonParam(ep.headers), jsonParam(sealSecrets(this.opts.cipher, ep.id, ep.secrets)), ep.failingSince, ep.updatedAt,
        ],
      )
      .catch(rethrowUnique);
  }
  async deleteEndpoint(id: string): Promise<void> {
    // Its deliveries and queue row go by cascade.
    await this.pool.query('DELETE FROM endpoints WHERE id = $1', [id]);
  }

  // --- messages -----------------------------------------------------------

  insertMessages(items: NewMessage[]): Promise<(Error | null)[]> {
    return insertMessages(this.pool, items);
  }
  async findMessage(appId: string, idOrEventId: string): Promise<MessageRow | null> {
    const r = await this.rows<MessageCols>(
      `SELECT ${MESSAGE_COLS} FROM messages WHERE app_id = $1 AND (id = $2 OR event_id = $2) ORDER BY id = $2 DESC LIMIT 1`,
      [appId, idOrEventId],
    );
    return r[0] ? messageFromRow(r[0]) : null;
  }
  async listMessages(appId: string, f: MessageFilter, q: PageQuery): Promise<Page<MessageRow>> {
    const p = new Params(appId);
    const extra = messageWhere(f, p);
    const ks = pageSql('m.id', q, p);
    const rows = await this.rows<MessageCols>(
      `SELECT ${prefixed('m', MESSAGE_COLS)} FROM messages m WHERE m.app_id = $1 ${extra} AND ${ks.where} ORDER BY ${ks.orderBy} LIMIT ${ks.limit}`,
      p.values,
    );
    return toPage(rows, q, ks.backwards, (r) => r.id, messageFromRow);
  }
  async expungeMessage(msgId: string): Promise<void> {
    await this.pool.query('UPDATE messages SET payload = NULL WHERE id = $1', [msgId]);
  }

  async getIdempotent(key: string): Promise<IdempotentResponse | null> {
    const r = (await this.rows<{ key: string; status_code: number; body: string; created_at: number }>('SELECT * FROM idempotency WHERE key = $1', [key]))[0];
    return r ? { key: r.key, statusCode: r.status_code, body: r.body, createdAt: r.created_at } : null;
  }
  async putIdempotent(r: IdempotentResponse): Promise<void> {
    await this.pool.query(
      'INSERT INTO idempotency (key, status_code, body, created_at) VALUES ($1, $2, $3, $4) ' +
        'ON CONFLICT (key) DO UPDATE SET status_code = excluded.status_code, body = excluded.body, created_at = excluded.created_at',
      [r.key, r.statusCode, r.body, r.createdAt],
    );
  }

  // --- the delivery queue (./queue/) ---------------------------------------

  claimDue(owner: string, now: number, limit: number, leaseMs: number, slots: (endpointId: string) => number, opts?: ClaimOptions): Promise<ClaimedDelivery[]> {
    return claimDue(this.pool, owner, now, limit, leaseMs, slots, this.opts.cipher, opts);
  }
  reclaimExpired(now: number): Promise<number> {
    return reclaimExpired(this.pool, now);
  }
  extendLeases(owner: string, deliveryIds: number[], until: number): Promise<number> {
    return extendLeases(this.pool, owner, deliveryIds, until);
  }
  releaseLeases(owner: string, deliveryIds: number[]): Promise<number> {
    return releaseLeases(this.pool, owner, deliveryIds);
  }
  completeAttempts(owner: string, results: AttemptResult[]): Promise<number> {
    return completeAttempts(this.pool, owner, results);
  }
  async nextDueAt(): Promise<number | null> {
    return (await this.rows<{ t: number | null }>('SELECT MIN(next_due_at) AS t FROM endpoint_queue'))[0]?.t ?? null;
  }
  resend(msgId: string, endpointId: string, now: number): Promise<void> {
    return resend(this.pool, msgId, endpointId, now);
  }
  recover(endpointId: string, since: number, until: number, now: number): Promise<number> {
    return recover(this.pool, endpointId, since, until, now);
  }

  // --- deliveries as listed by the API ---------------------------------------

  async findDelivery(msgId: string, endpointId: string): Promise<DeliveryRow | null> {
    const r = await this.rows<Record<string, unknown>>(`SELECT ${DELIVERY_AS_D} FROM deliveries d WHERE d.msg_id = $1 AND d.endpoint_id = $2`, [msgId, endpointId]);
    return r[0] ? deliveryFromPrefixed(r[0]) : null;
  }

  async listDestinations(msgId: string, q: PageQuery): Promise<Page<{ endpoint: EndpointRow; delivery: DeliveryRow }>> {
    const p = new Params(msgId);
    const ks = pageSql('e.id', q, p);
    const rows = await this.rows<EndpointCols & Record<string, unknown>>(
      `SELECT ${prefixed('e', ENDPOINT_COLS)}, ${DELIVERY_AS_D}
       FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
       WHERE d.msg_id = $1 AND ${ks.where} ORDER BY ${ks.orderBy} LIMIT ${ks.limit}`,
      p.values,
    );
    return toPage(rows, q, ks.backwards, (r) => r.id, (r) => ({ endpoint: endpointFromRow(r, this.opts.cipher), delivery: deliveryFromPrefixed(r) }));
  }

  async listEndpointMessages(endpointId: string, f: AttemptFilter, q: PageQuery): Promise<Page<{ message: MessageRow; delivery: DeliveryRow }>> {
    const p = new Params(endpointId);
    let extra = messageWhere(f, p);
    if (f.status !== undefined) extra += ` AND d.status = ${p.add(f.status)}`;
    const ks = pageSql('m.id', q, p);
    const rows = await this.rows<MessageCols & Record<string, unknown>>(
      `SELECT ${prefixed('m', MESSAGE_COLS)}, ${DELIVERY_AS_D}
       FROM deliveries d JOIN messages m ON m.id = d.msg_id
       WHERE d.endpoint_id = $1 ${extra} AND ${ks.where} ORDER BY ${ks.orderBy} LIMIT ${ks.limit}`,
      p.values,
    );
    return toPage(rows, q, ks.backwards, (r) => r.id, (r) => ({ message: messageFromRow(r), delivery: deliveryFromPrefixed(r) }));
  }

  async endpointStats(endpointId: string, since: number | null, until: number | null) {
    const rows = await this.rows<{ status: number; n: number }>(
      'SELECT status, COUNT(*)::int AS n FROM deliveries WHERE endpoint_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY status',
      [endpointId, since ?? 0, until ?? Number.MAX_SAFE_INTEGER],
    );
    return endpointStatsFromCounts(rows);
  }

  // --- attempts -----------------------------------------------------------

  async findAttempt(msgId: string, attemptId: string): Promise<AttemptRow | null> {
    const r = await this.rows<AttemptCols>(`SELECT ${ATTEMPT_COLS} FROM attempts WHERE msg_id = $1 AND id = $2`, [msgId, attemptId]);
    return r[0] ? attemptFromRow(r[0]) : null;
  }
  private async listAttempts(column: 'msg_id' | 'endpoint_id', value: string, f: AttemptFilter, q: PageQuery): Promise<Page<AttemptRow>> {
    const p = new Params(value);
    let extra = attemptWhere(f, p, 'a');
    if (f.before !== undefined) extra += ` AND a.created_at < ${p.add(f.before)}`;
    if (f.after !== undefined) extra += ` AND a.created_at > ${p.add(f.after)}`;
    const needsMessage = f.channel !== undefined || (f.eventTypes?.length ?? 0) > 0;
    if (needsMessage) extra += messageWhere({ channel: f.channel, eventTypes: f.eventTypes }, p);
    const ks = pageSql('a.id', q, p);
    const rows = await this.rows<AttemptCols>(
      `SELECT ${prefixed('a', ATTEMPT_COLS)} FROM attempts a ${needsMessage ? 'JOIN messages m ON m.id = a.msg_id' : ''}
       WHERE a.${column} = $1 ${extra} AND ${ks.where} ORDER BY ${ks.orderBy} LIMIT ${ks.limit}`,
      p.values,
    );
    return toPage(rows, q, ks.backwards, (r) => r.id, attemptFromRow);
  }
  listAttemptsByMessage(msgId: string, f: AttemptFilter, q: PageQuery): Promise<Page<AttemptRow>> {
    return this.listAttempts('msg_id', msgId, f, q);
  }
  listAttemptsByEndpoint(endpointId: string, f: AttemptFilter, q: PageQuery): Promise<Page<AttemptRow>> {
    return this.listAttempts('endpoint_id', endpointId, f, q);
  }
  async expungeAttempt(attemptId: string): Promise<void> {
    await this.pool.query("UPDATE attempts SET response = '' WHERE id = $1", [attemptId]);
  }
}

/** `a.x, a.y` from `x, y`. */
function prefixed(alias: string, cols: string): string {
  return cols.split(', ').map((c) => `${alias}.${c}`).join(', ');
}
