/**
 * Endpoint rules that need no server: custom header checks, secret
 * rotation bookkeeping, example payloads.
 */
import type { SecretEntry } from '../store/types.js';

/** Headers the sender sets itself; an endpoint may not override them. */
const RESERVED = /^(host|content-length|content-type|user-agent|connection|transfer-encoding|te|upgrade|keep-alive|expect|webhook-.*|svix-.*)$/i;
/** Stored, sent, but not shown back in full by the API. */
const SENSITIVE = /^(authorization|proxy-authorization|cookie|x-api-key|x-auth-token)$/i;

export function reservedHeader(name: string): boolean {
  return RESERVED.test(name);
}
export function sensitiveHeader(name: string): boolean {
  return SENSITIVE.test(name);
}

export const MAX_OLD_KEYS = 10;
export const DEFAULT_GRACE_SECONDS = 86_400;

/**
 * Rotation: the new key signs from now on; the old current key keeps
 * signing until the grace period ends. Expired keys are dropped, and at most
 * MAX_OLD_KEYS old keys are kept (the newest).
 */
export function rotate(secrets: readonly SecretEntry[], newKey: string, graceSeconds: number, now: number): SecretEntry[] {
  const old = secrets
    .map((s) => (s.expiresAt === null ? { key: s.key, expiresAt: now + graceSeconds * 1000 } : s))
    .filter((s) => s.expiresAt! > now && s.key !== newKey)
    .sort((a, b) => b.expiresAt! - a.expiresAt!)
    .slice(0, MAX_OLD_KEYS);
  return [{ key: newKey, expiresAt: null }, ...old];
}

export function currentKey(secrets: readonly SecretEntry[]): string {
  const cur = secrets.find((s) => s.expiresAt === null) ?? secrets[0];
  if (!cur) throw new Error('endpoint has no secret');
  return cur.key;
}

/** The payload send-example posts: the event type's schema example when it has one. */
export function examplePayload(eventType: string, schemas: Record<string, unknown> | null): Record<string, unknown> {
  const versions = schemas ? Object.keys(schemas).sort() : [];
  for (const v of versions.reverse()) {
    const s = schemas![v] as { examples?: unknown[]; example?: unknown };
    const ex = s.examples?.[0] ?? s.example;
    if (ex && typeof ex === 'object' && !Array.isArray(ex)) return ex as Record<string, unknown>;
  }
  return { eventType, example: true, message: `An example ${eventType} event sent by Hooklane` };
}
