import { createServer, type Server, type ServerResponse } from 'node:http';
import { describe, expect, test } from 'vitest';
import { makeEndpoint, send } from '../delivery/support.js';
import { startReceiver } from '../helpers/receiver.js';
import { eventually, type ChildServer } from '../helpers/server.js';
import { Fleet, PG_URL, noticeIfSkipped, scaleDb, scaleFixture, sleep, tally } from './support.js';

/**
 * Per-endpoint concurrency across processes: endpointConcurrency bounds the
 * requests open at one endpoint in total, however many workers share the
 * database, and a hanging endpoint still holds up nobody else.
 */

noticeIfSkipped('scale/endpoint-cap');

const CAP = 3;
const BACKLOG = 30;
const HEALTHY = 100;

/** A receiver that never answers, and counts the requests open at once (a request ends when its connection closes). */
interface Hanging {
  url: string;
  total: number;
  open: number;
  maxOpen: number;
  close(): Promise<void>;
}

async function startHanging(): Promise<Hanging> {
  const held = new Set<ServerResponse>();
  const h: Hanging = {
    url: '', total: 0, open: 0, maxOpen: 0,
    close: () =>
      new Promise((resolve) => {
        for (const res of held) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    req.resume();
    h.total++;
    h.open++;
    h.maxOpen = Math.max(h.maxOpen, h.open);
    held.add(res);
    res.on('close', () => {
      held.delete(res);
      h.open--;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  h.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return h;
}

const f = scaleFixture();

describe.skipIf(!PG_URL)('scale-out: per-endpoint concurrency across processes', () => {
  test('two workers together open at most endpointConcurrency requests at a hanging endpoint; another app\'s endpoint gets everything promptly', async () => {
    f.db = await scaleDb();
    const hang = await startHanging();
    f.extra = hang;
    f.rx = await startReceiver(() => ({ status: 200 }));
    // The hanging requests outlast the test; a short lease lets a survivor take over a killed worker's share.
    f.fleet = new Fleet({
      HOOKLANE_DATABASE_URL: f.db.url(), HOOKLANE_ENDPOINT_CONCURRENCY: String(CAP), HOOKLANE_REQUEST_TIMEOUT_MS: '120000', HOOKLANE_LEASE_MS: '3000',
    });
    const api = await f.fleet.start('api');
    const workers = await Promise.all([f.fleet.start('worker'), f.fleet.start('worker')]);
    const stuck = await makeEndpoint(api.api, 'cap-stuck', { url: `${hang.url}/hang` });
    const healthy = await makeEndpoint(api.api, 'cap-healthy', { url: `${f.rx.url}/ok` });

    for (let i = 0; i < BACKLOG; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, j) => send(api.api, stuck.app, { eventType: 'cap.test', payload: { i: i + j } })));
    }
    await eventually(() => hang.total >= CAP, 20_000, 'the hanging endpoint to be busy');

    // Both workers poll every 50 ms and each has all CAP of its own slots free for the hanging endpoint's backlog.
    const t0 = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < HEALTHY; i += 10) {
      ids.push(...(await Promise.all(Array.from({ length: 10 }, (_, j) => send(api.api, healthy.app, { eventType: 'cap.test', payload: { i: i + j } })))));
    }
    await eventually(() => ids.every((id) => tally(f.rx!.requests).distinct.has(id)), 20_000, `all ${HEALTHY} deliveries to the healthy endpoint`);
    const took = Date.now() - t0;
    await sleep(1500);

    expect(hang.total).toBe(CAP);
    expect(hang.open).toBe(CAP);
    expect(hang.maxOpen).toBe(CAP);
    const states = await f.db.sql<{ status: number; n: number }>(
      'SELECT status, COUNT(*)::int AS n FROM deliveries WHERE endpoint_id = $1 GROUP BY status ORDER BY status', [stuck.ep],
    );
    expect(states).toEqual([{ status: 1, n: BACKLOG - CAP }, { status: 3, n: CAP }]);
    expect(tally(f.rx.requests).duplicates).toBe(0);
    console.info(`[scale/endpoint-cap] ${HEALTHY} healthy deliveries in ${took} ms beside a saturated endpoint`);

    // The cap, not one worker being idle, is what held the other back: kill a holder, and the
    // survivor takes its share over once the lease runs out, never exceeding the cap meanwhile.
    const held = await Promise.all(workers.map((w) => f.db!.leasesHeldBy(w.proc.pid!)));
    expect(held[0]! + held[1]!).toBe(CAP);
    const victimIndex = held[0]! >= held[1]! ? 0 : 1;
    const victim: ChildServer = workers[victimIndex]!;
    const survivor: ChildServer = workers[1 - victimIndex]!;
    const taken = held[victimIndex]!;
    await victim.kill('SIGKILL');
    await eventually(async () => (await f.db!.leasesHeldBy(survivor.proc.pid!)) === CAP && hang.open === CAP, 20_000, 'the survivor to hold the whole cap');
    await sleep(1000);
    expect(hang.total).toBe(CAP + taken);
    expect(hang.open).toBe(CAP);
    expect(hang.maxOpen).toBe(CAP);
    expect(await f.db.leasesHeldBy(survivor.proc.pid!)).toBe(CAP);
  }, 120_000);
});
