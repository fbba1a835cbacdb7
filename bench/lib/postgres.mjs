// PostgreSQL for the benchmark: a fresh schema per run (reached by the
// Hooklane processes through `?options=-c search_path=<schema>` in their
// database URL, like test/scale does), its removal, the server's settings,
// and a CPU accountant for the `postgres` processes of this machine.
//
// Also a tiny CLI, so that an exiting harness can drop its schema
// synchronously (execFileSync) from a process 'exit' handler; the URL comes
// in the environment, so no password shows up in the process list:
//   HOOKLANE_BENCH_DROP_URL=<admin-url> node bench/lib/postgres.mjs drop <schema> <application_name prefix>
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { clockTicks, procStats, round } from './sys.mjs';

export const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

const SCHEMA_RE = /^hl_bench_[a-f0-9]{8,32}$/;

/** A new schema name, and the application_name prefix every connection of this run carries. */
export function newSchemaName() {
  const schema = `hl_bench_${randomBytes(6).toString('hex')}`;
  return { schema, appPrefix: `${schema}:` };
}

/**
 * `base` with `-c search_path=<schema>` in its `options` (kept together with
 * options already there) and `application_name`, percent-encoded
 * (`?options=-c%20search_path%3D<schema>`). pg lets both win over what
 * Hooklane sets in code, so every connection of a process, its LISTEN
 * connection included, shows up in pg_stat_activity as `<appName>`.
 */
export function pgUrl(base, { schema, appName } = {}) {
  const u = new URL(base);
  const params = [...u.searchParams.entries()].filter(([k]) => k !== 'options' && k !== 'application_name');
  const options = [u.searchParams.get('options'), schema ? `-c search_path=${schema}` : null].filter(Boolean).join(' ');
  if (options) params.push(['options', options]);
  if (appName) params.push(['application_name', appName]);
  u.search = params.length ? '?' + params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&') : '';
  return u.toString();
}

/** The URL without credentials, for printing. */
export function redactUrl(url) {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** Is the database on this machine (so its processes can be read from /proc)? */
export function isLocal(url) {
  try {
    const h = new URL(url).hostname;
    return h === '' || h === 'localhost' || h === '127.0.0.1' || h === '[::1]' || h === '::1' || h.startsWith('%2F') || h.startsWith('/');
  } catch {
    return false;
  }
}

/** One admin connection (application_name `<prefix>harness`), for the schema, settings and pg_stat_activity. */
export async function connectAdmin(base, appName) {
  const client = new pg.Client({ connectionString: pgUrl(base, { appName }), connectionTimeoutMillis: 10_000, statement_timeout: 30_000 });
  client.on('error', () => {});
  await client.connect();
  return client;
}

export async function createSchema(client, schema) {
  if (!SCHEMA_RE.test(schema)) throw new Error(`refusing schema name ${schema}`);
  await client.query(`CREATE SCHEMA ${schema}`);
}

/**
 * Ends the sessions of this run (application_name starts with `appPrefix`,
 * except the caller's) and drops the schema. Killed processes may leave
 * sessions behind for a moment, holding locks on it, so the drop is retried.
 */
export async function dropSchema(client, schema, appPrefix) {
  if (!SCHEMA_RE.test(schema)) throw new Error(`refusing schema name ${schema}`);
  const like = appPrefix.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
  let lastError;
  for (let attempt = 1; attempt <= 5; attempt++) {
    await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1 AND pid <> pg_backend_pid()', [like]).catch(() => {});
    try {
      await client.query("SET lock_timeout = '5s'");
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      return;
    } catch (e) {
      lastError = e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw lastError;
}

/** hl_bench_* schemas left behind by runs that could not clean up (killed with SIGKILL), with no session attached. */
export async function leftoverSchemas(client) {
  const r = await client.query(
    `SELECT n.nspname AS schema FROM pg_namespace n
      WHERE n.nspname ~ '^hl_bench_[a-f0-9]+$'
        AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name LIKE n.nspname || ':%')
      ORDER BY 1`,
  );
  return r.rows.map((x) => x.schema);
}

/** What matters for the figures: version, durability and sizing settings, where the data lives. */
export async function serverInfo(client) {
  const names = ['server_version', 'synchronous_commit', 'fsync', 'wal_sync_method', 'full_page_writes', 'commit_delay', 'shared_buffers', 'max_connections', 'superuser_reserved_connections', 'max_wal_size', 'data_directory'];
  const r = await client.query('SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1)', [names]);
  const out = {};
  for (const row of r.rows) out[row.name] = row.unit && /^\d+$/.test(row.setting) ? withUnit(Number(row.setting), row.unit) : row.setting;
  const c = await client.query('SELECT COUNT(*)::int AS n FROM pg_stat_activity WHERE backend_type = $1', ['client backend']);
  out.clientConnectionsAtStart = c.rows[0].n;
  return out;
}

function withUnit(n, unit) {
  const m = /^(\d+)?(B|kB|MB|GB|ms|s|min)$/.exec(unit);
  if (!m) return `${n} ${unit}`;
  const mult = Number(m[1] ?? 1);
  if (['B', 'kB', 'MB', 'GB'].includes(m[2])) {
    const bytes = n * mult * { B: 1, kB: 1024, MB: 2 ** 20, GB: 2 ** 30 }[m[2]];
    return bytes >= 2 ** 30 ? `${round(bytes / 2 ** 30, 1)}GB` : `${round(bytes / 2 ** 20, 0)}MB`;
  }
  return `${n * mult}${m[2]}`;
}

// --- CPU of the postgres processes ----------------------------------------------------

const clkTck = clockTicks();

/**
 * Every process named `postgres` on this machine: pid -> {cpu (utime+stime),
 * reaped (cutime+cstime: children that exited and were waited for), ppid}, in seconds.
 */
function postgresProcesses() {
  const out = new Map();
  for (const { pid, name, f } of procStats()) {
    if (name !== 'postgres') continue;
    out.set(Number(pid), { cpu: (Number(f[11]) + Number(f[12])) / clkTck, reaped: (Number(f[13]) + Number(f[14])) / clkTck, ppid: Number(f[1]) });
  }
  return out;
}

/** Postmasters: postgres processes whose parent is not one. Their reaped time holds the CPU of backends that exited. */
function reapedByPostmasters(procs) {
  let s = 0;
  const postmasters = [];
  for (const [pid, p] of procs) {
    if (!procs.has(p.ppid)) {
      s += p.reaped;
      postmasters.push(pid);
    }
  }
  return { reaped: s, postmasters };
}

/**
 * What the PostgreSQL server did between start and stop, from two sources:
 *
 * - Sessions: pg_stat_activity, polled every `everyMs` with the admin
 *   connection. `labelOf(application_name)` names the process of this run a
 *   session works for (null: not this run's). Per process: sessions active
 *   on average, split by wait event (`CPU` = active with none, i.e. running
 *   or waiting for a CPU). This needs no access to the server's machine.
 * - CPU (only with `local`: the server on this machine, read from /proc):
 *   every `postgres` process, in cores, split by whose work it was: backends
 *   of a process of this run, of other clients, or background (walwriter,
 *   checkpointer, autovacuum, postmaster, ...). A backend that exits during
 *   the phase is gone from /proc; its CPU is found in its postmaster's
 *   cutime/cstime and reported as `exited` (the part after its last sample).
 */
export function postgresMeter(client, labelOf, { local = true, everyMs = 100, procEvery = 5 } = {}) {
  const t0 = performance.now();
  const procs0 = local ? postgresProcesses() : new Map();
  const r0 = reapedByPostmasters(procs0);
  const last = new Map([...procs0].map(([pid, p]) => [pid, p.cpu]));
  const who = new Map(); // pid -> {app, type}
  const sessions = new Map(); // label -> {active, waits: Map}
  let polls = 0;
  let polling = null;
  const pollOnce = async () => {
    try {
      const r = await client.query('SELECT pid, application_name, backend_type, state, wait_event_type, wait_event FROM pg_stat_activity');
      polls++;
      for (const row of r.rows) {
        const app = row.application_name ?? '';
        who.set(row.pid, { app, type: row.backend_type ?? '' });
        const label = labelOf(app);
        if (!label || label === 'harness' || row.state !== 'active') continue;
        let st = sessions.get(label);
        if (!st) sessions.set(label, (st = { active: 0, waits: new Map() }));
        st.active++;
        const k = row.wait_event_type ? `${row.wait_event_type}/${row.wait_event}` : 'CPU';
        st.waits.set(k, (st.waits.get(k) ?? 0) + 1);
      }
    } catch {
      /* the admin connection is best effort here */
    }
    if (local && polls % procEvery === 0) for (const [pid, p] of postgresProcesses()) last.set(pid, p.cpu);
  };
  const poll = () => (polling ??= pollOnce().finally(() => (polling = null)));
  poll();
  const timer = setInterval(poll, everyMs);
  const sessionSummary = () =>
    Object.fromEntries(
      [...sessions].map(([label, st]) => [
        label,
        {
          avgActive: round(st.active / Math.max(1, polls), 2),
          waits: Object.fromEntries([...st.waits].sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, round(n / Math.max(1, polls), 2)])),
        },
      ]),
    );
  return {
    async stop() {
      clearInterval(timer);
      await polling;
      if (local) for (const [pid, p] of postgresProcesses()) last.set(pid, p.cpu);
      const wall = (performance.now() - t0) / 1000;
      if (!local) return { cores: null, sessions: sessionSummary(), polls, wallSeconds: round(wall, 3) };
      const procs1 = postgresProcesses();
      const r1 = reapedByPostmasters(procs1);
      const groups = new Map(); // label -> seconds
      const add = (label, sec) => groups.set(label, (groups.get(label) ?? 0) + sec);
      let attributed = 0;
      let total = 0;
      let exitedAtStart = 0;
      for (const [pid, cpuLast] of last) {
        const first = procs0.get(pid)?.cpu ?? 0;
        const now = procs1.get(pid)?.cpu ?? cpuLast;
        const used = Math.max(0, now - first);
        if (procs1.has(pid)) total += used;
        else if (procs0.has(pid)) exitedAtStart += first;
        const w = who.get(pid);
        let label = w ? labelOf(w.app) : null;
        if (label) label = `of ${label}`;
        else if (w && w.type === 'client backend') label = 'other clients';
        else if (w) label = 'background';
        else if (r1.postmasters.includes(pid) || r0.postmasters.includes(pid)) label = 'background';
        else label = 'unknown';
        add(label, used);
        attributed += used;
      }
      // Backends that exited: all their CPU moved to the postmaster's reaped time.
      total += Math.max(0, r1.reaped - r0.reaped - exitedAtStart);
      const exited = Math.max(0, total - attributed);
      if (exited > 0) add('exited', exited);
      const cores = (sec) => round(sec / wall, 2);
      const byGroup = Object.fromEntries([...groups].filter(([, sec]) => sec / wall >= 0.005).sort((a, b) => b[1] - a[1]).map(([k, sec]) => [k, cores(sec)]));
      const ours = [...groups].filter(([k]) => k.startsWith('of ')).reduce((a, [, sec]) => a + sec, 0);
      return {
        cores: cores(total),
        thisRunBackendsCores: cores(ours),
        otherClientsCores: cores(groups.get('other clients') ?? 0),
        byGroup,
        processes: procs1.size,
        sessions: sessionSummary(),
        polls,
        wallSeconds: round(wall, 3),
      };
    },
  };
}

// --- CLI: synchronous cleanup from an exit handler ---------------------------------------

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [cmd, schema, appPrefix] = process.argv.slice(2);
  const url = process.env.HOOKLANE_BENCH_DROP_URL;
  if (cmd !== 'drop' || !url || !schema || !appPrefix) {
    process.stderr.write('usage: HOOKLANE_BENCH_DROP_URL=<admin-url> node bench/lib/postgres.mjs drop <schema> <application_name prefix>\n');
    process.exit(2);
  }
  const client = await connectAdmin(url, `${appPrefix}cleanup`).catch((e) => {
    process.stderr.write(`cannot connect to drop ${schema}: ${e.message}\n`);
    process.exit(1);
  });
  try {
    await dropSchema(client, schema, appPrefix);
    process.stderr.write(`[bench] dropped schema ${schema}\n`);
  } catch (e) {
    process.stderr.write(`could not drop schema ${schema}: ${e.message}\n`);
    process.exitCode = 1;
  } finally {
    await client.end().catch(() => {});
  }
}
