import { rmSync } from 'node:fs';
import { afterAll, expect, test } from 'vitest';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { eventually, freePort, spawnServer, tempDir, type ApiResponse, type ChildServer } from '../helpers/server.js';
import { expectAllSigned, header, makeEndpoint } from './support.js';

const N = 300;
const dir = tempDir('hooklane-crash-');
let rx: Receiver | undefined;
const children: ChildServer[] = [];
afterAll(async () => {
  for (const c of children) await c.kill();
  await rx?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('kill -9 with a backlog in flight loses no acknowledged message', async () => {
  // Slow at first: few deliveries finish before the kill, and some are in flight when it lands.
  let slow = true;
  rx = await startReceiver(() => (slow ? { status: 200, delayMs: 1000 } : { status: 200 }));
  // Two at a time, a second each: at most a few per second get through before the kill.
  const env = { HOOKLANE_ENDPOINT_CONCURRENCY: '2' };
  const first = await spawnServer(dir, await freePort(), env);
  children.push(first);
  const t = await makeEndpoint(first.api, 'crash', { url: `${rx.url}/hook` });

  const acked: string[] = [];
  let refused = 0;
  /** Posts messages `from` to `to` - 1, eight at a time; only 202s count as acknowledged. */
  const post = (from: number, to: number) => {
    let next = from;
    const poster = async () => {
      while (next < to) {
        const i = next++;
        try {
          const r = await first.api('POST', `/app/${t.app}/msg`, { eventType: 'crash.test', payload: { i } });
          if (r.status === 202) acked.push(r.body.id as string);
          else refused++;
        } catch {
          refused++; // the connection died with the process
        }
      }
    };
    return Promise.all(Array.from({ length: 8 }, poster));
  };
  // N messages, all acknowledged, while the slow receiver lets the backlog build up.
  await post(0, N);
  expect(acked).toHaveLength(N);
  expect(refused).toBe(0);
  // More posts under way while the process is killed, with deliveries in flight too.
  const racing = post(N, 2 * N);
  await eventually(() => acked.length >= N + 20, 30_000, 'posts under way');
  const receivedBeforeKill = rx.requests.length;
  await first.kill('SIGKILL');
  await racing;
  const deliveredBeforeKill = new Set(rx.requests.map((r) => header(r, 'webhook-id')));
  expect(acked.length + refused).toBe(2 * N);
  expect(receivedBeforeKill).toBeGreaterThan(0);
  // The point of the test: a real backlog was pending at the kill.
  expect(acked.filter((id) => !deliveredBeforeKill.has(id)).length).toBeGreaterThan(N / 3);

  slow = false;
  const second = await spawnServer(dir, await freePort(), env);
  children.push(second);
  const seen = () => new Set(rx!.requests.map((r) => header(r, 'webhook-id')));
  await eventually(() => acked.every((id) => seen().has(id)), 60_000, `all ${acked.length} acknowledged messages at the receiver`);
  const missing = acked.filter((id) => !seen().has(id));
  expect(missing).toEqual([]);

  // Every request verifies, carries its message's id, and the restarted server reports every delivery a success.
  expectAllSigned(t.secret, rx.requests);
  // (Messages committed just before the kill may have lost their 202; they are delivered too, but not counted.)
  const succeeded = async () => {
    const ids = new Set<string>();
    let iterator: string | null = null;
    for (;;) {
      const page: ApiResponse = await second.api('GET', `/app/${t.app}/endpoint/${t.ep}/msg?limit=250&status=0${iterator ? `&iterator=${iterator}` : ''}`);
      expect(page.status).toBe(200);
      for (const m of page.body.data as { id: string; status: number }[]) {
        expect(m.status).toBe(0);
        ids.add(m.id);
      }
      if (page.body.done) return ids;
      iterator = page.body.iterator;
    }
  };
  await eventually(async () => {
    const ok = await succeeded();
    return acked.every((id) => ok.has(id));
  }, 30_000, 'every acknowledged delivery recorded as success');
  await second.kill('SIGTERM');
}, 180_000);
