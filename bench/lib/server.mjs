// Runs `node dist/cli.js serve` as a child process, on a fresh SQLite file in
// a temp dir or (with `databaseUrl`) on PostgreSQL, and talks to its API.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Pool } from 'undici';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (there is a small window before the server takes it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The child's environment: ours without any HOOKLANE_* or DATABASE_URL, plus `env`. */
export function childEnv(env) {
  const out = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('HOOKLANE_') || k === 'DATABASE_URL' || k === 'NODE_OPTIONS') continue;
    out[k] = v;
  }
  return { ...out, ...env };
}

/**
 * Starts the server and waits until GET /api/v1/health answers 204.
 * `extraEnv` is added to the HOOKLANE_* settings below. `databaseUrl`
 * defaults to a SQLite file in `dir`; `args` go after `serve` (e.g.
 * `--role worker --no-migrate`).
 */
export async function startServer({ repoDir, dir, token, databaseUrl, args = [], extraEnv = {}, nodeArgs = [], startTimeoutMs = 30_000 }) {
  const cli = join(repoDir, 'dist', 'cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first (npm run bench does)`);
  let lastError;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const env = childEnv({
      HOOKLANE_HOST: '127.0.0.1',
      HOOKLANE_PORT: String(port),
      HOOKLANE_DATABASE_URL: databaseUrl ?? `sqlite:${join(dir, 'hooklane.db')}`,
      HOOKLANE_API_TOKEN: token,
      HOOKLANE_ALLOWED_SUBNETS: '127.0.0.0/8',
      HOOKLANE_LOG_LEVEL: 'warn',
      ...extraEnv,
    });
    // cwd = the temp dir, so no hooklane.config.json of the caller is picked up.
    const proc = spawn(process.execPath, [...nodeArgs, cli, 'serve', ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d) => {
      output += d;
      if (output.length > 64_000) output = output.slice(-32_000);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    let exited = null;
    const exitPromise = new Promise((resolve) => proc.once('exit', (code, signal) => resolve((exited = { code, signal }))));
    const origin = `http://127.0.0.1:${port}`;
    const api = apiClient(origin, token);
    const deadline = Date.now() + startTimeoutMs;
    let up = false;
    while (!exited && Date.now() < deadline) {
      try {
        const r = await api.call('GET', '/health');
        if (r.status === 204) {
          up = true;
          break;
        }
      } catch {
        /* not listening yet */
      }
      await sleep(100);
    }
    const server = {
      proc,
      pid: proc.pid,
      origin,
      port,
      api,
      output: () => output,
      get exited() {
        return exited;
      },
      /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
      async stop(graceMs = 12_000) {
        await api.close();
        if (exited) return exited;
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        const r = await exitPromise;
        clearTimeout(t);
        return r;
      },
      killNow() {
        if (!exited) proc.kill('SIGKILL');
      },
    };
    if (up) return server;
    lastError = exited
      ? new Error(`hooklane exited (${exited.code ?? exited.signal}) while starting: ${output.trim().slice(-2000)}`)
      : new Error(`hooklane did not answer /api/v1/health within ${startTimeoutMs} ms: ${output.trim().slice(-2000)}`);
    server.killNow();
    await Promise.race([exitPromise, sleep(5000)]);
    await api.close();
    if (!/EADDRINUSE/.test(output)) break; // only a lost port race is worth another try
  }
  throw lastError;
}

/**
 * Runs `node dist/cli.js <args>` to completion (e.g. `migrate`) in `dir`
 * with the same environment rules as the server; rejects on a non-zero exit
 * or after `timeoutMs`.
 */
export function runCli({ repoDir, dir, args, env, timeoutMs = 60_000 }) {
  const cli = join(repoDir, 'dist', 'cli.js');
  if (!existsSync(cli)) return Promise.reject(new Error(`${cli} is missing: run npm run build first (npm run bench does)`));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [cli, ...args], { cwd: dir, env: childEnv(env), timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`hooklane ${args.join(' ')} failed (${err.killed ? `killed after ${timeoutMs} ms` : `exit ${err.code ?? err.signal}`}): ${(stderr || stdout).trim().slice(-2000)}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** A small JSON client for /api/v1 on its own pool, separate from the load. */
export function apiClient(origin, token) {
  const pool = new Pool(origin, { connections: 4, headersTimeout: 15_000, bodyTimeout: 15_000, connectTimeout: 5000 });
  return {
    async call(method, path, body) {
      const res = await pool.request({
        path: `/api/v1${path}`,
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.body.text();
      let json = null;
      try {
        json = text === '' ? null : JSON.parse(text);
      } catch {
        json = text;
      }
      return { status: res.statusCode, body: json };
    },
    /** Like call(), but throws unless the status is the expected one. */
    async expect(status, method, path, body) {
      const r = await this.call(method, path, body);
      if (r.status !== status) throw new Error(`${method} ${path}: expected ${status}, got ${r.status} ${JSON.stringify(r.body).slice(0, 500)}`);
      return r.body;
    },
    close: () => pool.close().catch(() => {}),
  };
}
