import { Status, type AttemptRow, type StatusCode } from './types.js';

/** Engine-neutral pieces of the stores: row shapes both engines read alike, and results computed from rows. */

/** An attempts row as both engines return it. */
export interface AttemptCols {
  id: string; msg_id: string; endpoint_id: string; app_id: string; url: string; status: number; status_code: number; response: string;
  duration_ms: number; trigger_type: number; error: string | null; created_at: number;
}
export const attemptFromRow = (r: AttemptCols): AttemptRow => ({
  id: r.id, msgId: r.msg_id, endpointId: r.endpoint_id, appId: r.app_id, url: r.url, status: r.status as StatusCode, statusCode: r.status_code,
  response: r.response, durationMs: r.duration_ms, triggerType: r.trigger_type, error: r.error, createdAt: r.created_at,
});

/** Store.endpointStats from the count of an endpoint's deliveries per status. */
export function endpointStatsFromCounts(rows: readonly { status: number; n: number }[]) {
  const out = { success: 0, pending: 0, fail: 0, sending: 0, canceled: 0 };
  for (const r of rows) {
    if (r.status === Status.success) out.success = r.n;
    else if (r.status === Status.pending) out.pending = r.n;
    else if (r.status === Status.fail) out.fail = r.n;
    else if (r.status === Status.sending) out.sending = r.n;
  }
  return out;
}
