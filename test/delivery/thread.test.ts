import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { eventually, freePort, spawnServerWith, tempDir, type ChildServer } from '../helpers/server.js';

/**
 * The compiled build sends on a worker thread (src/delivery/http-thread.ts);
 * the other delivery tests run from the TypeScript sources, which send on the
 * event loop. This one builds, runs dist/cli.js, and checks the threaded
 * path end to end: signed deliveries, failures, timeouts, a clean stop.
 */
let server: ChildServer;
let rx: Receiver;
let dir: string;

beforeAll(async () => {
  execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'ignore' });
  dir = tempDir();
  rx = await startReceiver((req) => {
    if (req.path === '/fail') return { status: 500, body: 'nope' };
    if (req.path === '/slow') return { status: 200, delayMs: 3000 };
    return { status: 200, body: 'ok' };
  });
  server = await spawnServerWith(dir, await freePort(), { HOOKLANE_REQUEST_TIMEOUT_MS: '500', HOOKLANE_RETRY_SCHEDULE: '30', HOOKLANE_LOG_LEVEL: 'info' }, [], { built: true });
}, 120_000);

afterAll(async () => {
  await server?.kill('SIGKILL');
  await rx?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the built server delivers over its delivery thread: signed, recorded, failures and timeouts as attempts', async () => {
  await eventually(() => server.output().includes('delivery starting'), 10_000, 'the dispatcher to start');
  expect(server.output()).toMatch(/"httpThread":true[^\n]*delivery starting/);
  const api = server.api;
  expect((await api('POST', '/app', { name: 'T', uid: 'thread' })).status).toBe(201);
  for (const [uid, path] of [['ok', '/ok'], ['fail', '/fail'], ['slow', '/slow']]) {
    expect((await api('POST', '/app/thread/endpoint', { url: `${rx.url}${path}`, uid, eventTypes: [uid] })).status).toBe(201);
  }
  const secret = (await api('GET', '/app/thread/endpoint/ok/secret')).body.key as string;
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) {
    const r = await api('POST', '/app/thread/msg', { eventType: 'ok', payload: { i } });
    expect(r.status).toBe(202);
    ids.push(r.body.id);
  }
  await api('POST', '/app/thread/msg', { eventType: 'fail', payload: { f: 1 } });
  await api('POST', '/app/thread/msg', { eventType: 'slow', payload: { s: 1 } });

  await eventually(() => rx.requests.filter((r) => r.path === '/ok').length >= 40, 20_000, '40 deliveries');
  const wh = new Webhook(secret);
  for (const r of rx.requests.filter((x) => x.path === '/ok')) {
    expect(() => wh.verify(r.body, r.headers as Record<string, string>)).not.toThrow();
  }
  expect(new Set(rx.requests.filter((r) => r.path === '/ok').map((r) => r.headers['webhook-id']))).toEqual(new Set(ids));

  const stats = await eventually(async () => {
    const s = (await api('GET', '/app/thread/endpoint/ok/stats')).body;
    return s.success === 40 ? s : null;
  }, 20_000, 'stats');
  expect(stats.fail + stats.pending + stats.sending).toBe(0);

  const failed = await eventually(async () => (await api('GET', '/app/thread/attempt/endpoint/fail')).body.data[0], 20_000, 'the 500 attempt');
  expect(failed).toMatchObject({ responseStatusCode: 500, status: 2, response: 'nope' });
  const slow = await eventually(async () => (await api('GET', '/app/thread/attempt/endpoint/slow')).body.data[0], 20_000, 'the timed-out attempt');
  expect(slow.responseStatusCode).toBe(0);
  expect(slow.response).toMatch(/timed out after 500 ms/);
});

test('SIGTERM stops the built server and its thread cleanly', async () => {
  await server.kill('SIGTERM');
  expect(server.proc.exitCode).toBe(0);
});
