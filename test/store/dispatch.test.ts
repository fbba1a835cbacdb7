import { afterEach, describe, expect, test } from 'vitest';
import type { Config } from '../../src/config.js';
import type { PostgresStore } from '../../src/store/postgres/store.js';
import { startReceiver } from '../helpers/receiver.js';
import { eventually, startServer, type TestServer } from '../helpers/server.js';
import { PG_URL, emptyPostgresSchema } from './engines.js';

/**
 * The dispatcher over each engine: leases kept alive by the heartbeat, and
 * (PostgreSQL) several processes sharing one queue, woken by NOTIFY.
 */

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A database URL per engine; PostgreSQL gets a fresh schema through `options`. */
const ENGINES: { name: string; available: boolean; url: () => Promise<string | undefined> }[] = [
  { name: 'sqlite', available: true, url: async () => undefined },
  {
    name: 'postgres',
    available: !!PG_URL,
    url: async () => {
      const s = await emptyPostgresSchema();
      cleanups.push(() => s.drop());
      const u = new URL(PG_URL!);
      u.searchParams.set('options', `-c search_path=${s.schema}`);
      return u.toString();
    },
  },
];

async function server(overrides: Partial<Config>): Promise<TestServer> {
  const s = await startServer(overrides);
  cleanups.push(() => s.close());
  return s;
}

describe.each(ENGINES)('dispatcher on $name', (engine) => {
  describe.skipIf(!engine.available)(engine.name, () => {
    test('the heartbeat keeps the lease of an attempt that outlasts it: sent once', async () => {
      const databaseUrl = await engine.url();
      const rx = await startReceiver(() => ({ status: 200, delayMs: 2600 }));
      cleanups.push(() => rx.close());
      const s = await server({ leaseMs: 1000, ...(databaseUrl ? { databaseUrl } : {}) });
      const app = await s.api('POST', '/app', { name: 'slow' });
      await s.api('POST', `/app/${app.body.id}/endpoint`, { url: `${rx.url}/slow` });
      const msg = await s.api('POST', `/app/${app.body.id}/msg`, { eventType: 'e', payload: {} });
      expect(msg.status).toBe(202);
      await eventually(async () => (await s.api('GET', `/app/${app.body.id}/attempt/msg/${msg.body.id}`)).body.data?.length === 1, 10_000, 'the attempt');
      // Past two more reclaim rounds: no second request.
      await new Promise((r) => setTimeout(r, 2000));
      expect(rx.requests).toHaveLength(1);
    });
  });
});

describe.skipIf(!PG_URL)('dispatcher on postgres, two processes', () => {
  test('share one queue: every message delivered exactly once, both sending, endpointConcurrency held in total', async () => {
    const databaseUrl = (await ENGINES[1]!.url())!;
    let inFlight = 0;
    let maxInFlight = 0;
    const rx = await startReceiver(() => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => inFlight--, 40);
      return { status: 200, delayMs: 40 };
    });
    cleanups.push(() => rx.close());
    // Four slots for the endpoint in all, whichever process takes them.
    const opts = { databaseUrl, endpointConcurrency: 4, pollIntervalMs: 5000 };
    const a = await server(opts);
    const b = await server(opts); // the second process: its dispatcher shares the queue
    const app = await a.api('POST', '/app', { name: 'shared', uid: 'shared' });
    await a.api('POST', `/app/${app.body.id}/endpoint`, { url: `${rx.url}/hook` });
    // Which dispatchers hold leases while the work is under way.
    const pool = (a.hl.store as PostgresStore).pool;
    const owners = new Set<string>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await pool.query<{ lease_owner: string }>('SELECT DISTINCT lease_owner FROM deliveries WHERE status = 3');
        for (const r of rows) owners.add(r.lease_owner);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const ids = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const r = await a.api('POST', '/app/shared/msg', { eventType: 'e', payload: { i } });
      expect(r.status).toBe(202);
      ids.add(r.body.id);
    }
    // B learns of the work by NOTIFY alone: its poll interval is far longer than the test.
    const got = await rx.waitFor(60, 20_000);
    await new Promise((r) => setTimeout(r, 300));
    sampling = false;
    await sampler;
    expect(rx.requests).toHaveLength(60);
    expect(new Set(got.map((g) => g.headers['webhook-id']))).toEqual(ids);
    expect(maxInFlight).toBeLessThanOrEqual(4);
    expect(owners).toEqual(new Set([a.hl.dispatcher!.owner, b.hl.dispatcher!.owner]));
  });
});
