import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../../src/config.js';
import { startHooklane, type Hooklane } from '../../src/hooklane.js';

export const TEST_TOKEN = 'test-admin-token';
/** HOOKLANE_MAIN_SECRET of test servers (required with PostgreSQL; SQLite would generate one). */
export const TEST_MAIN_SECRET = 'test-main-secret-0123456789abcdefghijklmnop';

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export type Api = <T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<ApiResponse<T>>;

/** A small client for the v1 API; `path` is relative to /api/v1. */
export function apiClient(baseUrl: string, token = TEST_TOKEN): Api {
  return async (method, path, body, headers = {}) => {
    const res = await fetch(`${baseUrl}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      /* not JSON: keep the text */
    }
    return { status: res.status, body: parsed as any, headers: res.headers };
  };
}

export function tempDir(prefix = 'hooklane-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Settings for tests: loopback allowed, a short retry schedule, quiet logs. */
export function testConfig(dir: string, overrides: Partial<Config> = {}): Config {
  return loadConfig(
    {
      host: '127.0.0.1',
      port: 0,
      databaseUrl: `sqlite:${join(dir, 'hooklane.db')}`,
      apiToken: TEST_TOKEN,
      mainSecret: TEST_MAIN_SECRET,
      allowedSubnets: ['127.0.0.0/8', '::1/128'],
      retrySchedule: [0.2, 0.4],
      requestTimeoutMs: 5000,
      logLevel: 'silent',
      pollIntervalMs: 50,
      ...overrides,
    },
    {},
  );
}

export interface TestServer {
  hl: Hooklane;
  url: string;
  api: Api;
  dir: string;
  close(): Promise<void>;
}

/** Starts a real Hooklane in this process on a fresh SQLite file. */
export async function startServer(overrides: Partial<Config> = {}, dir = tempDir()): Promise<TestServer> {
  const hl = await startHooklane(testConfig(dir, overrides));
  return {
    hl,
    url: hl.url,
    api: apiClient(hl.url),
    dir,
    close: async () => {
      await hl.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ChildServer {
  url: string;
  api: Api;
  proc: ChildProcess;
  output: () => string;
  /** Sends the signal and waits for the process to end. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const ENV_OF: Partial<Record<keyof Config, string>> = {
  databaseUrl: 'HOOKLANE_DATABASE_URL', port: 'HOOKLANE_PORT', retrySchedule: 'HOOKLANE_RETRY_SCHEDULE', requestTimeoutMs: 'HOOKLANE_REQUEST_TIMEOUT_MS',
  endpointConcurrency: 'HOOKLANE_ENDPOINT_CONCURRENCY', deliveryConcurrency: 'HOOKLANE_DELIVERY_CONCURRENCY',
};

/**
 * Starts `hooklane serve` as a separate process (from the TypeScript source
 * via tsx), for tests that kill it. Resolves once /health answers.
 */
export async function spawnServer(dir: string, port: number, env: Record<string, string> = {}): Promise<ChildServer> {
  return spawnServerWith(dir, port, env, []);
}

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

/** spawnServer with extra arguments after `serve` (e.g. `--role worker`). */
/** The compiled CLI (`npm run build`), for tests of what only the build does (the delivery thread). */
export const BUILT_CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export async function spawnServerWith(
  dir: string,
  port: number,
  env: Record<string, string>,
  args: string[],
  opts: { built?: boolean } = {},
): Promise<ChildServer> {
  const command = opts.built ? [BUILT_CLI, 'serve', ...args] : ['--import', 'tsx', CLI, 'serve', ...args];
  const proc = spawn(process.execPath, command, {
    env: {
      ...process.env,
      HOOKLANE_HOST: '127.0.0.1',
      HOOKLANE_PORT: String(port),
      [ENV_OF.databaseUrl!]: `sqlite:${join(dir, 'hooklane.db')}`,
      HOOKLANE_API_TOKEN: TEST_TOKEN,
      HOOKLANE_MAIN_SECRET: TEST_MAIN_SECRET,
      HOOKLANE_ALLOWED_SUBNETS: '127.0.0.0/8,::1/128',
      HOOKLANE_RETRY_SCHEDULE: '0.2,0.4',
      HOOKLANE_POLL_INTERVAL_MS: '50',
      HOOKLANE_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`hooklane exited with ${proc.exitCode}: ${out}`);
    try {
      const r = await fetch(`${url}/api/v1/health`);
      if (r.status === 204) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`hooklane did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    api: apiClient(url),
    proc,
    output: () => out,
    kill: (signal = 'SIGKILL') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill(signal);
      }),
  };
}

/** Runs a `hooklane` command to its end (e.g. `migrate`); resolves with its exit code and output. */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout!.on('data', (d) => (output += d));
    proc.stderr!.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`hooklane ${args.join(' ')} did not finish in ${timeoutMs} ms: ${output}`));
    }, timeoutMs);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Polls `check` until it returns a truthy value or the time runs out. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
