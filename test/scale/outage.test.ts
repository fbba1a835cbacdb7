import { describe, expect, test } from 'vitest';
import { makeEndpoint } from '../delivery/support.js';
import { startReceiver } from '../helpers/receiver.js';
import { eventually } from '../helpers/server.js';
import { Fleet, PG_URL, TcpProxy, logLines, noticeIfSkipped, pgTarget, scaleDb, scaleFixture, sleep, startLoad, tally, undelivered } from './support.js';

/**
 * PostgreSQL going away under load: first every session of the test's
 * processes is terminated (pg_terminate_backend, scoped by their
 * application_name), then, through a TCP proxy of the test's own, the
 * database refuses connections for a while. The processes must stay up,
 * answer 503 {code, detail} meanwhile (never 500, never hang), log the outage
 * once rather than per failure, and carry on by themselves afterwards with
 * nothing acknowledged lost.
 */

noticeIfSkipped('scale/outage');

const UNAVAILABLE = 'database unavailable: delivery paused';
const RECOVERED = 'database available again';

const f = scaleFixture();

describe.skipIf(!PG_URL)('scale-out: database outages', () => {
  test('sessions terminated, then connections refused: 503 meanwhile, recovery by itself, nothing acknowledged lost', async () => {
    f.db = await scaleDb();
    const target = pgTarget();
    const proxy = new TcpProxy(target.host, target.port);
    f.extra = proxy;
    await proxy.start();
    f.rx = await startReceiver(() => ({ status: 200, delayMs: 20 }));
    f.fleet = new Fleet({ HOOKLANE_DATABASE_URL: f.db.url({ host: '127.0.0.1', port: proxy.port }), HOOKLANE_LEASE_MS: '3000', HOOKLANE_DB_POOL_SIZE: '4' });
    const api = await f.fleet.start('api');
    const workers = await Promise.all([f.fleet.start('worker'), f.fleet.start('worker')]);
    const t = await makeEndpoint(api.api, 'scale-outage', { url: `${f.rx.url}/hook` });

    const load = startLoad(api.url, t.app, { posters: 3, pauseMs: 15 });
    const progress = async (what: string, more = 30) => {
      const before = load.acked.length;
      const delivered = tally(f.rx!.requests).distinct.size;
      await eventually(() => load.acked.length >= before + more && tally(f.rx!.requests).distinct.size >= delivered + more, 40_000, what);
    };
    let terminated = 0;
    let refusedWindow: { status: number; body: unknown }[] = [];
    const cut = { from: 0, to: 0 };
    try {
      await progress('deliveries under way');

      // 1. Every session of this test's processes is terminated, a few times over, mid-load.
      for (let i = 0; i < 3; i++) {
        terminated += await f.db.terminateBackends();
        await sleep(300);
      }
      await progress('progress after the sessions were terminated');

      // 2. Connections refused (and the open ones cut) for a while.
      const before = load.refused.length;
      cut.from = Date.now();
      await proxy.refuse();
      await eventually(() => load.refused.length > before + 5, 20_000, 'API requests refused while the database is unreachable');
      const health = await fetch(`${api.url}/api/v1/health`);
      expect(health.status).toBe(503);
      const workerHealth = await fetch(`${workers[0]!.url}/api/v1/health`);
      expect(workerHealth.status).toBe(503);
      await sleep(1500);
      refusedWindow = load.refused.slice(before);
      cut.to = Date.now();
      await proxy.resume();
      await progress('progress after the database came back');
    } finally {
      await load.stop();
    }

    expect(terminated).toBeGreaterThan(0);
    // Refused requests, and only those, got 503 with the API's error shape; none hung.
    expect(refusedWindow.length).toBeGreaterThan(0);
    for (const r of load.refused) {
      expect(r.status, JSON.stringify(r)).toBe(503);
      expect(r.body).toMatchObject({ code: 'database_unavailable', detail: expect.any(String) });
    }
    expect(load.hung).toBe(0);

    // Nothing acknowledged is lost, and the store agrees.
    const seen = () => tally(f.rx!.requests).distinct;
    await eventually(() => load.acked.every((id) => seen().has(id)), 45_000, `all ${load.acked.length} acknowledged messages at the receiver`);
    await eventually(async () => (await undelivered(f.db!, load.acked)).length === 0, 30_000, 'every delivery recorded as success');

    // Still the same processes. Each worker logged each outage about once, not once per failed
    // operation: while connections were refused (claims, heartbeats, writes all failing, for
    // seconds), at most the one warning (two should an operation slip through at the edge).
    for (const p of [api, ...workers]) expect(p.proc.exitCode, p.output()).toBeNull();
    for (const w of workers) {
      const down = logLines(w, UNAVAILABLE).map((l) => JSON.parse(l) as { time: number });
      const inWindow = down.filter((l) => l.time >= cut.from && l.time <= cut.to);
      expect(inWindow.length, w.output()).toBeGreaterThanOrEqual(1);
      expect(inWindow.length, w.output()).toBeLessThanOrEqual(2);
      expect(down.length, w.output()).toBeLessThanOrEqual(8);
      expect(logLines(w, RECOVERED).length).toBeGreaterThanOrEqual(1);
    }
    // The API process writes no "internal error" for an unreachable database.
    expect(logLines(api, 'internal error')).toEqual([]);
    console.log(
      `[scale/outage] ${load.acked.length} acknowledged, ${load.refused.length} refused with 503, ${terminated} sessions terminated, ` +
        `${f.rx.requests.length} requests received, ${tally(f.rx.requests).duplicates} duplicates; outage log lines per worker: ` +
        workers.map((w) => logLines(w, UNAVAILABLE).length).join(', '),
    );
  }, 150_000);
});
