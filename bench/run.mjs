#!/usr/bin/env node
// Hooklane benchmark: `npm run bench` (builds, then runs this file).
//
// One run, four figures:
//   1. baseline   signed POSTs/s, load generator -> receiver, no server
//   2. e2e        messages/s accepted (202), delivered (2xx) and recorded
//   3. latency    create -> receipt, p50/p99, open loop at --rate msgs/s
//   4. memory     peak RSS of the server process(es)
// The load generator and the receiver share this process (one clock). The
// server is a child process on a fresh SQLite database in a temp dir, or,
// with --engine postgres, one `--role api` process and N `--role worker`
// processes on a fresh schema of a PostgreSQL database (once per --workers N).
import { createHmac, randomBytes } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants, setPriority, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { closedLoop, makePool, openLoop } from './lib/load.mjs';
import { startReceiver } from './lib/receiver.mjs';
import { connectAdmin, createSchema, DEFAULT_PG_URL, dropSchema, isLocal, leftoverSchemas, newSchemaName, pgUrl, postgresMeter, redactUrl, serverInfo } from './lib/postgres.mjs';
import { runCli, startServer } from './lib/server.mjs';
import { cpuMeter, filesystemOf, fsyncProbe, machineInfo, mainThreadMeter, pct, round, startRssSampler } from './lib/sys.mjs';

const CPUS = machineInfo().cpus;
const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');
const RESULTS = join(HERE, 'results', 'latest.json');

const USAGE = `usage: npm run bench -- [options]      (or: node bench/run.mjs [options] after npm run build)

  --duration <s>               seconds of load per measured phase (default 10)
  --rate <n>                   offered messages/s in the latency phase (default 2000)
  --concurrency <n>            requests in flight (= keep-alive connections) of the load generator (default 64)
  --warmup <s>                 unmeasured warm-up before the baseline and the e2e phase (default 2)
  --endpoint-concurrency <n>   passed to the server as HOOKLANE_ENDPOINT_CONCURRENCY (server default 64)
  --delivery-concurrency <n>   passed to the server as HOOKLANE_DELIVERY_CONCURRENCY (server default 512)
  --server-env KEY=VALUE       extra HOOKLANE_* setting for the server (repeatable); the harness sets
                               HOOKLANE_RATE_LIMIT_PER_SECOND=0 (API rate limit off) unless given here
  --wait-idle <s>              before each phase, wait up to <s> s for other processes to go quiet (default 0)
  --priority=<n>               nice value for the harness and the server, -20..19 (negative needs root,
                               write it with =, e.g. --priority=-10); for shared machines
  --profile <dir>              run the server with --cpu-prof, writing the .cpuprofile into <dir>
  --engine <sqlite|postgres>   database of the server (default sqlite: one process on a fresh SQLite file)
  --workers <n[,n...]>         with --engine postgres: worker processes next to the one API process (default 1);
                               a list (e.g. 1,2) runs the PostgreSQL phases once per count, each on a fresh
                               schema, after one shared baseline. Database: HOOKLANE_BENCH_DATABASE_URL,
                               else ${DEFAULT_PG_URL}
  -h, --help                   this text

Prints a table and writes ${RESULTS}. Exits 1 when a check fails
(messages lost, bad signatures, non-202 answers, attempts not recorded,
server crash, timeout), 2 on bad options.`;

// --- options ------------------------------------------------------------------

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        duration: { type: 'string' },
        rate: { type: 'string' },
        concurrency: { type: 'string' },
        warmup: { type: 'string' },
        'endpoint-concurrency': { type: 'string' },
        'delivery-concurrency': { type: 'string' },
        profile: { type: 'string' },
        'wait-idle': { type: 'string' },
        'server-env': { type: 'string', multiple: true },
        priority: { type: 'string' },
        engine: { type: 'string' },
        workers: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    usageError(e.message);
  }
  if (parsed.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const num = (name, def, min, max, integer = false) => {
    const raw = parsed[name];
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) usageError(`--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${raw}`);
    return n;
  };
  const engine = parsed.engine ?? 'sqlite';
  if (!['sqlite', 'postgres'].includes(engine)) usageError(`--engine must be sqlite or postgres, got ${engine}`);
  if (parsed.workers !== undefined && engine !== 'postgres') usageError('--workers needs --engine postgres (SQLite runs as one process)');
  const workers = (parsed.workers ?? '1').split(',').map((w) => {
    const n = Number(w.trim());
    if (!Number.isInteger(n) || n < 1 || n > 32) usageError(`--workers takes integers from 1 to 32, separated by commas, got ${parsed.workers}`);
    return n;
  });
  const harnessOwned = ['HOOKLANE_HOST', 'HOOKLANE_PORT', 'HOOKLANE_DATABASE_URL', 'HOOKLANE_API_TOKEN'];
  if (engine === 'postgres') harnessOwned.push('HOOKLANE_ROLE', 'HOOKLANE_MAIN_SECRET', 'HOOKLANE_MIGRATE_ON_START', 'HOOKLANE_DATABASE_LISTEN_URL');
  return {
    engine,
    workers: engine === 'postgres' ? workers : null,
    duration: num('duration', 10, 1, 600),
    rate: num('rate', 2000, 1, 100_000),
    concurrency: num('concurrency', 64, 1, 4096, true),
    warmup: num('warmup', 2, 0, 60),
    endpointConcurrency: num('endpoint-concurrency', undefined, 1, 10_000, true),
    deliveryConcurrency: num('delivery-concurrency', undefined, 1, 100_000, true),
    waitIdle: num('wait-idle', 0, 0, 3600),
    serverEnv: Object.fromEntries(
      (parsed['server-env'] ?? []).map((kv) => {
        const m = /^(HOOKLANE_[A-Z0-9_]+)=(.*)$/s.exec(kv);
        if (!m) usageError(`--server-env takes HOOKLANE_NAME=value, got ${kv}`);
        if (harnessOwned.includes(m[1])) usageError(`--server-env cannot set ${m[1]}: the harness owns it`);
        return [m[1], m[2]];
      }),
    ),
    priority: num('priority', undefined, -20, 19, true),
    profile: parsed.profile === undefined ? undefined : resolve(parsed.profile),
  };
}

function usageError(msg) {
  process.stderr.write(`bench: ${msg}\n\n${USAGE}\n`);
  process.exit(2);
}

// --- small helpers --------------------------------------------------------------

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (n, digits = 0) => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const pc = (x) => (x === null || x === undefined ? 'n/a' : `${Math.round(x * 100)}%`);
const mb = (bytes) => round(bytes / 2 ** 20, 1);

class BenchError extends Error {}

/** Throws when the server process is gone; set once it runs, checked by every wait. */
let guard = () => {};

/**
 * Polls `done()` every 20 ms. Fails after `timeoutMs`, or earlier when
 * `progress()` has not changed for `stallMs`.
 */
async function waitUntil(what, done, { timeoutMs, stallMs = 15_000, progress = () => 0 }) {
  const deadline = Date.now() + timeoutMs;
  let last = progress();
  let lastChange = Date.now();
  while (!done()) {
    guard();
    const now = Date.now();
    const p = progress();
    if (p !== last) {
      last = p;
      lastChange = now;
    }
    if (now > deadline) throw new BenchError(`timed out after ${timeoutMs} ms waiting for ${what}`);
    if (now - lastChange > stallMs) throw new BenchError(`no progress for ${stallMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Payload of message `n`: ~250 bytes of compact JSON, so the delivered body equals what the baseline sends. */
function payload(n) {
  return (
    `{"type":"invoice.paid","seq":${n},"invoice":{"id":"in_${n.toString(36).padStart(8, '0')}","amount":129900,"currency":"EUR",` +
    `"customer":"cus_NffrFeUfNV2Hib","lines":[{"sku":"plan-pro","qty":1},{"sku":"seat","qty":12}]},"note":"benchmark payload, hooklane bench"}`
  );
}

function summarise(values) {
  if (values.length === 0) return { n: 0, p50: null, p90: null, p99: null, max: null, mean: null };
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, p50: round(pct(s, 50), 2), p90: round(pct(s, 90), 2), p99: round(pct(s, 99), 2), max: round(s[s.length - 1], 2), mean: round(sum / s.length, 2) };
}

/** The PRAGMAs the built server sets on its SQLite connection, read from dist/store/sqlite/. */
function sqlitePragmas() {
  let src = '';
  try {
    const dir = join(REPO, 'dist', 'store', 'sqlite');
    for (const f of readdirSync(dir)) if (f.endsWith('.js')) src += readFileSync(join(dir, f), 'utf8');
  } catch {
    /* not built */
  }
  const get = (name) => new RegExp(`${name}\\s*=\\s*(\\w+)`, 'i').exec(src)?.[1] ?? 'unknown';
  return { journalMode: get('journal_mode'), synchronous: get('synchronous') };
}

/** Commit and whether the working tree differs from it, for the record. */
function gitState() {
  try {
    const run = (...args) => execFileSync('git', args, { cwd: REPO, encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trimEnd();
    const dirty = run('status', '--porcelain', '--', 'src', 'package.json').split('\n').filter(Boolean);
    return { commit: run('rev-parse', '--short', 'HEAD'), srcDirty: dirty.length > 0, changed: dirty.slice(0, 20) };
  } catch {
    return null;
  }
}

/** journal_mode as persisted in the database file (WAL is sticky; synchronous is per connection and is not). */
async function journalModeOnDisk(dbPath) {
  try {
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(dbPath, { readonly: true, fileMustExist: true });
    try {
      return String(db.pragma('journal_mode', { simple: true }));
    } finally {
      db.close();
    }
  } catch (e) {
    return `unknown (${e.message})`;
  }
}

// --- phases ---------------------------------------------------------------------

/** 1. Signed POSTs straight from the load generator to the receiver. */
async function baselinePhase(o, rx, key) {
  const pool = makePool(rx.origin, o.concurrency);
  let seq = 0;
  const run = async (sink, durationMs) => {
    let ok = 0;
    const bad = {};
    const r = await closedLoop({
      pool,
      concurrency: o.concurrency,
      durationMs,
      make: () => {
        const id = `msg_bl_${sink.name}_${seq}`;
        const body = payload(seq++);
        const ts = String(Math.floor(Date.now() / 1000));
        const signature = 'v1,' + createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
        return {
          path: sink.path,
          headers: { 'content-type': 'application/json', 'user-agent': 'Hooklane-bench', 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': signature },
          body,
        };
      },
      onDone: (status) => {
        if (status >= 200 && status < 300) ok++;
        else bad[status] = (bad[status] ?? 0) + 1;
      },
    });
    return { r, ok, bad };
  };
  try {
    if (o.warmup > 0) await run(rx.sink('baseline-warmup'), o.warmup * 1000);
    const sink = rx.sink('baseline');
    const quiet = await awaitQuiet('baseline', o, null);
    const meter = cpuMeter(null);
    const selfThread = mainThreadMeter(process.pid, 20);
    const { r, ok, bad } = await run(sink, o.duration * 1000);
    const cpu = meter.stop();
    cpu.harnessMainThread = selfThread.stop();
    const seconds = (r.end - r.start) / 1000;
    const failures = [];
    if (r.errors > 0) failures.push(`baseline: ${r.errors} request errors (${r.errorSamples.join('; ')})`);
    if (Object.keys(bad).length > 0) failures.push(`baseline: non-2xx answers ${JSON.stringify(bad)}`);
    if (sink.badSignatures > 0) failures.push(`baseline: receiver rejected ${sink.badSignatures} signatures`);
    if (sink.unique !== ok) failures.push(`baseline: ${ok} answered 2xx but the receiver recorded ${sink.unique}`);
    return {
      failures,
      result: {
        postsPerSecond: round(ok / seconds, 0),
        requests: ok,
        seconds: round(seconds, 3),
        concurrency: o.concurrency,
        errors: r.errors,
        waitedForQuietSeconds: quiet.waitedSeconds,
        cpu,
      },
    };
  } finally {
    await pool.close().catch(() => {});
  }
}

/** Creates an app with one endpoint pointing at `sink`, with our signing secret. */
async function setupApp(api, name, sink, secret) {
  const app = await api.expect(201, 'POST', '/app', { name, uid: name });
  const ep = await api.expect(201, 'POST', `/app/${app.id}/endpoint`, { url: sink.url, description: `bench ${name}`, secret });
  const s = await api.expect(200, 'GET', `/app/${app.id}/endpoint/${ep.id}/secret`);
  if (s.key !== secret) throw new BenchError(`endpoint secret is ${s.key}, not the one set`);
  return { appId: app.id, endpointId: ep.id };
}

/** Sends `POST /app/{app}/msg` requests; remembers each accepted id with its send time. */
function messageSender(token, appId) {
  const st = { accepted: new Map(), acceptMs: [], rejected: {}, rejectedSamples: [], seq: 0 };
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const path = `/api/v1/app/${appId}/msg`;
  st.make = () => ({ path, headers, body: `{"eventType":"invoice.paid","payload":${payload(st.seq++)}}` });
  st.onDone = (status, text, t0) => {
    const now = performance.now();
    if (status === 202) {
      let id;
      try {
        id = JSON.parse(text).id;
      } catch {
        /* counted below */
      }
      if (typeof id === 'string') {
        st.accepted.set(id, t0);
        st.acceptMs.push(now - t0);
        return id;
      }
    }
    st.rejected[status] = (st.rejected[status] ?? 0) + 1;
    if (st.rejectedSamples.length < 3) st.rejectedSamples.push(`${status} ${text.slice(0, 200)}`);
    return null;
  };
  return st;
}

/** Waits until the receiver has every accepted id (a stall or the timeout means messages were lost). */
async function confirmDelivered(phase, sink, sender, timeoutMs) {
  const failures = [];
  const missing = () => {
    let n = 0;
    for (const id of sender.accepted.keys()) if (!sink.firstAt.has(id)) n++;
    return n;
  };
  try {
    await waitUntil(`${phase}: the receiver to get ${sender.accepted.size} deliveries`, () => sink.unique >= sender.accepted.size && missing() === 0, {
      timeoutMs,
      progress: () => sink.unique,
    });
  } catch (e) {
    failures.push(`${e.message}; got ${sink.unique}, ${missing()} accepted messages never arrived (lost)`);
  }
  return { failures };
}

/** Recorded: every delivery row of the endpoint is a success (its attempt written), none pending, sending or failed. */
async function waitForStats(phase, api, ids, expected, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let stats = null;
  for (;;) {
    guard();
    stats = await api.expect(200, 'GET', `/app/${ids.appId}/endpoint/${ids.endpointId}/stats`);
    if (stats.success === expected && stats.pending === 0 && stats.sending === 0 && stats.fail === 0) return { stats, failure: null };
    if (Date.now() > deadline) return { stats, failure: `${phase}: after ${timeoutMs} ms the endpoint stats are ${JSON.stringify(stats)}, expected success=${expected}` };
    await sleep(200);
  }
}

/** Spot-checks that attempts are recorded with a 2xx for a few accepted messages. */
async function checkAttempts(phase, api, ids, sender, n = 5) {
  const all = [...sender.accepted.keys()];
  const picks = new Set([all[0], all[all.length - 1]]);
  while (picks.size < Math.min(n, all.length)) picks.add(all[Math.floor(Math.random() * all.length)]);
  const bad = [];
  for (const id of picks) {
    if (!id) continue;
    const page = await api.expect(200, 'GET', `/app/${ids.appId}/attempt/msg/${id}`);
    const ok = page.data?.some((a) => a.status === 0 && a.responseStatusCode >= 200 && a.responseStatusCode < 300 && a.endpointId === ids.endpointId);
    if (!ok) {
      const a = page.data?.[0];
      bad.push(a ? `${id} (latest attempt: status ${a.statusText}, HTTP ${a.responseStatusCode})` : `${id} (no attempt)`);
    }
  }
  return { checked: picks.size, failure: bad.length ? `${phase}: no successful attempt recorded for ${bad.length} of ${picks.size} spot-checked messages, e.g. ${bad.slice(0, 2).join(', ')}` : null };
}

/**
 * After a phase's load: waits for every accepted message at the receiver,
 * stops the phase's meters, then checks the endpoint stats, a few attempts
 * and the signatures. Adds what went wrong to `failures`.
 */
async function checkPhase(phase, { sink, sender, api, ids, meter, drainTimeoutMs }, failures) {
  const c = await confirmDelivered(phase, sink, sender, drainTimeoutMs);
  const cpu = await meter.stop();
  failures.push(...c.failures);
  const st = await waitForStats(phase, api, ids, sender.accepted.size);
  if (st.failure) failures.push(st.failure);
  const at = await checkAttempts(phase, api, ids, sender);
  if (at.failure) failures.push(at.failure);
  if (sink.badSignatures > 0) failures.push(`${phase}: ${sink.badSignatures} deliveries with a bad signature`);
  return { cpu, st, at };
}

function senderFailures(phase, r, sender) {
  const f = [];
  if (r.errors > 0) f.push(`${phase}: ${r.errors} request errors (${r.errorSamples.join('; ')})`);
  if (Object.keys(sender.rejected).length > 0) f.push(`${phase}: non-202 answers ${JSON.stringify(sender.rejected)} e.g. ${sender.rejectedSamples.join(' | ')}`);
  return f;
}

/**
 * CPU meters for one measured phase: the server process(es), the harness, the
 * machine, the main thread of each server process and, with PostgreSQL, the
 * postgres processes. `target.procs` is the SQLite server's pid, or a list
 * of {name, pid} (the API and worker processes).
 */
function phaseMeters(target) {
  const single = !Array.isArray(target.procs);
  const meter = cpuMeter(target.procs, { notOthers: target.pgMeter ? ['postgres'] : [] });
  const everyMs = target.mainThreads.length > 1 ? 10 : 5;
  const threads = target.mainThreads.map((t) => mainThreadMeter(t.pid, everyMs));
  const self = mainThreadMeter(process.pid, 20);
  const pg = target.pgMeter?.();
  return {
    async stop() {
      const cpu = meter.stop();
      const mt = threads.map((t) => t.stop());
      if (single) cpu.serverMainThread = mt[0];
      else cpu.mainThreads = Object.fromEntries(target.mainThreads.map((t, i) => [t.name, mt[i]]));
      cpu.harnessMainThread = self.stop();
      if (pg) cpu.postgres = await pg.stop();
      return cpu;
    },
  };
}

/** 2. Closed-loop load through the server; counts what was accepted, delivered and recorded. */
async function e2ePhase(o, rx, target, token, secret, drainTimeoutMs) {
  const { api } = target;
  const pool = makePool(target.origin, o.concurrency);
  const failures = [];
  try {
    if (o.warmup > 0) {
      const wSink = rx.sink('e2e-warmup');
      const wIds = await setupApp(api, 'bench-warmup', wSink, secret);
      const w = messageSender(token, wIds.appId);
      const wr = await closedLoop({ pool, concurrency: o.concurrency, durationMs: o.warmup * 1000, make: w.make, onDone: w.onDone });
      failures.push(...senderFailures('e2e warm-up', wr, w));
      const c = await confirmDelivered('e2e warm-up', wSink, w, drainTimeoutMs);
      failures.push(...c.failures);
      await sleep(500);
    }
    const sink = rx.sink('e2e');
    const ids = await setupApp(api, 'bench-e2e', sink, secret);
    const sender = messageSender(token, ids.appId);
    const quiet = await awaitQuiet('e2e', o, target.procs);
    const meter = phaseMeters(target);
    log(`e2e: closed loop, ${o.concurrency} in flight, ${o.duration} s`);
    const r = await closedLoop({ pool, concurrency: o.concurrency, durationMs: o.duration * 1000, make: sender.make, onDone: sender.onDone });
    failures.push(...senderFailures('e2e', r, sender));
    log(`e2e: ${fmt(sender.accepted.size)} accepted; waiting for deliveries (${fmt(sender.accepted.size - sink.unique)} outstanding)`);
    const { cpu, st, at } = await checkPhase('e2e', { sink, sender, api, ids, meter, drainTimeoutMs }, failures);

    let delivered = 0;
    for (const id of sender.accepted.keys()) if (sink.firstAt.has(id)) delivered++;
    const spanS = delivered > 0 ? (sink.lastReceipt - r.firstSend) / 1000 : null;
    const loadS = (r.end - r.start) / 1000;
    return {
      failures,
      result: {
        messagesPerSecond: delivered > 0 ? round(delivered / spanS, 0) : 0,
        delivered,
        accepted: sender.accepted.size,
        recordedSuccess: st.stats?.success ?? null,
        endpointStats: st.stats,
        attemptsSpotChecked: at.checked,
        duplicates: sink.duplicates,
        unknownIds: sink.unique - delivered,
        spanSeconds: round(spanS, 3),
        loadSeconds: round(loadS, 3),
        acceptedPerSecond: round(sender.accepted.size / loadS, 0),
        drainAfterLoadSeconds: delivered > 0 ? round((sink.lastReceipt - r.end) / 1000, 3) : null,
        acceptLatencyMs: summarise(sender.acceptMs),
        concurrency: o.concurrency,
        waitedForQuietSeconds: quiet.waitedSeconds,
        cpu,
      },
    };
  } finally {
    await pool.close().catch(() => {});
  }
}

/** 3. Open loop at a fixed rate; latency = receipt - just-before-POST, matched by webhook-id. */
async function latencyPhase(o, rx, target, token, secret, drainTimeoutMs) {
  const { api } = target;
  const pool = makePool(target.origin, o.concurrency);
  const failures = [];
  try {
    const sink = rx.sink('latency');
    const ids = await setupApp(api, 'bench-latency', sink, secret);
    const sender = messageSender(token, ids.appId);
    const scheduledOf = new Map();
    const quiet = await awaitQuiet('latency', o, target.procs);
    const meter = phaseMeters(target);
    log(`latency: open loop, ${fmt(o.rate)} msgs/s for ${o.duration} s`);
    const r = await openLoop({
      pool,
      rate: o.rate,
      durationMs: o.duration * 1000,
      maxInFlight: Math.max(1000, Math.ceil(o.rate * 5)),
      make: sender.make,
      onDone: (status, text, t0, _ctx, scheduled) => {
        const id = sender.onDone(status, text, t0);
        if (id) scheduledOf.set(id, scheduled);
      },
    });
    failures.push(...senderFailures('latency', r, sender));
    const { cpu, st, at } = await checkPhase('latency', { sink, sender, api, ids, meter, drainTimeoutMs }, failures);

    const fromSend = [];
    const fromSchedule = [];
    for (const [id, t0] of sender.accepted) {
      const t = sink.firstAt.get(id);
      if (t === undefined) continue;
      fromSend.push(t - t0);
      const s = scheduledOf.get(id);
      if (s !== undefined) fromSchedule.push(t - s);
    }
    const fireS = (r.lastFire - r.start) / 1000;
    const warnings = [];
    const achieved = r.sent / Math.max(fireS, 1e-9);
    if (r.skipped > 0) warnings.push(`latency: ${r.skipped} of ${r.planned} scheduled messages were skipped (over ${Math.ceil(o.rate * 5)} in flight): the server did not keep up with ${o.rate}/s`);
    else if (achieved < o.rate * 0.95) warnings.push(`latency: only ${fmt(achieved)} of ${fmt(o.rate)} msgs/s were offered (the load generator fell behind)`);
    return {
      failures,
      warnings,
      result: {
        offeredRate: o.rate,
        achievedRate: round(achieved, 0),
        planned: r.planned,
        sent: r.sent,
        skipped: r.skipped,
        accepted: sender.accepted.size,
        delivered: fromSend.length,
        maxSendLagMs: round(r.maxLagMs, 2),
        maxInFlight: r.maxInFlight,
        latencyMs: summarise(fromSend),
        latencyFromScheduleMs: summarise(fromSchedule),
        acceptLatencyMs: summarise(sender.acceptMs),
        duplicates: sink.duplicates,
        recordedSuccess: st.stats?.success ?? null,
        attemptsSpotChecked: at.checked,
        waitedForQuietSeconds: quiet.waitedSeconds,
        cpu,
      },
    };
  } finally {
    await pool.close().catch(() => {});
  }
}

// --- report -----------------------------------------------------------------------

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => '| ' + r.map((c, i) => (i === 2 ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join(' | ') + ' |';
  const sep = '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|';
  return [line(rows[0]), sep, ...rows.slice(1).map(line)].join('\n');
}

function cpuText(c) {
  if (!c) return 'n/a';
  let server = c.serverCores === null ? '' : `server ${c.serverCores}, `;
  if (c.processes) server = `${c.processes.map((p) => `${p.name} ${p.cores ?? 'n/a'}`).join(', ')} (all Hooklane ${c.serverCores ?? 'n/a'}), `;
  return (
    `${server}harness ${c.harnessCores} (event loop ${Math.round(c.harnessEventLoopUtilisation * 100)}% busy), other processes ${c.otherCores}, ` +
    `softirq ${c.machineIrqCores}, steal ${c.machineStealCores}; machine ${c.machineBusyCores} of ${CPUS} busy, ${c.machineIowaitCores} iowait`
  );
}

const QUIET_CORES = 0.2;

/**
 * With --wait-idle: waits (at most that long) until other processes use at
 * most QUIET_CORES for a whole second; returns the last 1 s measurement.
 */
async function awaitQuiet(label, o, serverProcs) {
  const deadline = Date.now() + o.waitIdle * 1000;
  const started = Date.now();
  for (;;) {
    const m = cpuMeter(serverProcs);
    await sleep(1000);
    const c = m.stop();
    c.otherCores = round(Math.max(0, c.machineProcessCores - c.harnessCores - (c.serverCores ?? 0)), 2);
    if (c.otherCores <= QUIET_CORES || Date.now() >= deadline) {
      c.waitedSeconds = round((Date.now() - started) / 1000, 1);
      return c;
    }
    if (Math.round((Date.now() - started) / 1000) % 10 === 1) log(`${label}: waiting for other processes to go quiet (${c.otherCores} cores busy)`);
  }
}

/** The postgres processes' CPU, split by whose work it was. */
function postgresCpuText(p) {
  if (!p) return 'n/a';
  if (p.cores === null) return 'postgres: CPU not measured (the server is not on this machine)';
  const parts = [];
  const of = Object.entries(p.byGroup).filter(([k]) => k.startsWith('of '));
  if (of.length) parts.push(`backends working for ${of.map(([k, v]) => `${k.slice(3)} ${v}`).join(', ')}`);
  for (const [k, v] of Object.entries(p.byGroup)) {
    if (k.startsWith('of ')) continue;
    parts.push(`${k === 'exited' ? 'backends that exited during the phase' : k === 'background' ? 'background (walwriter, checkpointer, autovacuum, ...)' : k} ${v}`);
  }
  return `postgres ${p.cores}${parts.length ? ` = ${parts.join('; ')}` : ''}`;
}

/** What the sessions of each process did, on average: active sessions by wait event (CPU = running or runnable). */
function sessionsText(p) {
  if (!p?.sessions || Object.keys(p.sessions).length === 0) return null;
  const one = ([name, st]) => {
    const waits = Object.entries(st.waits).filter(([, v]) => v >= 0.05);
    return `${name} ${st.avgActive}${waits.length ? ` (${waits.map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}`;
  };
  return `postgres sessions active on average, by wait event: ${Object.entries(p.sessions).map(one).join('; ')}`;
}

/** CPU time per delivered message, in ms, of each part (from the e2e phase). */
function costText(e) {
  const c = e?.cpu;
  if (!c || !e.delivered) return null;
  const ms = (cores) => (cores === null || cores === undefined ? 'n/a' : fmt((cores * c.wallSeconds * 1000) / e.delivered, 2));
  const workers = c.processes?.filter((p) => p.name !== 'api').reduce((a, p) => a + (p.cores ?? 0), 0);
  const api = c.processes?.find((p) => p.name === 'api')?.cores;
  const pgOurs = c.postgres?.cores === null ? null : c.postgres?.thisRunBackendsCores;
  return `CPU per delivered message: api ${ms(api)} ms, workers ${ms(workers)} ms, postgres backends ${ms(pgOurs)} ms, harness ${ms(c.harnessCores)} ms`;
}

/** CPU of everything that is neither the harness nor the server (nor postgres), and a warning when it is large. */
function addOther(phase, cpu, warnings) {
  cpu.otherCores = round(Math.max(0, cpu.machineProcessCores - cpu.harnessCores - (cpu.serverCores ?? 0) - (cpu.postgres?.cores ?? 0)), 2);
  if (cpu.otherCores > 0.25) {
    const who = cpu.topOthers.map((p) => `${p.what} [${p.pid}] ${p.cores}`).join(', ');
    warnings.push(`${phase}: other processes used ${cpu.otherCores} cores during the phase (${who || 'short-lived processes'}); its figures are disturbed`);
  }
  if ((cpu.postgres?.otherClientsCores ?? 0) > 0.1) {
    warnings.push(`${phase}: backends of other clients of the PostgreSQL server used ${cpu.postgres.otherClientsCores} cores during the phase; its figures are disturbed`);
  }
}

/** Rows 2-4 of the table for one server set-up (SQLite, or PostgreSQL with N workers). */
function measureRows(rows, b, e, l, rate, memoryRow) {
  rows.push([
    '2',
    'end-to-end msgs/s (202 + delivered 2xx + recorded)',
    e ? `${fmt(e.messagesPerSecond)}/s` : 'n/a',
    e ? `${b?.postsPerSecond ? `${fmt((e.messagesPerSecond / b.postsPerSecond) * 100, 1)}% of baseline; ` : ''}${fmt(e.delivered)} msgs, first send -> last receipt ${fmt(e.spanSeconds, 3)} s` : '',
  ]);
  if (e) {
    rows.push(['', '  accepted (202) during the load', `${fmt(e.acceptedPerSecond)}/s`, `${e.concurrency} in flight; 202 p50 ${fmt(e.acceptLatencyMs.p50, 2)} ms, p99 ${fmt(e.acceptLatencyMs.p99, 2)} ms; drain after load ${fmt(e.drainAfterLoadSeconds, 3)} s`]);
    rows.push(['', '  recorded (endpoint stats success)', fmt(e.recordedSuccess), `of ${fmt(e.accepted)} accepted; ${e.duplicates} duplicates; attempts spot-checked on ${e.attemptsSpotChecked} msgs`]);
  }
  rows.push([
    '3',
    `latency create -> receipt, open loop ${fmt(rate)}/s`,
    l ? `p50 ${fmt(l.latencyMs.p50, 2)} ms, p99 ${fmt(l.latencyMs.p99, 2)} ms` : 'n/a',
    l ? `n=${fmt(l.delivered)}, achieved ${fmt(l.achievedRate)}/s, p90 ${fmt(l.latencyMs.p90, 2)} ms, max ${fmt(l.latencyMs.max, 2)} ms; from schedule p99 ${fmt(l.latencyFromScheduleMs.p99, 2)} ms` : '',
  ]);
  if (l) rows.push(['', '  202 answer time in that phase', `p50 ${fmt(l.acceptLatencyMs.p50, 2)} ms, p99 ${fmt(l.acceptLatencyMs.p99, 2)} ms`, `max in flight ${l.maxInFlight}, skipped ${l.skipped}`]);
  rows.push(memoryRow);
}

const threadText = (t) =>
  t ? `${pc(t.onCpu)} on CPU, ${pc(t.waitingForCpu)} waiting for a CPU, ${pc(t.diskWait)} blocked on disk (fsync), ${pc(t.sleeping)} idle/other` : 'n/a';
const shortThreadText = (t) => (t ? `${pc(t.onCpu)} on CPU, ${pc(t.waitingForCpu)} waiting for one, ${pc(t.diskWait + t.sleeping)} idle/other` : 'n/a');

const workersLabel = (n) => `1 api + ${n} worker process${n === 1 ? '' : 'es'}`;

function report(res) {
  const b = res.baseline;
  const pgMode = res.engine === 'postgres';
  const rows = [['#', 'measure', 'result', 'details']];
  rows.push(['1', 'baseline: signed POSTs/s, load generator -> receiver', b ? `${fmt(b.postsPerSecond)}/s` : 'n/a', b ? `${fmt(b.requests)} requests in ${b.seconds} s, ${b.concurrency} in flight, no server` : '']);
  if (!pgMode) {
    measureRows(rows, b, res.e2e, res.latency, res.options.rate, [
      '4',
      'server peak RSS',
      res.memory ? `${fmt(res.memory.peakRssMB, 1)} MB` : 'n/a',
      res.memory ? `VmHWM/VmRSS sampled every 100 ms (${res.memory.samples} samples)${res.memory.startRssMB ? `; at idle after start ${fmt(res.memory.startRssMB, 1)} MB` : ''}` : '',
    ]);
  } else {
    for (const run of res.postgres.runs) {
      rows.push(['', `PostgreSQL, ${workersLabel(run.workers)}`, '', `schema ${run.schema}${run.schemaDropped ? ' (dropped)' : ' (NOT dropped)'}; pool ${run.dbPoolSize} connections per process`]);
      const m = run.memory;
      const each = m?.processes.map((p) => `${p.name} ${fmt(p.peakRssMB, 1)}`).join(', ');
      const idle = m?.processes.map((p) => `${p.name} ${fmt(p.startRssMB, 1)}`).join(', ');
      measureRows(rows, b, run.e2e, run.latency, res.options.rate, [
        '4',
        'server peak RSS, sum of the processes\' peaks',
        m ? `${fmt(m.sumPeakRssMB, 1)} MB` : 'n/a',
        m ? `${each} MB; at idle after start ${idle} MB; PostgreSQL not included` : '',
      ]);
    }
  }
  const lines = [];
  lines.push('');
  lines.push(`Hooklane benchmark, ${res.startedAt}`);
  lines.push(
    `machine: ${res.machine.cpus} x ${res.machine.cpuModel}, ${fmt(res.machine.memoryMB)} MB, Node ${res.machine.node}; load generator + receiver in one process, ` +
      `${pgMode ? `1 api and ${res.options.workers.join(' / ')} worker processes, PostgreSQL${res.postgres.local ? ' on this machine' : ' elsewhere'}` : 'server in another'}; all on loopback`,
  );
  if (!pgMode) {
    lines.push(
      `SQLite: journal_mode=${res.sqlite.journalMode} (file: ${res.sqlite.journalModeOnDisk}), synchronous=${res.sqlite.synchronous} -> every acknowledged message is fsync'd; ` +
        `db on ${res.sqlite.filesystem} (${res.sqlite.mount}), fdatasync(4 KiB) p50 ${res.sqlite.fsyncProbe?.p50Ms} ms, p99 ${res.sqlite.fsyncProbe?.p99Ms} ms`,
    );
  } else {
    const p = res.postgres;
    const si = p.server ?? {};
    lines.push(
      `PostgreSQL ${si.server_version ?? '?'} at ${p.url}: synchronous_commit=${si.synchronous_commit ?? '?'}, fsync=${si.fsync ?? '?'}, wal_sync_method=${si.wal_sync_method ?? '?'}, ` +
        `commit_delay=${si.commit_delay ?? '?'}, shared_buffers=${si.shared_buffers ?? '?'}, max_connections=${si.max_connections ?? '?'}` +
        `${p.dataFilesystem ? `; data on ${p.dataFilesystem.type} (${p.dataFilesystem.mount})` : ''}; fdatasync(4 KiB) in the temp dir (${res.tempDir?.filesystem ?? 'n/a'}) p50 ${res.tempDir?.fsyncProbe?.p50Ms} ms, p99 ${res.tempDir?.fsyncProbe?.p99Ms} ms`,
    );
  }
  if (res.git) lines.push(`source: commit ${res.git.commit}${res.git.srcDirty ? ` + uncommitted changes in ${res.git.changed.length} files under src/ or package.json` : ''}`);
  const extra = `${res.options.waitIdle ? ` --wait-idle ${res.options.waitIdle}` : ''}${res.options.priority !== null ? ` --priority ${res.options.priority} (${res.priority?.autogroup ?? 'n/a'})` : ''}`;
  const engine = pgMode ? ` --engine postgres --workers ${res.options.workers.join(',')}` : '';
  lines.push(`options:${engine} --duration ${res.options.duration} --rate ${res.options.rate} --concurrency ${res.options.concurrency} --warmup ${res.options.warmup}${extra}; server: ${JSON.stringify(res.serverEnv)}`);
  lines.push('');
  lines.push(table(rows));
  lines.push('');
  if (!pgMode) {
    const e = res.e2e;
    const l = res.latency;
    lines.push('CPU (cores, 1.0 = one core for the whole phase):');
    if (b) lines.push(`  baseline : ${cpuText(b.cpu)}`);
    if (e) lines.push(`  e2e      : ${cpuText(e.cpu)}`);
    if (l) lines.push(`  latency  : ${cpuText(l.cpu)}`);
    if (e || l) lines.push('Server main thread (JavaScript + SQLite), share of wall time:');
    if (e) lines.push(`  e2e      : ${threadText(e.cpu.serverMainThread)}`);
    if (l) lines.push(`  latency  : ${threadText(l.cpu.serverMainThread)}`);
  } else {
    lines.push('CPU (cores, 1.0 = one core for the whole phase):');
    if (b) lines.push(`  baseline : ${cpuText(b.cpu)}`);
    for (const run of res.postgres.runs) {
      const phases = [['e2e', run.e2e], ['latency', run.latency]].filter(([, x]) => x);
      if (!phases.length) continue;
      lines.push(`  ${workersLabel(run.workers)}:`);
      for (const [name, x] of phases) {
        lines.push(`    ${name.padEnd(8)} : ${cpuText(x.cpu)}`);
        for (const t of [postgresCpuText(x.cpu.postgres), sessionsText(x.cpu.postgres), name === 'e2e' ? costText(x) : null]) if (t) lines.push(`    ${''.padEnd(8)}   ${t}`);
      }
    }
    const threadLines = [];
    for (const run of res.postgres.runs) {
      for (const [name, x] of [['e2e', run.e2e], ['latency', run.latency]]) {
        if (!x?.cpu.mainThreads) continue;
        threadLines.push(`  ${`${run.workers}w ${name}`.padEnd(10)} : ${Object.entries(x.cpu.mainThreads).map(([k, t]) => `${k} ${shortThreadText(t)}`).join(' | ')}`);
      }
    }
    if (threadLines.length) lines.push('Hooklane main threads (JavaScript), share of wall time:', ...threadLines);
  }
  for (const w of res.warnings) lines.push(`WARNING: ${w}`);
  for (const f of res.failures) lines.push(`FAILED: ${f}`);
  lines.push(res.ok ? 'result: OK' : 'result: FAILED');
  lines.push(`json: ${RESULTS}`);
  return lines.join('\n') + '\n';
}

// --- main ---------------------------------------------------------------------------

/**
 * --priority: with autogroup scheduling (Linux default for sessions), nice
 * only ranks processes inside one session's group, and each session gets a
 * fair share as a whole. So the harness re-runs itself in a new session whose
 * group holds just the harness and its server, and sets that group's nice.
 * The parent only forwards signals and the exit code.
 */
async function reexecInOwnSession() {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    detached: true,
    stdio: 'inherit',
    env: { ...process.env, HOOKLANE_BENCH_SESSION: '1' },
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  const [code, signal] = await new Promise((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  process.exit(code ?? (signal ? 128 + (osConstants.signals[signal] ?? 1) : 1));
}

/** Sets the nice of this thread (inherited by the server) and of this session's autogroup. */
function applyPriority(n) {
  const out = { nice: n, autogroup: null };
  try {
    setPriority(0, n);
  } catch (e) {
    throw new BenchError(`--priority ${n}: ${e.message} (a negative value needs root)`);
  }
  try {
    writeFileSync('/proc/self/autogroup', String(n));
    out.autogroup = readFileSync('/proc/self/autogroup', 'utf8').trim();
  } catch (e) {
    out.autogroup = `not set: ${e.code ?? e.message}`;
  }
  return out;
}

/** Drops a schema from a synchronous context (exit handler, watchdog): a child process does the async work. */
function dropSchemaSync(pgBase, schema, appPrefix) {
  try {
    execFileSync(process.execPath, [join(HERE, 'lib', 'postgres.mjs'), 'drop', schema, appPrefix], {
      env: { ...process.env, HOOKLANE_BENCH_DROP_URL: pgBase },
      timeout: 30_000,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    return true;
  } catch (e) {
    log(`could not drop schema ${schema} (${e.message.split('\n')[0]}); drop it with: DROP SCHEMA ${schema} CASCADE`);
    return false;
  }
}

/**
 * --engine postgres: per worker count, a fresh schema, `hooklane migrate`,
 * one `--role api` and N `--role worker` processes, the e2e and latency
 * phases against the API process, then a clean stop and the schema dropped.
 */
/** The harness's own connection (schemas, settings, pg_stat_activity); made before the baseline, so a bad URL fails at once. */
async function connectHarness(pgBase) {
  const app = `hl_bench_harness_${randomBytes(4).toString('hex')}`;
  try {
    return { admin: await connectAdmin(pgBase, app), adminApp: app };
  } catch (e) {
    throw new BenchError(`cannot connect to PostgreSQL at ${redactUrl(pgBase)}: ${e.message} (set HOOKLANE_BENCH_DATABASE_URL)`);
  }
}

async function postgresRuns(c) {
  const { o, res, admin, adminApp } = c;
  const si = await serverInfo(admin);
  res.postgres.server = si;
  if (res.postgres.local && si.data_directory) {
    const fs = filesystemOf(si.data_directory);
    if (fs.mount) res.postgres.dataFilesystem = { type: fs.type, mount: fs.mount };
  }
  if (!res.postgres.local) res.warnings.push(`PostgreSQL is not on this machine (${res.postgres.url}): its CPU is not measured`);
  const left = await leftoverSchemas(admin).catch(() => []);
  if (left.length) res.warnings.push(`schemas of earlier runs that were not dropped (no session uses them): ${left.join(', ')}; drop them with DROP SCHEMA <name> CASCADE`);
  const pool = Number(c.serverEnv.HOOKLANE_DB_POOL_SIZE ?? 10);
  const maxWorkers = Math.max(...o.workers);
  const need = pool * (1 + maxWorkers) + maxWorkers + 2;
  const free = Number(si.max_connections) - Number(si.superuser_reserved_connections ?? 3) - si.clientConnectionsAtStart;
  if (Number.isFinite(free) && need > free) res.warnings.push(`${maxWorkers} workers may need ${need} connections (pool ${pool} per process, + LISTEN), but only ${free} of max_connections=${si.max_connections} are free`);

  // Every process of a run shares one main secret (it seals endpoint secrets).
  const mainSecret = randomBytes(32).toString('base64url');
  for (const n of o.workers) {
    const run = { workers: n, schema: null, schemaDropped: false, dbPoolSize: pool, processes: [], e2e: null, latency: null, memory: null };
    res.postgres.runs.push(run);
    const failures = [];
    const warnings = [];
    const state = { procs: [], samplers: [], appPrefix: null };
    try {
      await postgresRun(c, admin, adminApp, run, state, mainSecret, failures, warnings);
    } catch (e) {
      failures.push(e instanceof BenchError ? e.message : e.stack ?? String(e));
    } finally {
      guard = () => {};
      for (const smp of state.samplers) smp.stop();
      await Promise.all(
        state.procs.filter((p) => !p.server.exited).map((p) => p.server.stop(3000).catch(() => p.server.killNow())),
      );
      for (const p of state.procs) c.live.delete(p.server);
      if (run.schema) {
        try {
          await dropSchema(admin, run.schema, state.appPrefix);
          c.pendingSchemas.delete(run.schema);
          run.schemaDropped = true;
          log(`${workersLabel(n)}: schema ${run.schema} dropped`);
        } catch (e) {
          failures.push(`could not drop schema ${run.schema}: ${e.message}`);
        }
      }
    }
    res.failures.push(...failures.map((f) => `[${workersLabel(n)}] ${f}`));
    res.warnings.push(...warnings.map((w) => `[${workersLabel(n)}] ${w}`));
  }
}

async function postgresRun(c, admin, adminApp, run, state, mainSecret, failures, warnings) {
  const { o } = c;
  const n = run.workers;
  const label = workersLabel(n);
  const { schema, appPrefix } = newSchemaName();
  state.appPrefix = appPrefix;
  c.pendingSchemas.set(schema, appPrefix);
  run.schema = schema;
  await createSchema(admin, schema);
  const url = (name) => pgUrl(c.pgBase, { schema, appName: appPrefix + name });
  const env = { ...c.serverEnv, HOOKLANE_MAIN_SECRET: mainSecret };

  log(`${label}: schema ${schema}; hooklane migrate`);
  // The same settings as the processes (README: every process gets the same settings).
  await runCli({ repoDir: REPO, dir: c.tmp, args: ['migrate'], env: { HOOKLANE_LOG_LEVEL: 'warn', ...env, HOOKLANE_DATABASE_URL: url('migrate') } }).catch((e) => {
    throw new BenchError(e.message);
  });

  const nodeArgs = o.profile ? ['--cpu-prof', `--cpu-prof-dir=${o.profile}`] : [];
  if (o.profile) mkdirSync(o.profile, { recursive: true });
  const names = [['api', 'api'], ...Array.from({ length: n }, (_, i) => [`worker${i + 1}`, 'worker'])];
  for (const [name, role] of names) {
    log(`${label}: starting ${name} (node dist/cli.js serve --role ${role} --no-migrate)`);
    const server = await startServer({ repoDir: REPO, dir: c.tmp, token: c.token, databaseUrl: url(name), args: ['--role', role, '--no-migrate'], extraEnv: env, nodeArgs }).catch((e) => {
      throw new BenchError(`${name} (--role ${role}): ${e.message}`);
    });
    c.live.add(server);
    state.procs.push({ name, role, server });
    if (o.priority !== undefined) setPriority(server.pid, o.priority);
    run.processes.push({ name, role, pid: server.pid, port: server.port });
  }
  const procs = state.procs;
  const samplers = procs.map((p) => startRssSampler(p.server.pid, 100));
  state.samplers = samplers;
  const startRss = samplers.map((smp) => smp.takePhasePeak());
  guard = () => {
    for (const p of procs) {
      if (p.server.exited) throw new BenchError(`${p.name} (--role ${p.role}) exited during the run (${JSON.stringify(p.server.exited)}): ${p.server.output().trim().slice(-2000)}`);
    }
  };
  const api = procs[0].server;
  const labelOf = (app) => (app.startsWith(appPrefix) ? app.slice(appPrefix.length) : app === adminApp ? 'harness' : null);
  const target = {
    api: api.api,
    origin: api.origin,
    procs: procs.map((p) => ({ name: p.name, pid: p.server.pid })),
    mainThreads: procs.map((p) => ({ name: p.name, pid: p.server.pid })),
    pgMeter: () => postgresMeter(admin, labelOf, { local: c.res.postgres.local }),
  };
  const phasePeaks = () => Object.fromEntries(procs.map((p, i) => [p.name, mb(samplers[i].takePhasePeak())]));

  const e = await e2ePhase(o, c.rx, target, c.token, c.secret, c.drainTimeoutMs);
  guard();
  run.e2e = e.result;
  addOther(`e2e`, e.result.cpu, warnings);
  run.e2e.serverPeakRssMB = phasePeaks();
  failures.push(...e.failures);
  log(`${label}: e2e: ${fmt(e.result.messagesPerSecond)} msgs/s delivered (${fmt(e.result.acceptedPerSecond)}/s accepted)`);

  await sleep(1000);
  phasePeaks();
  const l = await latencyPhase(o, c.rx, target, c.token, c.secret, c.drainTimeoutMs);
  guard();
  run.latency = l.result;
  addOther(`latency`, l.result.cpu, warnings);
  run.latency.serverPeakRssMB = phasePeaks();
  failures.push(...l.failures);
  warnings.push(...l.warnings);
  log(`${label}: latency: p50 ${l.result.latencyMs.p50} ms, p99 ${l.result.latencyMs.p99} ms at ${fmt(l.result.achievedRate)}/s`);

  for (const smp of samplers) smp.stop();
  const each = procs.map((p, i) => {
    const ss = samplers[i].stats;
    return { name: p.name, pid: p.server.pid, peakRssMB: mb(samplers[i].peakBytes), peakSampledRssMB: mb(ss.peakRss), vmHwmMB: mb(ss.peakHwm), startRssMB: mb(startRss[i]), samples: ss.samples };
  });
  run.memory = { processes: each, sumPeakRssMB: round(each.reduce((a, p) => a + p.peakRssMB, 0), 1) };

  guard = () => {};
  const exits = await Promise.all(procs.map((p) => p.server.stop()));
  procs.forEach((p, i) => {
    if (exits[i].code !== 0) failures.push(`${p.name} did not shut down cleanly on SIGTERM: ${JSON.stringify(exits[i])} ${p.server.output().trim().slice(-1000)}`);
    const out = p.server.output().trim();
    run.processes[i].stderr = out ? out.slice(-2000) : undefined;
  });
}

async function main() {
  const o = options();
  if (o.priority !== undefined && process.env.HOOKLANE_BENCH_SESSION !== '1') return reexecInOwnSession();
  const pgMode = o.engine === 'postgres';
  const started = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'hooklane-bench-'));
  const key = randomBytes(24);
  const secret = 'whsec_' + key.toString('base64');
  const token = 'hl_bench_' + randomBytes(18).toString('base64url');
  const drainTimeoutMs = Math.max(60_000, o.duration * 5000);
  const pgBase = pgMode ? process.env.HOOKLANE_BENCH_DATABASE_URL || DEFAULT_PG_URL : null;
  // The API rate limit (1000/s per token by default, in builds that have one) would cap what is measured here.
  const serverEnv = { HOOKLANE_RATE_LIMIT_PER_SECOND: '0' };
  if (o.endpointConcurrency !== undefined) serverEnv.HOOKLANE_ENDPOINT_CONCURRENCY = String(o.endpointConcurrency);
  if (o.deliveryConcurrency !== undefined) serverEnv.HOOKLANE_DELIVERY_CONCURRENCY = String(o.deliveryConcurrency);
  Object.assign(serverEnv, o.serverEnv);

  let server = null;
  let harnessDb = null;
  /** Every server process still running, killed by the synchronous cleanup. */
  const live = new Set();
  /** PostgreSQL schemas created and not yet dropped: schema -> application_name prefix. */
  const pendingSchemas = new Map();
  let rx = null;
  let sampler = null;
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    cleaned = true;
    for (const p of live) {
      try {
        p.killNow();
      } catch {
        /* gone */
      }
    }
    for (const [schema, appPrefix] of pendingSchemas) if (dropSchemaSync(pgBase, schema, appPrefix)) pendingSchemas.delete(schema);
    rmSync(tmp, { recursive: true, force: true });
  };
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      log(`${sig}: stopping`);
      cleanupSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
  // A hard upper bound on the whole run: never hang.
  let budgetMs = 240_000 + o.waitIdle * 4000 + o.duration * 6000 + o.warmup * 3000 + drainTimeoutMs * 2;
  if (pgMode) budgetMs += 60_000 + (o.workers.length - 1) * (90_000 + o.waitIdle * 3000 + o.duration * 5000 + o.warmup * 2000 + drainTimeoutMs * 2);
  const watchdog = setTimeout(() => {
    log(`the whole run took longer than ${Math.round(budgetMs / 1000)} s: giving up`);
    cleanupSync();
    process.exit(1);
  }, budgetMs);

  const res = {
    ok: false,
    engine: o.engine,
    startedAt: started.toISOString(),
    options: { duration: o.duration, rate: o.rate, concurrency: o.concurrency, warmup: o.warmup, waitIdle: o.waitIdle, priority: o.priority ?? null, ...(pgMode ? { workers: o.workers } : {}) },
    serverEnv: { HOOKLANE_LOG_LEVEL: 'warn', HOOKLANE_ALLOWED_SUBNETS: '127.0.0.0/8', ...serverEnv },
    machine: machineInfo(),
    sqlite: {},
    baseline: null,
    e2e: null,
    latency: null,
    memory: null,
    failures: [],
    warnings: [],
  };
  if (pgMode) {
    res.sqlite = undefined;
    res.serverEnv = { ...res.serverEnv, HOOKLANE_DB_POOL_SIZE: serverEnv.HOOKLANE_DB_POOL_SIZE ?? '10 (default)' };
    res.postgres = { url: redactUrl(pgBase), local: isLocal(pgBase), server: null, dataFilesystem: null, runs: [] };
  }

  try {
    const fs = filesystemOf(tmp);
    if (!pgMode) {
      res.sqlite = { ...sqlitePragmas(), filesystem: fs.type, mount: fs.mount, dbDir: tmp, fsyncProbe: fsyncProbe(tmp) };
      if (res.sqlite.filesystem === 'tmpfs') res.warnings.push(`the temp dir ${tmp} is on tmpfs: fsync costs nothing there, so the figures are optimistic (set TMPDIR to a disk)`);
    } else {
      res.tempDir = { dir: tmp, filesystem: fs.type, mount: fs.mount, fsyncProbe: fsyncProbe(tmp) };
    }

    res.git = gitState();
    if (o.priority !== undefined) res.priority = applyPriority(o.priority);
    // The figures assume the machine is otherwise idle; say so when it is not.
    res.machineBeforeStart = await awaitQuiet('start', o, null);
    if (res.machineBeforeStart.otherCores > QUIET_CORES) {
      res.warnings.push(`before the run other processes already used ${res.machineBeforeStart.otherCores} cores`);
    }

    if (pgMode) harnessDb = await connectHarness(pgBase);
    rx = await startReceiver({ key });

    log(`baseline: load generator -> receiver, ${o.concurrency} in flight, ${o.warmup} s warm-up + ${o.duration} s`);
    const b = await baselinePhase(o, rx, key);
    res.baseline = b.result;
    addOther('baseline', b.result.cpu, res.warnings);
    res.failures.push(...b.failures);
    log(`baseline: ${fmt(b.result.postsPerSecond)} signed POSTs/s`);

    if (pgMode) {
      await postgresRuns({ o, res, rx, tmp, token, secret, serverEnv, drainTimeoutMs, pgBase, live, pendingSchemas, ...harnessDb });
      if (rx.stray.requests > 0) res.failures.push(`the receiver got ${rx.stray.requests} requests on unexpected paths (${[...rx.stray.paths].join(', ')})`);
    } else {
      log(`starting the server (node dist/cli.js serve) on ${tmp}`);
      const nodeArgs = o.profile ? ['--cpu-prof', `--cpu-prof-dir=${o.profile}`] : [];
      if (o.profile) mkdirSync(o.profile, { recursive: true });
      server = await startServer({ repoDir: REPO, dir: tmp, token, extraEnv: serverEnv, nodeArgs });
      live.add(server);
      if (o.priority !== undefined) setPriority(server.pid, o.priority);
      sampler = startRssSampler(server.pid, 100);
      const startRss = sampler.takePhasePeak();
      const crashed = () => {
        if (server.exited) throw new BenchError(`the server exited during the run (${JSON.stringify(server.exited)}): ${server.output().trim().slice(-2000)}`);
      };
      guard = crashed;
      const target = { api: server.api, origin: server.origin, procs: server.pid, mainThreads: [{ name: 'server', pid: server.pid }] };

      const e = await e2ePhase(o, rx, target, token, secret, drainTimeoutMs);
      crashed();
      res.e2e = e.result;
      addOther('e2e', e.result.cpu, res.warnings);
      res.e2e.serverPeakRssMB = mb(sampler.takePhasePeak());
      res.failures.push(...e.failures);
      log(`e2e: ${fmt(e.result.messagesPerSecond)} msgs/s delivered (${fmt(e.result.acceptedPerSecond)}/s accepted)`);

      await sleep(1000);
      sampler.takePhasePeak();
      const l = await latencyPhase(o, rx, target, token, secret, drainTimeoutMs);
      crashed();
      res.latency = l.result;
      addOther('latency', l.result.cpu, res.warnings);
      res.latency.serverPeakRssMB = mb(sampler.takePhasePeak());
      res.failures.push(...l.failures);
      res.warnings.push(...l.warnings);
      log(`latency: p50 ${l.result.latencyMs.p50} ms, p99 ${l.result.latencyMs.p99} ms at ${fmt(l.result.achievedRate)}/s`);

      sampler.stop();
      const ss = sampler.stats;
      res.memory = { peakRssMB: mb(sampler.peakBytes), peakSampledRssMB: mb(ss.peakRss), vmHwmMB: mb(ss.peakHwm), startRssMB: mb(startRss), samples: ss.samples };
      if (rx.stray.requests > 0) res.failures.push(`the receiver got ${rx.stray.requests} requests on unexpected paths (${[...rx.stray.paths].join(', ')})`);

      guard = () => {};
      const exit = await server.stop();
      if (exit.code !== 0) res.failures.push(`the server did not shut down cleanly on SIGTERM: ${JSON.stringify(exit)} ${server.output().trim().slice(-1000)}`);
      res.sqlite.journalModeOnDisk = await journalModeOnDisk(join(tmp, 'hooklane.db'));
      res.serverStderr = server.output().trim().slice(-2000) || undefined;
    }
  } catch (e) {
    res.failures.push(e instanceof BenchError ? e.message : e.stack ?? String(e));
    sampler?.stop();
    if (!pgMode && !res.memory && sampler) res.memory = { peakRssMB: mb(sampler.peakBytes), samples: sampler.stats.samples, startRssMB: null };
  } finally {
    if (server && !server.exited) await server.stop(3000).catch(() => server.killNow());
    await harnessDb?.admin.end().catch(() => {});
    await rx?.close();
    clearTimeout(watchdog);
    cleanupSync();
  }
  if (pgMode) {
    for (const run of res.postgres.runs) if (run.schema && !run.schemaDropped && !pendingSchemas.has(run.schema)) run.schemaDropped = true;
    if (pendingSchemas.size > 0) res.failures.push(`schemas not dropped: ${[...pendingSchemas.keys()].join(', ')}`);
  }
  res.harnessPeakRssMB = mb(process.resourceUsage().maxRSS * 1024);
  res.ok = res.failures.length === 0;
  if (res.sqlite) res.sqlite.journalModeOnDisk ??= 'n/a';
  mkdirSync(dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, JSON.stringify(res, null, 2) + '\n');
  process.stdout.write(report(res));
  process.exit(res.ok ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`bench: ${e.stack ?? e}\n`);
  process.exit(1);
});
