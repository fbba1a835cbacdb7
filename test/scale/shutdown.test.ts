import { describe, expect, test } from 'vitest';
import { makeEndpoint, send } from '../delivery/support.js';
import { startReceiver } from '../helpers/receiver.js';
import { eventually } from '../helpers/server.js';
import { Fleet, PG_URL, logLines, noticeIfSkipped, scaleDb, scaleFixture, tally, webhookId } from './support.js';

/**
 * SIGTERM of a worker with deliveries in flight: attempts that finish within
 * the grace period are recorded by it; the ones still hanging then are
 * handed back, and another worker sends them at once, long before their
 * lease (a minute here) would have run out. The worker exits 0.
 */

noticeIfSkipped('scale/shutdown');

const f = scaleFixture();

const GRACE_MS = 4000;
const LEASE_MS = 60_000;

describe.skipIf(!PG_URL)('scale-out: graceful shutdown', () => {
  test('SIGTERM: slow deliveries finish and are recorded, hanging ones are released to another worker at once', async () => {
    f.db = await scaleDb();
    // Until the shutdown: "slow" messages are answered after 1.5 s, "hang" ones never. After: at once.
    let shutDown = false;
    f.rx = await startReceiver((req) => {
      if (shutDown) return { status: 200 };
      const kind = (JSON.parse(req.body) as { kind: string }).kind;
      return kind === 'hang' ? { hang: true } : { status: 200, delayMs: 1500 };
    });
    f.fleet = new Fleet({ HOOKLANE_DATABASE_URL: f.db.url(), HOOKLANE_LEASE_MS: String(LEASE_MS), HOOKLANE_SHUTDOWN_GRACE_MS: String(GRACE_MS) });
    const api = await f.fleet.start('api');
    const t = await makeEndpoint(api.api, 'scale-shutdown', { url: `${f.rx.url}/hook` });

    const slow: string[] = [];
    const hanging: string[] = [];
    for (let i = 0; i < 3; i++) {
      slow.push(await send(api.api, t.app, { eventType: 'shutdown.test', payload: { kind: 'slow', i } }));
      hanging.push(await send(api.api, t.app, { eventType: 'shutdown.test', payload: { kind: 'hang', i } }));
    }
    // The only worker, started now, claims all six at once; they are in flight together.
    const first = await f.fleet.start('worker');
    await f.rx.waitFor(6, 30_000);
    expect(await f.db.leasesHeldBy(first.proc.pid!)).toBe(6);

    // A second worker: nothing to claim yet, all six are leased.
    const second = await f.fleet.start('worker');
    shutDown = true;
    const t0 = Date.now();
    await first.kill('SIGTERM');
    const exitMs = Date.now() - t0;
    expect(first.proc.exitCode, first.output()).toBe(0);
    // Exited on its own, well before anything else could have ended it (the hang is endless, the lease a minute).
    expect(exitMs).toBeLessThan(GRACE_MS + 10_000);
    expect(logLines(first, 'handed back to the queue').join('\n')).toContain('"released":3');

    // The hanging three reach the receiver again from the second worker, long before the lease would end.
    await eventually(() => hanging.every((id) => f.rx!.requests.filter((r) => webhookId(r) === id).length >= 2), 20_000, 'released deliveries sent again');
    const state = async () =>
      f.db!.sql<{ msg_id: string; status: number; attempts: number }>('SELECT msg_id, status, attempts FROM deliveries ORDER BY msg_id');
    await eventually(async () => (await state()).every((d) => d.status === 0), 20_000, 'every delivery a success');
    // One recorded attempt each: the slow ones by the first worker, the released ones by the second
    // (a released delivery counts no attempt, its request never ended).
    expect((await state()).map((d) => d.attempts)).toEqual([1, 1, 1, 1, 1, 1]);
    // The slow ones finished within the grace period, were recorded, and were not sent again.
    for (const id of slow) expect(f.rx.requests.filter((r) => webhookId(r) === id)).toHaveLength(1);
    expect(second.proc.exitCode).toBeNull();
    console.log(`[scale/shutdown] worker exited 0 after ${exitMs} ms (grace ${GRACE_MS} ms); ${tally(f.rx.requests).duplicates} requests repeated (the released ones)`);
  }, 120_000);
});
