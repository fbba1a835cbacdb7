import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { bearer } from '../auth/hook.js';
import { hashToken } from '../auth/tokens.js';
import { HttpError } from '../errors.js';

/**
 * API rate limiting per bearer token: a token bucket of `burst` requests
 * refilled at `perSecond`, answered with 429 `{code, detail}` and
 * `Retry-After` when empty. Requests without a token are limited per client
 * address. @fastify/rate-limit does the hook, the headers and the 429; its
 * built-in store counts fixed windows, so the bucket is a store of our own.
 */

export interface RateLimitSettings {
  /** Sustained requests per second per token; 0 turns the limit off. */
  perSecond: number;
  /** Requests a full bucket holds; 0 means twice `perSecond`. */
  burst: number;
  /** Buckets kept at most (least recently used ones are dropped first). */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket in the shape of a @fastify/rate-limit store: `current`
 * is the number of requests the bucket is "down", so that the plugin's
 * `max - current` is the requests left and `current > max` means refused.
 */
export class TokenBucketStore implements FastifyRateLimitStore {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly maxKeys = 10_000,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  take(key: string): { current: number; ttl: number } {
    const now = this.clock();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.perSecond) / 1000);
    b.at = now;
    // Re-insert so that Map order is least recently used first.
    this.buckets.delete(key);
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      // ttl: until the bucket is full again (the plugin's x-ratelimit-reset).
      return { current: this.burst - Math.floor(b.tokens), ttl: Math.ceil(((this.burst - b.tokens) * 1000) / this.perSecond) };
    }
    // Refused: ttl until the next whole token (Retry-After, at least 1 s once rounded up).
    return { current: this.burst + 1, ttl: Math.max(1, Math.ceil(((1 - b.tokens) * 1000) / this.perSecond)) };
  }

  incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void): void {
    callback(null, this.take(key));
  }

  child(): FastifyRateLimitStore {
    return this;
  }
}

const EXEMPT = new Set(['/api/v1/health', '/api/v1/health/', '/api/v1/health/ping']);

/** The bucket key: a hash of the bearer token (never the token), else the client address. */
export function rateLimitKey(req: FastifyRequest): string {
  const token = bearer(req);
  if (token) return 'token:' + hashToken(token).slice(0, 22);
  return 'addr:' + req.ip;
}

/**
 * Registers the limiter as a global onRequest hook. Call it before the
 * authentication hook is added: flooding with wrong tokens is limited too.
 */
export async function registerRateLimit(app: FastifyInstance, s: RateLimitSettings): Promise<void> {
  if (s.perSecond <= 0) return;
  const burst = s.burst > 0 ? s.burst : Math.max(1, 2 * s.perSecond);
  await app.register(rateLimit, {
    global: false,
    max: burst,
    timeWindow: 1000,
    store: class extends TokenBucketStore {
      constructor() {
        super(s.perSecond, burst, s.maxKeys);
      }
    },
    keyGenerator: rateLimitKey,
    allowList: (req) => EXEMPT.has(req.url.split('?', 1)[0]!),
    errorResponseBuilder: (_req, ctx) =>
      new HttpError(429, 'rate_limited', `Too many requests for this token (at most ${s.perSecond}/s, bursts of ${burst}); retry in ${ctx.after}`),
  });
  app.addHook('onRequest', app.rateLimit());
}
