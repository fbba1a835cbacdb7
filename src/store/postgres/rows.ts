import { openSecrets, sealSecrets, type SecretCipher } from '../endpoint-secrets.js';
import type { AppRow, DeliveryRow, EndpointRow, EventTypeRow, MessageRow, StatusCode } from '../types.js';

/**
 * Column <-> record mapping for the PostgreSQL schema. pg parses json/jsonb
 * columns itself; values bound for them are passed as JSON text, since pg
 * would turn a JS array into a PostgreSQL array literal.
 */

export const jsonParam = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));

export const APP_COLS = 'id, uid, name, metadata, throttle_rate, created_at, updated_at';
export interface AppCols { id: string; uid: string | null; name: string; metadata: Record<string, string>; throttle_rate: number | null; created_at: number; updated_at: number }
export const appFromRow = (r: AppCols): AppRow => ({
  id: r.id, uid: r.uid, name: r.name, metadata: r.metadata, throttleRate: r.throttle_rate, createdAt: r.created_at, updatedAt: r.updated_at,
});
/** In APP_COLS order. */
export const appParams = (a: AppRow): unknown[] => [a.id, a.uid, a.name, jsonParam(a.metadata), a.throttleRate, a.createdAt, a.updatedAt];

export const EVENT_TYPE_COLS = 'name, description, archived, deprecated, feature_flag, schemas, created_at, updated_at';
export interface EventTypeCols {
  name: string; description: string; archived: boolean; deprecated: boolean; feature_flag: string | null; schemas: Record<string, unknown> | null;
  created_at: number; updated_at: number;
}
export const eventTypeFromRow = (r: EventTypeCols): EventTypeRow => ({
  name: r.name, description: r.description, archived: r.archived, deprecated: r.deprecated, featureFlag: r.feature_flag,
  schemas: r.schemas, createdAt: r.created_at, updatedAt: r.updated_at,
});
/** In EVENT_TYPE_COLS order. */
export const eventTypeParams = (e: EventTypeRow): unknown[] => [
  e.name, e.description, e.archived, e.deprecated, e.featureFlag, jsonParam(e.schemas), e.createdAt, e.updatedAt,
];

export const ENDPOINT_COLS =
  'id, app_id, uid, url, description, disabled, event_types, channels, metadata, throttle_rate, headers, secrets, failing_since, created_at, updated_at';
export interface EndpointCols {
  id: string; app_id: string; uid: string | null; url: string; description: string; disabled: boolean; event_types: string[] | null; channels: string[] | null;
  metadata: Record<string, string>; throttle_rate: number | null; headers: Record<string, string>;
  /** Sealed text as a JSON string (endpoint-secrets.ts); a JSON array in rows from before encryption. */
  secrets: unknown; failing_since: number | null;
  created_at: number; updated_at: number;
}
export const endpointFromRow = (r: EndpointCols, cipher: SecretCipher | undefined): EndpointRow => ({
  id: r.id, appId: r.app_id, uid: r.uid, url: r.url, description: r.description, disabled: r.disabled,
  eventTypes: r.event_types, channels: r.channels, metadata: r.metadata, throttleRate: r.throttle_rate,
  headers: r.headers, secrets: openSecrets(cipher, r.id, r.secrets), failingSince: r.failing_since, createdAt: r.created_at, updatedAt: r.updated_at,
});
/** In ENDPOINT_COLS order. */
export const endpointParams = (e: EndpointRow, cipher: SecretCipher | undefined): unknown[] => [
  e.id, e.appId, e.uid, e.url, e.description, e.disabled, jsonParam(e.eventTypes), jsonParam(e.channels), jsonParam(e.metadata), e.throttleRate,
  jsonParam(e.headers), jsonParam(sealSecrets(cipher, e.id, e.secrets)), e.failingSince, e.createdAt, e.updatedAt,
];

export const MESSAGE_COLS = 'id, app_id, event_id, event_type, channels, payload, created_at';
export interface MessageCols { id: string; app_id: string; event_id: string | null; event_type: string; channels: string[] | null; payload: string | null; created_at: number }
export const messageFromRow = (r: MessageCols): MessageRow => ({
  id: r.id, appId: r.app_id, eventId: r.event_id, eventType: r.event_type, channels: r.channels, payload: r.payload, createdAt: r.created_at,
});

export const DELIVERY_COLS = 'id, msg_id, app_id, endpoint_id, status, attempts, next_attempt_at, manual, created_at, updated_at';
export interface DeliveryCols {
  id: number; msg_id: string; app_id: string; endpoint_id: string; status: number; attempts: number; next_attempt_at: number | null; manual: boolean;
  created_at: number; updated_at: number;
}
export const deliveryFromRow = (r: DeliveryCols): DeliveryRow => ({
  id: r.id, msgId: r.msg_id, appId: r.app_id, endpointId: r.endpoint_id, status: r.status as StatusCode, attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at, manual: r.manual, createdAt: r.created_at, updatedAt: r.updated_at,
});
/** DELIVERY_COLS of alias `d`, renamed d_*, to select next to another table's columns. */
export const DELIVERY_AS_D = DELIVERY_COLS.split(', ').map((c) => `d.${c} AS d_${c}`).join(', ');
export const deliveryFromPrefixed = (r: Record<string, unknown>): DeliveryRow =>
  deliveryFromRow(Object.fromEntries(DELIVERY_COLS.split(', ').map((c) => [c, r[`d_${c}`]])) as unknown as DeliveryCols);

export const ATTEMPT_COLS = 'id, msg_id, endpoint_id, app_id, url, status, status_code, response, duration_ms, trigger_type, error, created_at';
export { attemptFromRow, type AttemptCols } from '../shared.js';

/** `$1, $2, …` for n values starting after `offset`. */
export const placeholders = (n: number, offset = 0): string => Array.from({ length: n }, (_, i) => `$${offset + i + 1}`).join(', ');
