import type { Readable } from 'node:stream';
import { Agent, buildConnector, request } from 'undici';
import type { AddressPolicy } from './ssrf.js';

/**
 * The outbound HTTP client: pooled keep-alive per origin, connect and total
 * timeouts, no redirects, response bodies read up to a cap.
 *
 * The total timeout covers everything, the body read included: undici's
 * bodyTimeout is an idle timeout per chunk, which an endpoint dripping a byte
 * at a time never trips.
 */
export interface PostResult {
  statusCode: number;
  body: string;
  retryAfter: string | undefined;
  durationMs: number;
  error: string | null;
}

export interface HttpClientOptions {
  timeoutMs: number;
  maxResponseBytes: number;
  connectionsPerOrigin: number;
  policy: AddressPolicy;
}

export class HttpClient {
  private readonly agent: Agent;

  constructor(private readonly opts: HttpClientOptions) {
    const policy = opts.policy;
    // Names are resolved through the policy's lookup (checked, then dialled as checked).
    const base = buildConnector({ timeout: Math.min(opts.timeoutMs, 10_000), lookup: policy.lookup });
    const connect: buildConnector.connector = (o, callback) => {
      base(o, (err, socket) => {
        if (err) return callback(err, null);
        // IP literals skip lookup, and this is the address really connected to: check it once more.
        const refused = policy.checkPeer(socket.remoteAddress, socket.remotePort);
        if (refused) {
          socket.destroy();
          return callback(refused, null);
        }
        callback(null, socket);
      });
    };
    this.agent = new Agent({
      connections: opts.connectionsPerOrigin,
      keepAliveTimeout: 30_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connect,
    });
  }

  async post(url: string, headers: Record<string, string>, body: string): Promise<PostResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const failed = (error: string): PostResult => ({ statusCode: 0, body: '', retryAfter: undefined, durationMs: elapsed(), error });
    let parsed: URL;
    try {
      parsed = this.opts.policy.checkUrl(url, 'dial');
    } catch (e) {
      return failed(describe(e as Error));
    }
    const signal = AbortSignal.timeout(this.opts.timeoutMs);
    let statusCode = 0;
    try {
      const res = await request(parsed, { method: 'POST', headers, body, dispatcher: this.agent, signal });
      statusCode = res.statusCode;
      const text = await readCapped(res.body, this.opts.maxResponseBytes, signal);
      const ra = res.headers['retry-after'];
      return { statusCode, body: text, retryAfter: Array.isArray(ra) ? ra[0] : ra, durationMs: elapsed(), error: null };
    } catch (e) {
      const err = e as Error;
      // The total timeout and undici's own header/body timeouts run out together; whichever fires first, it is the same timeout.
      const code = (err as { code?: string }).code;
      const timedOut = signal.aborted || err.name === 'TimeoutError' || err.name === 'AbortError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
      let reason = timedOut ? `timed out after ${this.opts.timeoutMs} ms` : describe(err);
      // Headers came but the body did not finish in time: a failure, which the status code alone would hide.
      if (statusCode !== 0) reason = `HTTP ${statusCode}, then the response body failed: ${reason}`;
      return failed(reason);
    }
  }

  async close(): Promise<void> {
    await this.agent.destroy();
  }
}

function describe(err: Error & { code?: string; cause?: unknown }): string {
  const inner = (err.cause instanceof Error ? err.cause : err) as Error & { code?: string };
  const code = inner.code ?? err.code;
  return code ? `${code}: ${inner.message}` : inner.message;
}

/**
 * Reads at most `cap` bytes of the body. Reaching the cap ends the read and
 * destroys the stream (and its connection): nothing past the cap is read or
 * buffered. The signal aborts the read wherever it is.
 */
async function readCapped(body: Readable, cap: number, signal: AbortSignal): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  const abort = () => body.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
  if (signal.aborted) abort();
  signal.addEventListener('abort', abort, { once: true });
  try {
    if (cap > 0) {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        const room = cap - size;
        chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
        size += Math.min(chunk.length, room);
        if (size >= cap) break;
      }
    }
  } finally {
    signal.removeEventListener('abort', abort);
    // A finished body leaves the connection reusable; anything else closes it.
    if (!body.readableEnded) body.destroy();
  }
  return Buffer.concat(chunks).toString('utf8');
}
