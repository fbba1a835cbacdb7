/**
 * Core records and the Store interface that every engine implements.
 *
 * Glossary
 * - application: a customer of the SaaS; owns endpoints and messages.
 * - endpoint: one URL of an application that receives webhooks.
 * - event type: an entry of the global catalogue; messages may carry any type.
 * - message: one event posted once by the SaaS, fanned out to endpoints.
 * - delivery: the (message, endpoint) pair the dispatcher works on; it moves
 *   pending -> sending -> success | pending (retry) | fail. "Message
 *   destination" in the API.
 * - attempt: one HTTP POST of a delivery, logged with its outcome.
 * - lease: how long a claimed delivery belongs to the process that claimed it;
 *   an expired lease makes the delivery claimable again (crash recovery).
 * - lease owner: the worker id that holds a lease; only it may extend the
 *   lease (heartbeat) or record the delivery's outcome.
 * - endpoint cap: how many deliveries of one endpoint may be leased at once,
 *   across every process (endpointConcurrency); `slots` is one process's share.
 * - capabilities: what an engine can do, named, so callers test a feature
 *   rather than an engine name.
 * - api token: a bearer token, stored as its sha256; admin (whole API) or
 *   scoped to one application.
 * - sealed secrets: an endpoint's signing keys as stored, AES-256-GCM under
 *   HOOKLANE_MAIN_SECRET (endpoint-secrets.ts); records hold them in clear.
 * Times are epoch milliseconds throughout.
 */

/** Wire values of the contract's MessageStatus. */
export const Status = { success: 0, pending: 1, fail: 2, sending: 3 } as const;
export type StatusCode = (typeof Status)[keyof typeof Status];
export const STATUS_TEXT = ['success', 'pending', 'fail', 'sending'] as const;

export const Trigger = { scheduled: 0, manual: 1 } as const;

export interface AppRow {
  id: string;
  uid: string | null;
  name: string;
  metadata: Record<string, string>;
  throttleRate: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface SecretEntry {
  key: string;
  /** When an old key stops signing; null for the current key. */
  expiresAt: number | null;
}

export interface EndpointRow {
  id: string;
  appId: string;
  uid: string | null;
  url: string;
  description: string;
  disabled: boolean;
  eventTypes: string[] | null;
  channels: string[] | null;
  metadata: Record<string, string>;
  throttleRate: number | null;
  headers: Record<string, string>;
  /** Current key first, then old keys still in their grace period. */
  secrets: SecretEntry[];
  /** Start of the current run of failures; null after a success. */
  failingSince: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface EventTypeRow {
  name: string;
  description: string;
  archived: boolean;
  deprecated: boolean;
  featureFlag: string | null;
  schemas: Record<string, unknown> | null;
  createdAt: number;
  updatedAt: number;
}

export interface MessageRow {
  id: string;
  appId: string;
  eventId: string | null;
  eventType: string;
  channels: string[] | null;
  /** The payload JSON text exactly as it is sent; null once expunged. */
  payload: string | null;
  createdAt: number;
}

export interface DeliveryRow {
  id: number;
  msgId: string;
  appId: string;
  endpointId: string;
  status: StatusCode;
  attempts: number;
  nextAttemptAt: number | null;
  manual: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface AttemptRow {
  id: string;
  msgId: string;
  endpointId: string;
  appId: string;
  url: string;
  status: StatusCode;
  statusCode: number;
  response: string;
  durationMs: number;
  triggerType: number;
  error: string | null;
  createdAt: number;
}

export interface PageQuery {
  limit: number;
  iterator: string | null;
  /** Natural order of the listing; `-` iterators walk the other way. */
  order: 'asc' | 'desc';
}

export interface Page<T> {
  data: T[];
  iterator: string | null;
  prevIterator: string | null;
  done: boolean;
}

export interface MessageFilter {
  channel?: string;
  eventTypes?: string[];
  before?: number;
  after?: number;
}

export interface AttemptFilter extends MessageFilter {
  status?: number;
  statusCodeClass?: number;
  endpointId?: string;
}

export interface NewMessage {
  message: MessageRow;
  /** Endpoint ids that get a delivery (already filtered). */
  endpointIds: string[];
  /**
   * Single-process engines only: deliveries to these endpoints are created
   * already leased to `owner`, whose dispatcher sends them from memory after
   * the commit instead of claiming them. The store fills `directIds`
   * (endpoint id -> delivery id).
   */
  direct?: { owner: string; leaseUntil: number; endpointIds: Set<string>; directIds?: Map<string, number> };
  /** Stored with the message in the same transaction. */
  idempotency?: IdempotentResponse;
  /** Created with the message when the path named an unknown uid. */
  createApp?: AppRow;
}

export interface IdempotentResponse {
  key: string;
  statusCode: number;
  body: string;
  createdAt: number;
}

/** Optional parts of a claim (Store.claimDue). */
export interface ClaimOptions {
  /**
   * At most this many deliveries of one endpoint leased at once, counting
   * every process's unexpired leases (endpointConcurrency). An engine of many
   * processes claims at most `min(slots(endpoint), cap - leased now)`; a
   * single-process engine may rely on `slots`, which is global there already.
   */
  endpointCap?: number;
  /**
   * Told of each endpoint whose row cannot be read (sealed secrets that do not
   * open: altered, or sealed under another HOOKLANE_MAIN_SECRET). Its
   * deliveries are left pending, untouched, and the claim goes on with the
   * other endpoints. Called after the claim's transaction, once per endpoint
   * per claim.
   */
  onUnreadableEndpoint?: (endpointId: string, error: unknown) => void;
}

/** A delivery handed to the dispatcher with what it needs to send it. */
export interface ClaimedDelivery {
  delivery: DeliveryRow;
  message: MessageRow;
  endpoint: EndpointRow;
}

export interface AttemptResult {
  deliveryId: number;
  endpointId: string;
  /** Null when the delivery ends without a request (endpoint disabled). */
  attempt: AttemptRow | null;
  /** New delivery state. */
  status: StatusCode;
  nextAttemptAt: number | null;
  at: number;
  /** Endpoint health, applied in the same transaction: */
  endpointOk: boolean;
  /** Disable the endpoint now (it answered 410 Gone). */
  disableEndpoint: boolean;
  /** Disable it too if it has been failing since this time or earlier. */
  failingCutoff: number;
}

/**
 * An API token, stored only as the sha256 of the token (hex). `appId` null
 * is an admin token; otherwise the token reaches that application only.
 */
export interface ApiTokenRow {
  id: string;
  name: string;
  hash: string;
  appId: string | null;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

export class UniqueViolation extends Error {
  constructor(readonly field: string) {
    super(`duplicate ${field}`);
  }
}

/** Named engine features; callers branch on these, never on `engine`. */
export interface StoreCapabilities {
  /**
   * One process owns the database: at start every leased delivery is
   * orphaned by an earlier run and can be requeued at once.
   */
  singleProcess: boolean;
  /** `watchWork` pushes a signal when new work is written by any process. */
  notifications: boolean;
}

/**
 * The persistence contract. Engines implement it whole; the conformance
 * suite in test/store/conformance.test.ts runs against every engine.
 */
export interface Store {
  readonly engine: string;
  readonly capabilities: StoreCapabilities;
  close(): Promise<void>;
  /**
   * Calls `onWork` (possibly spuriously) whenever any process writes due work:
   * new messages, resends, recoveries, scheduled retries. Resolves once
   * listening, with a function that stops it. Only when `capabilities.notifications`.
   */
  watchWork?(onWork: () => void): Promise<() => Promise<void>>;

  getSetting(key: string): Promise<string | null>;
  setSetting(key: string, value: string): Promise<void>;
  /** Sets `key` only if it has no value yet; returns the value it has now (atomic). */
  claimSetting(key: string, value: string): Promise<string>;

  /**
   * Rewrites endpoint secrets still stored in plaintext (rows from before
   * encryption at rest) sealed with the store's cipher; returns how many.
   * openStore runs it once the key is verified. See endpoint-secrets.ts.
   */
  sealPlaintextSecrets(): Promise<number>;

  insertToken(t: ApiTokenRow): Promise<void>;
  findTokenByHash(hash: string): Promise<ApiTokenRow | null>;
  listTokens(): Promise<ApiTokenRow[]>;
  /** Marks the token revoked (once); false when there is no such token. */
  revokeToken(id: string, at: number): Promise<boolean>;
  /** Sets last_used_at to `at` unless it is already at or after `notBefore`. */
  touchToken(id: string, at: number, notBefore: number): Promise<void>;

  insertApp(app: AppRow): Promise<void>;
  /** By id or uid. */
  findApp(idOrUid: string): Promise<AppRow | null>;
  listApps(page: PageQuery): Promise<Page<AppRow>>;
  updateApp(app: AppRow): Promise<void>;
  deleteApp(id: string): Promise<void>;

  insertEventType(et: EventTypeRow): Promise<void>;
  findEventType(name: string): Promise<EventTypeRow | null>;
  listEventTypes(page: PageQuery, includeArchived: boolean): Promise<Page<EventTypeRow>>;
  updateEventType(et: EventTypeRow): Promise<void>;
  deleteEventType(name: string): Promise<void>;

  insertEndpoint(ep: EndpointRow): Promise<void>;
  findEndpoint(appId: string, idOrUid: string): Promise<EndpointRow | null>;
  listEndpoints(appId: string, page: PageQuery): Promise<Page<EndpointRow>>;
  /** Every endpoint of the app, for fan-out. */
  appEndpoints(appId: string): Promise<EndpointRow[]>;
  updateEndpoint(ep: EndpointRow): Promise<void>;
  deleteEndpoint(id: string): Promise<void>;

  /**
   * Inserts messages with their deliveries, one transaction for the batch
   * (group commit). Each item resolves on its own: a duplicate eventId fails
   * that item alone with UniqueViolation.
   */
  insertMessages(items: NewMessage[]): Promise<(Error | null)[]>;
  findMessage(appId: string, idOrEventId: string): Promise<MessageRow | null>;
  listMessages(appId: string, filter: MessageFilter, page: PageQuery): Promise<Page<MessageRow>>;
  expungeMessage(msgId: string): Promise<void>;

  getIdempotent(key: string): Promise<IdempotentResponse | null>;
  putIdempotent(r: IdempotentResponse): Promise<void>;

  /**
   * Claims up to `limit` due deliveries, at most `slots(endpointId)` per
   * endpoint (and within `opts.endpointCap` across processes), leasing them
   * to `owner` until `now + leaseMs`. An endpoint that cannot be read is
   * skipped, not fatal to the claim (`opts.onUnreadableEndpoint`).
   */
  claimDue(
    owner: string, now: number, limit: number, leaseMs: number, slots: (endpointId: string) => number, opts?: ClaimOptions,
  ): Promise<ClaimedDelivery[]>;
  /** Makes deliveries whose lease ran out claimable again; returns how many. */
  reclaimExpired(now: number): Promise<number>;
  /**
   * Heartbeat: moves the lease of those deliveries `owner` still holds to
   * `until`; returns how many. Another owner's leases are never touched.
   */
  extendLeases(owner: string, deliveryIds: number[], until: number): Promise<number>;
  /**
   * Graceful shutdown: hands deliveries `owner` still holds back to the queue,
   * due now (pending, no lease, no attempt counted), and wakes the other
   * workers, so they are sent again at once rather than when the lease would
   * have run out. Another owner's leases are never touched. Returns how many.
   */
  releaseLeases(owner: string, deliveryIds: number[]): Promise<number>;
  /**
   * Records attempts and moves their deliveries on, one transaction. Only
   * results whose delivery `owner` still holds are applied (attempt row,
   * delivery state, endpoint health); a result whose lease was lost is
   * dropped whole, since the delivery now belongs to whoever reclaimed it and
   * will be attempted again (at-least-once). Returns how many were applied.
   */
  completeAttempts(owner: string, results: AttemptResult[]): Promise<number>;
  /** Earliest next attempt among pending deliveries, or null. */
  nextDueAt(): Promise<number | null>;
  /** (Re)queues one delivery for a manual attempt now. */
  resend(msgId: string, endpointId: string, now: number): Promise<void>;
  /** Requeues failed deliveries of an endpoint created in [since, until). */
  recover(endpointId: string, since: number, until: number, now: number): Promise<number>;
  findDelivery(msgId: string, endpointId: string): Promise<DeliveryRow | null>;
  listDestinations(msgId: string, page: PageQuery): Promise<Page<{ endpoint: EndpointRow; delivery: DeliveryRow }>>;
  listEndpointMessages(endpointId: string, filter: AttemptFilter, page: PageQuery): Promise<Page<{ message: MessageRow; delivery: DeliveryRow }>>;
  endpointStats(endpointId: string, since: number | null, until: number | null): Promise<Record<'success' | 'pending' | 'fail' | 'sending' | 'canceled', number>>;

  findAttempt(msgId: string, attemptId: string): Promise<AttemptRow | null>;
  listAttemptsByMessage(msgId: string, filter: AttemptFilter, page: PageQuery): Promise<Page<AttemptRow>>;
  listAttemptsByEndpoint(endpointId: string, filter: AttemptFilter, page: PageQuery): Promise<Page<AttemptRow>>;
  expungeAttempt(attemptId: string): Promise<void>;
}
