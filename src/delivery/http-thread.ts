import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Config } from '../config.js';
import type { PostResult } from './http.js';

/**
 * The outbound HTTP client on a thread of its own. The dispatcher keeps its
 * rules (what is due, concurrency caps, retries, recording); only the
 * requests themselves (sockets, TLS, parsing, reading bodies) run on the
 * worker, so they use the second core instead of the event loop that also
 * serves the API and writes the database. Requests and results cross in
 * batches, one message per tick each way.
 */
export interface Poster {
  post(url: string, headers: Record<string, string>, body: string): Promise<PostResult>;
  close(): Promise<void>;
}

/** What the worker needs: plain data only (it builds its own HttpClient and AddressPolicy). */
export type HttpThreadSettings = Pick<
  Config,
  'requestTimeoutMs' | 'maxResponseBytes' | 'deliveryConcurrency' | 'allowedSubnets' | 'endpointHttpsOnly' | 'publicUrl' | 'port'
>;

export interface PostRequest {
  id: number;
  url: string;
  headers: Record<string, string>;
  body: string;
}

export type PostReply = { id: number; result: PostResult };

const WORKER_FILE = new URL('./http-worker.js', import.meta.url);

/** The compiled worker exists (running from dist/); from TypeScript sources it does not. */
export const httpThreadAvailable = (): boolean => WORKER_FILE.protocol === 'file:' && existsSync(fileURLToPath(WORKER_FILE));

export class ThreadedHttpClient implements Poster {
  private worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<number, (r: PostResult) => void>();
  private outgoing: PostRequest[] = [];
  private scheduled = false;
  private closing = false;

  constructor(private readonly settings: HttpThreadSettings, private readonly onCrash: (e: Error) => void = () => {}) {
    this.worker = this.spawn();
  }

  private spawn(): Worker {
    const w = new Worker(WORKER_FILE, { workerData: this.settings });
    w.on('message', (replies: PostReply[]) => {
      for (const { id, result } of replies) {
        const done = this.waiting.get(id);
        this.waiting.delete(id);
        done?.(result);
      }
    });
    w.on('error', (e) => this.onCrash(e));
    w.on('exit', () => {
      // Requests that were on the thread fail like network errors (and are retried); a crash restarts it.
      this.failAll('the delivery thread stopped');
      if (!this.closing) this.worker = this.spawn();
    });
    return w;
  }

  private failAll(error: string): void {
    for (const [id, done] of this.waiting) {
      this.waiting.delete(id);
      done({ statusCode: 0, body: '', retryAfter: undefined, durationMs: 0, error });
    }
  }

  post(url: string, headers: Record<string, string>, body: string): Promise<PostResult> {
    if (this.closing) return Promise.resolve({ statusCode: 0, body: '', retryAfter: undefined, durationMs: 0, error: 'shutting down' });
    const id = this.nextId++;
    this.outgoing.push({ id, url, headers, body });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        const batch = this.outgoing;
        this.outgoing = [];
        this.worker.postMessage(batch);
      });
    }
    return new Promise((resolve) => this.waiting.set(id, resolve));
  }

  /** Aborts what is under way (its results come back as failures) and stops the thread. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage('close');
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    await exited;
    clearTimeout(timer);
    this.failAll('shutting down');
  }
}
