import { openSecrets, sealSecrets, type SecretCipher } from '../endpoint-secrets.js';
import type { AppRow, AttemptRow, DeliveryRow, EndpointRow, EventTypeRow, MessageRow, StatusCode } from '../types.js';

/** Column <-> record mapping for the SQLite schema. */

const json = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));

export interface AppCols { id: string; uid: string | null; name: string; metadata: string; throttle_rate: number | null; created_at: number; updated_at: number }
export const appFromRow = (r: AppCols): AppRow => ({
  id: r.id, uid: r.uid, name: r.name, metadata: JSON.parse(r.metadata), throttleRate: r.throttle_rate, createdAt: r.created_at, updatedAt: r.updated_at,
});
export const appToRow = (a: AppRow) => ({
  id: a.id, uid: a.uid, name: a.name, metadata: JSON.stringify(a.metadata), throttle_rate: a.throttleRate, created_at: a.createdAt, updated_at: a.updatedAt,
});

export interface EventTypeCols { name: string; description: string; archived: number; deprecated: number; feature_flag: string | null; schemas: string | null; created_at: number; updated_at: number }
export const eventTypeFromRow = (r: EventTypeCols): EventTypeRow => ({
  name: r.name, description: r.description, archived: r.archived === 1, deprecated: r.deprecated === 1, featureFlag: r.feature_flag,
  schemas: json(r.schemas), createdAt: r.created_at, updatedAt: r.updated_at,
});
export const eventTypeToRow = (e: EventTypeRow) => ({
  name: e.name, description: e.description, archived: e.archived ? 1 : 0, deprecated: e.deprecated ? 1 : 0, feature_flag: e.featureFlag,
  schemas: e.schemas === null ? null : JSON.stringify(e.schemas), created_at: e.createdAt, updated_at: e.updatedAt,
});

export interface EndpointCols {
  id: string; app_id: string; uid: string | null; url: string; description: string; disabled: number; event_types: string | null; channels: string | null;
  metadata: string; throttle_rate: number | null; headers: string; secrets: string; failing_since: number | null; created_at: number; updated_at: number;
}
/** `secrets` is sealed text (endpoint-secrets.ts); the cipher opens and seals it. */
export const endpointFromRow = (r: EndpointCols, cipher: SecretCipher | undefined): EndpointRow => ({
  id: r.id, appId: r.app_id, uid: r.uid, url: r.url, description: r.description, disabled: r.disabled === 1,
  eventTypes: json(r.event_types), channels: json(r.channels), metadata: JSON.parse(r.metadata), throttleRate: r.throttle_rate,
  headers: JSON.parse(r.headers), secrets: openSecrets(cipher, r.id, r.secrets), failingSince: r.failing_since, createdAt: r.created_at, updatedAt: r.updated_at,
});
export const endpointToRow = (e: EndpointRow, cipher: SecretCipher | undefined) => ({
  id: e.id, app_id: e.appId, uid: e.uid, url: e.url, description: e.description, disabled: e.disabled ? 1 : 0,
  event_types: e.eventTypes === null ? null : JSON.stringify(e.eventTypes), channels: e.channels === null ? null : JSON.stringify(e.channels),
  metadata: JSON.stringify(e.metadata), throttle_rate: e.throttleRate, headers: JSON.stringify(e.headers), secrets: sealSecrets(cipher, e.id, e.secrets),
  failing_since: e.failingSince, created_at: e.createdAt, updated_at: e.updatedAt,
});

export interface MessageCols { id: string; app_id: string; event_id: string | null; event_type: string; channels: string | null; payload: string | null; created_at: number }
export const messageFromRow = (r: MessageCols): MessageRow => ({
  id: r.id, appId: r.app_id, eventId: r.event_id, eventType: r.event_type, channels: json(r.channels), payload: r.payload, createdAt: r.created_at,
});

export interface DeliveryCols { id: number; msg_id: string; app_id: string; endpoint_id: string; status: number; attempts: number; next_attempt_at: number | null; manual: number; created_at: number; updated_at: number }
export const deliveryFromRow = (r: DeliveryCols): DeliveryRow => ({
  id: r.id, msgId: r.msg_id, appId: r.app_id, endpointId: r.endpoint_id, status: r.status as StatusCode, attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at, manual: r.manual === 1, createdAt: r.created_at, updatedAt: r.updated_at,
});

export { attemptFromRow, type AttemptCols } from '../shared.js';
export const attemptToRow = (a: AttemptRow) => ({
  id: a.id, msg_id: a.msgId, endpoint_id: a.endpointId, app_id: a.appId, url: a.url, status: a.status, status_code: a.statusCode,
  response: a.response, duration_ms: a.durationMs, trigger_type: a.triggerType, error: a.error, created_at: a.createdAt,
});
