import { rmSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { makeEndpoint, send } from '../delivery/support.js';
import { startReceiver } from '../helpers/receiver.js';
import { eventually, freePort, runCli, tempDir } from '../helpers/server.js';
import { Fleet, PG_URL, SCALE_ENV, noticeIfSkipped, scaleDb, scaleFixture, sleep, tally } from './support.js';

/**
 * Process roles: `api` serves the API and never delivers; `worker` delivers
 * and serves only health; schema migrations run by `hooklane migrate` with
 * processes started with --no-migrate; SQLite refuses split roles.
 */

noticeIfSkipped('scale/roles');

const f = scaleFixture();

test('SQLite refuses the api and worker roles, naming the setting', async () => {
  const dir = tempDir('hooklane-roles-');
  for (const role of ['worker', 'api']) {
    const r = await runCli(['serve', '--role', role], { HOOKLANE_DATABASE_URL: `sqlite:${dir}/hooklane.db`, HOOKLANE_PORT: String(await freePort()) });
    expect(r.code, r.output).toBe(2);
    expect(r.output).toContain(`HOOKLANE_ROLE=${role}`);
    expect(r.output).toContain('SQLite');
  }
  const viaEnv = await runCli(['serve'], { HOOKLANE_DATABASE_URL: `sqlite:${dir}/hooklane.db`, HOOKLANE_ROLE: 'worker' });
  expect(viaEnv.code, viaEnv.output).toBe(2);
  expect(viaEnv.output).toContain('HOOKLANE_ROLE=worker');
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!PG_URL)('scale-out: roles', () => {
  test('an api process never delivers; a worker started later delivers everything, serves health and 404s the API', async () => {
    f.db = await scaleDb();
    f.rx = await startReceiver(() => ({ status: 200 }));
    const env = { HOOKLANE_DATABASE_URL: f.db.url() };
    f.fleet = new Fleet(env);

    // Migrations by hand first; the processes only check the schema version.
    const migrated = await runCli(['migrate'], { ...SCALE_ENV, ...env });
    expect(migrated.code, migrated.output).toBe(0);
    const api = await f.fleet.start('api', {}, ['--no-migrate']);
    const t = await makeEndpoint(api.api, 'scale-roles', { url: `${f.rx.url}/hook` });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await send(api.api, t.app, { eventType: 'roles.test', payload: { i } }));

    // With no worker running nothing arrives: every delivery is still pending, untouched.
    await sleep(1500);
    expect(f.rx.requests).toHaveLength(0);
    const pending = await f.db.sql<{ status: number; attempts: number; lease_owner: string | null }>('SELECT status, attempts, lease_owner FROM deliveries');
    expect(pending).toHaveLength(10);
    expect(pending.every((d) => d.status === 1 && d.attempts === 0 && d.lease_owner === null)).toBe(true);

    const worker = await f.fleet.start('worker', { HOOKLANE_MIGRATE_ON_START: 'false' });
    await eventually(() => ids.every((id) => tally(f.rx!.requests).distinct.has(id)), 30_000, 'the worker delivering the backlog');
    // The worker answers health, and nothing else.
    expect((await fetch(`${worker.url}/api/v1/health`)).status).toBe(204);
    const apiOnWorker = await worker.api('GET', '/app');
    expect(apiOnWorker.status).toBe(404);
    expect(apiOnWorker.body).toMatchObject({ code: 'not_found', detail: expect.stringContaining('HOOKLANE_ROLE=worker') });
    expect((await worker.api('POST', `/app/${t.app}/msg`, { eventType: 'x', payload: {} })).status).toBe(404);
    // The API process keeps serving, and still sends nothing itself: what it accepts now is delivered by the worker.
    ids.push(await send(api.api, t.app, { eventType: 'roles.test', payload: { i: 10 } }));
    await eventually(() => tally(f.rx!.requests).distinct.has(ids[10]!), 20_000, 'the last message');
    await eventually(async () => (await f.db!.sql('SELECT 1 FROM deliveries WHERE status <> 0')).length === 0, 20_000, 'all recorded as success');
    expect(api.output()).toContain('"delivering":false');
    expect(worker.output()).toContain('"delivering":true');
  }, 90_000);

  test('--no-migrate refuses a schema that is not current, and names the command to run', async () => {
    f.db = await scaleDb();
    f.fleet = new Fleet({ HOOKLANE_DATABASE_URL: f.db.url() });
    await expect(f.fleet.start('api', {}, ['--no-migrate'])).rejects.toThrow(/hooklane migrate/);
    // Nothing was created in the schema.
    expect(await f.db.sql("SELECT 1 FROM information_schema.tables WHERE table_schema = $1", [f.db.schema])).toEqual([]);
  }, 60_000);
});
