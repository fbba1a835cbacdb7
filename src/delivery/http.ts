import { Agent, request } from 'undici';
import type { AddressPolicy } from './ssrf.js';

/**
 * The outbound HTTP client: pooled keep-alive per origin, connect and total
 * timeouts, no redirects, response bodies read up to a cap.
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
    this.agent = new Agent({
      connections: opts.connectionsPerOrigin,
      keepAliveTimeout: 30_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connect: { timeout: Math.min(opts.timeoutMs, 10_000), lookup: opts.policy.lookup },
    });
  }

  async post(url: string, headers: Record<string, string>, body: string): Promise<PostResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    let parsed: URL;
    try {
      parsed = new URL(url);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`unsupported scheme ${parsed.protocol}`);
      this.opts.policy.checkHost(parsed.hostname);
    } catch (e) {
      return { statusCode: 0, body: '', retryAfter: undefined, durationMs: elapsed(), error: (e as Error).message };
    }
    const signal = AbortSignal.timeout(this.opts.timeoutMs);
    try {
      const res = await request(parsed, { method: 'POST', headers, body, dispatcher: this.agent, signal });
      const text = await readCapped(res.body, this.opts.maxResponseBytes);
      const ra = res.headers['retry-after'];
      return {
        statusCode: res.statusCode,
        body: text,
        retryAfter: Array.isArray(ra) ? ra[0] : ra,
        durationMs: elapsed(),
        error: null,
      };
    } catch (e) {
      const err = e as Error & { code?: string; cause?: Error & { code?: string } };
      const reason = err.name === 'TimeoutError' || err.name === 'AbortError' ? `timed out after ${this.opts.timeoutMs} ms` : describe(err);
      return { statusCode: 0, body: '', retryAfter: undefined, durationMs: elapsed(), error: reason };
    }
  }

  async close(): Promise<void> {
    await this.agent.destroy();
  }
}

function describe(err: Error & { code?: string; cause?: Error & { code?: string } }): string {
  const inner = err.cause ?? err;
  const code = inner.code ?? err.code;
  return code ? `${code}: ${inner.message}` : inner.message;
}

/** Reads at most `cap` bytes of the body, then drops the rest. */
async function readCapped(body: AsyncIterable<Buffer> & { destroy?: () => void }, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size < cap) {
      chunks.push(chunk.subarray(0, cap - size));
    }
    size += chunk.length;
    if (size > cap * 4 + 65536) {
      // Far past the cap: stop reading rather than drain an endless body.
      body.destroy?.();
      break;
    }
  }
  const buf = Buffer.concat(chunks);
  return buf.toString('utf8');
}
