// Load generation with undici: a closed loop (N requests always in flight)
// and an open loop (requests fired on a fixed schedule whatever the answers).
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';

/** A keep-alive pool of `connections` sockets to one loopback origin. */
export function makePool(origin, connections) {
  return new Pool(origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
    connectTimeout: 10_000,
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Closed loop: `concurrency` workers each send a request, read the whole
 * answer, and send the next, until `durationMs` is over. `make()` returns
 * {path, headers, body, ctx}; `onDone(status, text, t0, ctx)` sees each
 * answer (t0 = performance.now() just before the request).
 */
export async function closedLoop({ pool, concurrency, durationMs, make, onDone }) {
  const r = { sent: 0, completed: 0, errors: 0, errorSamples: [], firstSend: Infinity, lastDone: 0, start: 0, end: 0 };
  r.start = performance.now();
  const end = r.start + durationMs;
  const worker = async () => {
    while (performance.now() < end) {
      const { path, headers, body, ctx } = make();
      const t0 = performance.now();
      if (t0 < r.firstSend) r.firstSend = t0;
      r.sent++;
      try {
        const res = await pool.request({ path, method: 'POST', headers, body });
        const text = await res.body.text();
        r.completed++;
        r.lastDone = performance.now();
        onDone(res.statusCode, text, t0, ctx);
      } catch (e) {
        r.errors++;
        if (r.errorSamples.length < 5) r.errorSamples.push(String(e?.cause?.message ?? e?.message ?? e));
        await sleep(10); // no hot loop when the target is down
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  r.end = performance.now();
  return r;
}

/**
 * Open loop: request i is due at start + i/rate, for `durationMs`; a timer
 * fires every request whose time has come, without waiting for answers.
 * Requests beyond `maxInFlight` outstanding are skipped (and counted), so an
 * overloaded target cannot make the harness grow without bound.
 */
export async function openLoop({ pool, rate, durationMs, maxInFlight, make, onDone }) {
  const total = Math.max(1, Math.round((rate * durationMs) / 1000));
  const interval = 1000 / rate;
  const r = { planned: total, sent: 0, completed: 0, skipped: 0, errors: 0, errorSamples: [], maxLagMs: 0, maxInFlight: 0, start: 0, lastFire: 0, end: 0 };
  let inFlight = 0;
  let i = 0;
  const pending = new Set();
  const fire = (scheduled) => {
    if (inFlight >= maxInFlight) {
      r.skipped++;
      return;
    }
    const { path, headers, body, ctx } = make();
    const t0 = performance.now();
    r.lastFire = t0;
    r.maxLagMs = Math.max(r.maxLagMs, t0 - scheduled);
    r.sent++;
    inFlight++;
    r.maxInFlight = Math.max(r.maxInFlight, inFlight);
    const p = pool
      .request({ path, method: 'POST', headers, body })
      .then(async (res) => {
        const text = await res.body.text();
        r.completed++;
        onDone(res.statusCode, text, t0, ctx, scheduled);
      })
      .catch((e) => {
        r.errors++;
        if (r.errorSamples.length < 5) r.errorSamples.push(String(e?.cause?.message ?? e?.message ?? e));
      })
      .finally(() => {
        inFlight--;
        pending.delete(p);
      });
    pending.add(p);
  };
  r.start = performance.now() + 5;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (i < total && r.start + i * interval <= now) fire(r.start + i++ * interval);
      if (i >= total) return resolve();
      // Sleep until the next request is due (timers have ~1 ms granularity).
      setTimeout(tick, Math.max(0, r.start + i * interval - performance.now() - 0.5));
    };
    setTimeout(tick, 5);
  });
  await Promise.allSettled([...pending]);
  r.end = performance.now();
  return r;
}
