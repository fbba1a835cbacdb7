import { signatureHeader } from '../signing/keys.js';
import type { EndpointRow } from '../store/types.js';
import { VERSION } from '../version.js';

/** Keys that sign now: the current one and old ones still in their grace period. */
export function signingKeys(ep: EndpointRow, now: number): string[] {
  return ep.secrets.filter((s) => s.expiresAt === null || s.expiresAt > now).map((s) => s.key);
}

/** Headers of one delivery POST: custom headers first, then ours (ours win). */
export function deliveryHeaders(ep: EndpointRow, msgId: string, body: string, now: number, svixHeaders: boolean): Record<string, string> {
  const ts = Math.floor(now / 1000);
  const signature = signatureHeader(signingKeys(ep, now), msgId, ts, body);
  const h: Record<string, string> = { ...ep.headers };
  h['content-type'] = 'application/json';
  h['user-agent'] = `Hooklane/${VERSION}`;
  h['webhook-id'] = msgId;
  h['webhook-timestamp'] = String(ts);
  h['webhook-signature'] = signature;
  if (svixHeaders) {
    h['svix-id'] = msgId;
    h['svix-timestamp'] = String(ts);
    h['svix-signature'] = signature;
  }
  return h;
}
