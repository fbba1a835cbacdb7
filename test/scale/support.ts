import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterEach } from 'vitest';
import type { Received, Receiver } from '../helpers/receiver.js';
import { TEST_TOKEN, eventually, freePort, spawnServerWith, tempDir, type ChildServer } from '../helpers/server.js';
import { PG_URL } from '../store/engines.js';

/**
 * Shared pieces of the scale-out suites: a PostgreSQL schema per test that
 * child processes reach through their database URL, Hooklane processes by
 * role, a steady load of messages, and a TCP proxy that can cut the
 * processes off the database.
 */

export { PG_URL };

/** Printed once per file when the suites cannot run. */
export function noticeIfSkipped(suite: string): void {
  if (!PG_URL) console.warn(`[${suite}] PostgreSQL tests skipped: set HOOKLANE_TEST_DATABASE_URL to a PostgreSQL database to run them`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface ScaleDb {
  schema: string;
  /** The application_name every Hooklane connection of this test carries. */
  appName: string;
  /** Database URL for child processes: this schema, this application_name; optionally through another host:port. */
  url(via?: { host: string; port: number }): string;
  sql<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** pg_terminate_backend on every connection of this test's processes (not the test's own, not other tests'). */
  terminateBackends(): Promise<number>;
  /** Deliveries leased by the process with this pid (lease owners are host:pid:random). */
  leasesHeldBy(pid: number): Promise<number>;
  drop(): Promise<void>;
}

/** A fresh schema; connections of the processes under test are tagged with an application_name of their own. */
export async function scaleDb(): Promise<ScaleDb> {
  const schema = `hl_scale_${randomBytes(6).toString('hex')}`;
  const appName = `hooklane_test_${schema}`;
  const adminUrl = new URL(PG_URL!);
  adminUrl.searchParams.set('options', `-c search_path=${schema}`);
  adminUrl.searchParams.set('application_name', `admin_${schema}`);
  const admin = new pg.Pool({ connectionString: adminUrl.toString(), max: 2 });
  admin.on('error', () => {});
  await admin.query(`CREATE SCHEMA ${schema}`);
  const sql = async <T>(text: string, params: unknown[] = []) => (await admin.query(text, params)).rows as T[];
  return {
    schema,
    appName,
    url: (via) => {
      const u = new URL(PG_URL!);
      if (via) {
        u.hostname = via.host;
        u.port = String(via.port);
      }
      u.searchParams.set('options', `-c search_path=${schema}`);
      u.searchParams.set('application_name', appName);
      return u.toString();
    },
    sql,
    terminateBackends: async () => {
      const rows = await sql<{ ok: boolean }>(
        'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
        [appName],
      );
      return rows.filter((r) => r.ok).length;
    },
    leasesHeldBy: async (pid) => {
      const rows = await sql<{ n: number }>("SELECT COUNT(*)::int AS n FROM deliveries WHERE status = 3 AND lease_owner LIKE '%:' || $1 || ':%'", [String(pid)]);
      return rows[0]!.n;
    },
    drop: async () => {
      // Killed processes may leave sessions behind for a moment; they would hold locks on the schema.
      await sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [appName]).catch(() => {});
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}

/** What a scale test starts, released after each test (see scaleFixture). */
export interface ScaleFixture {
  db?: ScaleDb;
  fleet?: Fleet;
  rx?: Receiver;
  /** Anything else to close: after the fleet stops, before the receiver closes. */
  extra?: { close(): Promise<void> };
}

/**
 * Registers an afterEach that stops the fleet, closes `extra` and the
 * receiver, and drops the schema, in that order, then empties the fixture.
 * Tests assign what they start to its fields.
 */
export function scaleFixture(): ScaleFixture {
  const f: ScaleFixture = {};
  afterEach(async () => {
    await f.fleet?.stop();
    await f.extra?.close();
    await f.rx?.close();
    await f.db?.drop();
    f.db = f.fleet = f.rx = f.extra = undefined;
  });
  return f;
}

export type Role = 'api' | 'worker' | 'all';

/**
 * Settings every process of a scale test gets. HOOKLANE_MAIN_SECRET: with
 * PostgreSQL every process must share one (it encrypts endpoint secrets).
 */
export const SCALE_ENV: Record<string, string> = {
  HOOKLANE_LOG_LEVEL: 'info',
  HOOKLANE_MAIN_SECRET: 'scale-test-main-secret-0123456789abcdefghij',
};

/** Child processes of one test, stopped (SIGKILL) at the end. */
export class Fleet {
  readonly dir = tempDir('hooklane-scale-');
  readonly all: ChildServer[] = [];
  private readonly killed = new Set<ChildServer>();

  constructor(private readonly baseEnv: Record<string, string>) {}

  /** Starts `hooklane serve --role <role>`; resolves once it has started (health answers, delivery running). */
  async start(role: Role, env: Record<string, string> = {}, args: string[] = []): Promise<ChildServer> {
    const child = await spawnServerWith(this.dir, await freePort(), { ...SCALE_ENV, ...this.baseEnv, ...env }, ['--role', role, ...args]);
    this.all.push(child);
    // Health answers before the dispatcher has started; this line comes after (log level info).
    await eventually(() => child.output().includes('hooklane listening') || child.proc.exitCode !== null, 30_000, 'the process to start');
    const kill = child.kill;
    child.kill = (signal) => {
      this.killed.add(child);
      return kill(signal);
    };
    return child;
  }

  async stop(): Promise<void> {
    // A process that ended on its own (not killed by the test) left its reason in its output.
    for (const c of this.all.filter((x) => !this.killed.has(x))) {
      const { exitCode, signalCode } = c.proc;
      if ((exitCode !== null && exitCode !== 0) || signalCode !== null) {
        console.error(`[fleet] pid ${c.proc.pid} ended by itself (${exitCode ?? signalCode}):\n${c.output().slice(-4000)}`);
      }
    }
    await Promise.all(this.all.map((c) => c.kill('SIGKILL')));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Load {
  /** Message ids answered with 202. */
  acked: string[];
  /** Answers other than 202, and requests that failed or timed out. */
  refused: { status: number; body: unknown }[];
  hung: number;
  stop(): Promise<void>;
}

/**
 * A steady stream of messages from `posters` concurrent clients, each
 * pausing `pauseMs` between requests. A request unanswered after 20 s counts
 * as hung.
 */
export function startLoad(baseUrl: string, appId: string, opts: { posters?: number; pauseMs?: number } = {}): Load {
  const load: Load = { acked: [], refused: [], hung: 0, stop: async () => {} };
  let running = true;
  let n = 0;
  const poster = async () => {
    while (running) {
      const i = n++;
      try {
        const res = await fetch(`${baseUrl}/api/v1/app/${appId}/msg`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ eventType: 'scale.test', payload: { i } }),
          signal: AbortSignal.timeout(20_000),
        });
        const text = await res.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* keep the text */
        }
        if (res.status === 202) load.acked.push((body as { id: string }).id);
        else load.refused.push({ status: res.status, body });
      } catch (e) {
        if ((e as Error).name === 'TimeoutError') load.hung++;
        else load.refused.push({ status: 0, body: String(e) });
      }
      await sleep(opts.pauseMs ?? 10);
    }
  };
  const all = Promise.all(Array.from({ length: opts.posters ?? 3 }, poster));
  load.stop = async () => {
    running = false;
    await all;
  };
  return load;
}

export function webhookId(r: Received): string {
  const v = r.headers['webhook-id'];
  return Array.isArray(v) ? v.join(',') : (v ?? '');
}

/** Distinct webhook-ids at the receiver, and how many requests repeated one. */
export function tally(requests: readonly Received[]): { distinct: Set<string>; duplicates: number } {
  const distinct = new Set(requests.map(webhookId));
  return { distinct, duplicates: requests.length - distinct.size };
}

/** Every acknowledged message has its delivery recorded as a success (status 0) in the database. */
export async function undelivered(db: ScaleDb, acked: string[]): Promise<string[]> {
  const rows = await db.sql<{ msg_id: string }>('SELECT msg_id FROM deliveries WHERE status = 0 AND msg_id = ANY($1::text[])', [acked]);
  const ok = new Set(rows.map((r) => r.msg_id));
  return acked.filter((id) => !ok.has(id));
}

/** Lines of a child's (JSON) log whose message contains `text`. */
export function logLines(child: ChildServer, text: string): string[] {
  return child.output().split('\n').filter((l) => l.includes(text));
}

/**
 * A TCP proxy in front of PostgreSQL, so a test can cut its own processes
 * off the database without touching the server others use: `refuse()`
 * drops every connection and closes the port (connection refused) until
 * `resume()`.
 */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** Drops every proxied connection and stops listening. */
  async refuse(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again on the same port. */
  resume(): Promise<void> {
    return this.start();
  }

  async close(): Promise<void> {
    await this.refuse();
  }
}

/** Host and port of the test database, for the proxy. */
export function pgTarget(): { host: string; port: number } {
  const u = new URL(PG_URL!);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 5432) };
}
