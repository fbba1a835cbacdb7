/**
 * Retry rules, pure. The schedule lists the delays (seconds) before each
 * retry; attempt 1 is immediate, attempt n+1 waits schedule[n-1] ± jitter.
 */

export interface RetryPolicy {
  schedule: readonly number[];
  jitter: number;
}

/** Upper bound on a Retry-After we honour; longer asks are clamped. */
export const MAX_RETRY_AFTER_SECONDS = 24 * 3600;

/** Delay in ms before the next attempt, or null when attempts are exhausted. */
export function nextDelayMs(policy: RetryPolicy, attemptsMade: number, random: () => number = Math.random): number | null {
  const base = policy.schedule[attemptsMade - 1];
  if (base === undefined) return null;
  return applyJitter(base * 1000, policy.jitter, random);
}

export function applyJitter(ms: number, jitter: number, random: () => number = Math.random): number {
  const factor = 1 - jitter + 2 * jitter * random();
  return Math.round(ms * factor);
}

/**
 * Parses Retry-After (seconds or an HTTP date). Returns ms clamped to
 * [0, MAX_RETRY_AFTER_SECONDS], or undefined when absent or unparseable.
 */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  let ms: number;
  if (/^\d+$/.test(v)) ms = Number(v) * 1000;
  else {
    const at = Date.parse(v);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_SECONDS * 1000);
}

export type Outcome =
  | { kind: 'success' }
  | { kind: 'retry'; delayMs: number }
  | { kind: 'failed' }
  | { kind: 'gone' };

/**
 * What happens after an attempt. 2xx succeeds; 410 disables the endpoint;
 * anything else fails and is retried per schedule. A Retry-After on 429/503
 * replaces the scheduled delay, but never asks for fewer than the scheduled
 * retries to be made.
 */
export function decide(
  policy: RetryPolicy,
  attemptsMade: number,
  statusCode: number,
  retryAfter: string | undefined,
  manual: boolean,
  random: () => number = Math.random,
  now = Date.now(),
): Outcome {
  if (statusCode >= 200 && statusCode < 300) return { kind: 'success' };
  if (statusCode === 410) return { kind: 'gone' };
  if (manual) return { kind: 'failed' };
  const scheduled = nextDelayMs(policy, attemptsMade, random);
  if (scheduled === null) return { kind: 'failed' };
  if (statusCode === 429 || statusCode === 503) {
    const asked = parseRetryAfter(retryAfter, now);
    if (asked !== undefined) return { kind: 'retry', delayMs: asked };
  }
  return { kind: 'retry', delayMs: scheduled };
}
