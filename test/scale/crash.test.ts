import { describe, expect, test } from 'vitest';
import { makeEndpoint } from '../delivery/support.js';
import { startReceiver } from '../helpers/receiver.js';
import { eventually, type ChildServer } from '../helpers/server.js';
import { Fleet, PG_URL, noticeIfSkipped, scaleDb, scaleFixture, startLoad, tally, undelivered } from './support.js';

/**
 * PostgreSQL scale-out under crashes: one API process and two workers share
 * one database while the test posts a steady load; one worker is killed
 * with SIGKILL again and again, each time while it holds deliveries in
 * flight, and restarted. Every acknowledged message must reach the receiver.
 */

noticeIfSkipped('scale/crash');

const f = scaleFixture();

describe.skipIf(!PG_URL)('scale-out: kill -9 of workers under load', () => {
  test('one API, two workers, one of them killed three times: every 202 is delivered, the store agrees', async () => {
    f.db = await scaleDb();
    f.rx = await startReceiver(() => ({ status: 200, delayMs: 30 }));
    // A short lease: what a killed worker held is claimed again within seconds.
    f.fleet = new Fleet({ HOOKLANE_DATABASE_URL: f.db.url(), HOOKLANE_LEASE_MS: '2000', HOOKLANE_DB_POOL_SIZE: '4' });
    // Started together: they migrate the fresh schema concurrently (one does, the others wait and find it done).
    const [api, steady, first] = await Promise.all([f.fleet.start('api'), f.fleet.start('worker'), f.fleet.start('worker')]);
    const t = await makeEndpoint(api.api, 'scale-crash', { url: `${f.rx.url}/hook` });

    const load = startLoad(api.url, t.app, { posters: 3, pauseMs: 15 });
    let victim: ChildServer = first!;
    const kills: { pid: number; leases: number }[] = [];
    try {
      for (let round = 0; round < 3; round++) {
        // Mid-load: the victim holds leases on deliveries it is sending right now.
        let leases = 0;
        await eventually(async () => (leases = await f.db!.leasesHeldBy(victim.proc.pid!)) > 0, 30_000, `worker ${victim.proc.pid} holding deliveries`);
        kills.push({ pid: victim.proc.pid!, leases });
        await victim.kill('SIGKILL');
        victim = await f.fleet.start('worker');
      }
      // Some more load after the last restart.
      const before = load.acked.length;
      await eventually(() => load.acked.length >= before + 30, 30_000, 'posts after the last restart');
    } finally {
      await load.stop();
    }

    expect(load.refused).toEqual([]);
    expect(load.hung).toBe(0);
    expect(load.acked.length).toBeGreaterThan(100);
    const seen = () => tally(f.rx!.requests).distinct;
    await eventually(() => load.acked.every((id) => seen().has(id)), 45_000, `all ${load.acked.length} acknowledged messages at the receiver`);
    expect(load.acked.filter((id) => !seen().has(id))).toEqual([]);

    // The store agrees: every acknowledged message's delivery is a success, nothing is left leased or pending.
    await eventually(async () => (await undelivered(f.db!, load.acked)).length === 0, 30_000, 'every delivery recorded as success');
    const states = await f.db.sql<{ status: number; n: number }>('SELECT status, COUNT(*)::int AS n FROM deliveries GROUP BY status ORDER BY status');
    expect(states).toEqual([{ status: 0, n: load.acked.length }]);

    // The processes never killed are still up.
    expect(api.proc.exitCode).toBeNull();
    expect(steady!.proc.exitCode).toBeNull();
    const { duplicates } = tally(f.rx.requests);
    console.log(
      `[scale/crash] ${load.acked.length} acknowledged, ${f.rx.requests.length} requests received, ${duplicates} duplicates; ` +
        `kills: ${kills.map((k) => `pid ${k.pid} holding ${k.leases}`).join(', ')}`,
    );
  }, 120_000);
});
