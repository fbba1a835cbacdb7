// Backlog isolation: a million deliveries due to an endpoint that never
// answers, and a healthy endpoint in another application. Measures the
// server's memory and the healthy endpoint's delivery latency meanwhile.
//
//   npm run build && node bench/backlog.mjs [--backlog 1000000] [--messages 2000]
//
// The backlog is written straight into the SQLite file before the server
// starts (through the API it would take minutes); everything else goes
// through the API. Loopback only; bounded in time; cleans up after itself.
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { startServer } from './lib/server.mjs';
import { startRssSampler } from './lib/sys.mjs';

const repoDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const BACKLOG = arg('backlog', 1_000_000);
const MESSAGES = arg('messages', 2000);
const RATE = arg('rate', 500);
const CONCURRENCY = arg('endpoint-concurrency', 64);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

const overall = setTimeout(() => {
  console.error('backlog bench: overall time limit reached');
  process.exit(1);
}, 15 * 60_000);
overall.unref();

const dir = mkdtempSync(join(tmpdir(), 'hooklane-backlog-'));
const token = 'bench-backlog-token';
let server;
const hanging = new Set();
let deadRequests = 0;
let maxOpen = 0;
const dead = createServer((req, res) => {
  // Never answers; counts what is open at once (a timed-out attempt closes its socket).
  deadRequests++;
  hanging.add(res);
  maxOpen = Math.max(maxOpen, hanging.size);
  res.on('close', () => hanging.delete(res));
});
const sent = new Map();
const early = new Map(); // deliveries that arrived before their 202 was read
const latencies = [];
const healthy = createServer((req, res) => {
  const id = req.headers['webhook-id'];
  const t0 = sent.get(id);
  if (t0 !== undefined) {
    latencies.push(performance.now() - t0);
    sent.delete(id);
  } else early.set(id, performance.now());
  req.resume();
  req.on('end', () => res.end('ok'));
});

try {
  await Promise.all([new Promise((r) => dead.listen(0, '127.0.0.1', r)), new Promise((r) => healthy.listen(0, '127.0.0.1', r))]);
  const env = { HOOKLANE_RATE_LIMIT_PER_SECOND: '0', HOOKLANE_ENDPOINT_CONCURRENCY: String(CONCURRENCY), HOOKLANE_REQUEST_TIMEOUT_MS: '15000' };

  // 1. Schema, applications and endpoints through the API; then stop.
  server = await startServer({ repoDir, dir, token, extraEnv: env });
  await server.api.expect(201, 'POST', '/app', { name: 'dead', uid: 'dead' });
  const deadEp = await server.api.expect(201, 'POST', '/app/dead/endpoint', { url: `http://127.0.0.1:${dead.address().port}/` });
  await server.api.expect(201, 'POST', '/app', { name: 'healthy', uid: 'healthy' });
  await server.api.expect(201, 'POST', '/app/healthy/endpoint', { url: `http://127.0.0.1:${healthy.address().port}/` });
  await server.stop();

  // 2. The backlog, written straight into the file.
  const Database = createRequire(import.meta.url)('better-sqlite3');
  const db = new Database(join(dir, 'hooklane.db'));
  const appId = db.prepare("SELECT id FROM applications WHERE uid = 'dead'").get().id;
  const t0 = Date.now();
  const insMsg = db.prepare('INSERT INTO messages (id, app_id, event_id, event_type, channels, payload, created_at) VALUES (?, ?, NULL, ?, NULL, ?, ?)');
  const insDel = db.prepare('INSERT INTO deliveries (msg_id, app_id, endpoint_id, status, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < BACKLOG; i++) {
      const id = `msg_backlog${String(i).padStart(14, '0')}`;
      insMsg.run(id, appId, 'backlog.item', '{"n":1}', t0);
      insDel.run(id, appId, deadEp.id, t0, t0, t0);
    }
    db.prepare('INSERT INTO endpoint_queue (endpoint_id, next_due_at) VALUES (?, ?) ON CONFLICT (endpoint_id) DO UPDATE SET next_due_at = excluded.next_due_at').run(deadEp.id, t0);
  })();
  db.close();
  console.log(`backlog: ${BACKLOG.toLocaleString('en-US')} deliveries due to a never-answering endpoint, written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // 3. Restart on it; send to the healthy endpoint at a steady rate.
  const restart = Date.now();
  server = await startServer({ repoDir, dir, token, extraEnv: env, startTimeoutMs: 120_000 });
  console.log(`server up on the backlog in ${((Date.now() - restart) / 1000).toFixed(1)} s`);
  const rss = startRssSampler(server.pid);
  await sleep(2000); // let the dead endpoint's slots fill
  const started = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    const due = started + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const at = performance.now();
    const r = await server.api.call('POST', '/app/healthy/msg', { eventType: 'ok', payload: { i } });
    if (r.status !== 202) throw new Error(`message ${i}: ${r.status} ${JSON.stringify(r.body)}`);
    const arrived = early.get(r.body.id);
    if (arrived !== undefined) latencies.push(arrived - at);
    else sent.set(r.body.id, at);
  }
  const deadline = Date.now() + 60_000;
  while (latencies.length < MESSAGES && Date.now() < deadline) await sleep(50);
  rss.stop();
  const peak = rss.peakBytes;
  const stats = await server.api.expect(200, 'GET', '/app/dead/endpoint/' + deadEp.id + '/stats');
  console.log(
    [
      `healthy endpoint: ${latencies.length} of ${MESSAGES} delivered while the dead one held at most ${maxOpen} requests open at once (cap ${CONCURRENCY}; ${deadRequests} in all, timeouts included)`,
      `healthy latency create -> receipt: p50 ${pct(latencies, 50).toFixed(2)} ms, p99 ${pct(latencies, 99).toFixed(2)} ms, max ${Math.max(...latencies).toFixed(2)} ms at ${RATE}/s`,
      `server peak RSS (start included): ${(peak / 1024 / 1024).toFixed(1)} MB`,
      `dead endpoint deliveries: pending ${stats.pending}, sending ${stats.sending}, failed ${stats.fail}`,
    ].join('\n'),
  );
  if (latencies.length < MESSAGES) process.exitCode = 1;
} finally {
  for (const res of hanging) res.destroy();
  await server?.stop(5000).catch(() => {});
  dead.close();
  healthy.close();
  rmSync(dir, { recursive: true, force: true });
  clearTimeout(overall);
}
