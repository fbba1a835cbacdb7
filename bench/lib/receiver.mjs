// The webhook receiver: a node:http server on loopback that verifies each
// Standard Webhooks signature and records, per path ("sink"), when each
// webhook-id first arrived (performance.now(), the same clock the load
// generator uses, since both run in this process).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';

export class Sink {
  constructor(name) {
    this.name = name;
    /** webhook-id -> time of first receipt */
    this.firstAt = new Map();
    this.requests = 0;
    this.duplicates = 0;
    this.badSignatures = 0;
    this.firstReceipt = Infinity;
    this.lastReceipt = 0;
  }
  get unique() {
    return this.firstAt.size;
  }
  record(id, t, signatureOk) {
    this.requests++;
    if (!signatureOk) {
      this.badSignatures++;
      return;
    }
    if (this.firstAt.has(id)) {
      this.duplicates++;
      return;
    }
    this.firstAt.set(id, t);
    if (t < this.firstReceipt) this.firstReceipt = t;
    if (t > this.lastReceipt) this.lastReceipt = t;
  }
}

/** True when one of the `v1,` signatures in `header` is HMAC-SHA256(key, id.ts.body). */
export function verifySignature(key, id, ts, body, header) {
  if (typeof id !== 'string' || typeof ts !== 'string' || typeof header !== 'string') return false;
  const expected = createHmac('sha256', key).update(`${id}.${ts}.`).update(body).digest();
  for (const part of header.split(' ')) {
    if (!part.startsWith('v1,')) continue;
    const given = Buffer.from(part.slice(3), 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return true;
  }
  return false;
}

/**
 * Starts the receiver on 127.0.0.1 (random port). Requests to `/hook/<name>`
 * are recorded in sink `<name>`; anything else is counted as stray.
 */
export async function startReceiver({ key }) {
  const sinks = new Map();
  const stray = { requests: 0, paths: new Set() };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const t = performance.now();
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      const id = req.headers['webhook-id'];
      const ok = req.method === 'POST' && verifySignature(key, id, req.headers['webhook-timestamp'], body, req.headers['webhook-signature']);
      const sink = sinks.get(req.url);
      if (sink) sink.record(id, t, ok);
      else {
        stray.requests++;
        if (stray.paths.size < 10) stray.paths.add(req.url);
      }
      res.writeHead(ok ? 200 : 400, { 'content-length': '0' });
      res.end();
    });
    req.on('error', () => res.destroy());
  });
  // Deliveries come over keep-alive connections that may idle between phases.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    stray,
    /** A fresh sink; its URL is where the phase points its endpoint. */
    sink(name) {
      const path = `/hook/${name}`;
      const s = new Sink(name);
      s.path = path;
      s.url = origin + path;
      sinks.set(path, s);
      return s;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        setTimeout(resolve, 2000).unref();
      }),
  };
}
