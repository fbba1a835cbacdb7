import { readFileSync, existsSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { loadTls } from './tls.js';

/**
 * All settings, in one place. Order of precedence: defaults, then the config
 * file (`hooklane.config.json` or HOOKLANE_CONFIG), then HOOKLANE_* env.
 * Everything is validated once, here; a bad value stops the start with a
 * message naming the setting.
 */
export interface Config {
  host: string;
  port: number;
  databaseUrl: string;
  /**
   * What this process does: `api` serves the API and never delivers, `worker`
   * delivers and serves only health, `all` both. api and worker need PostgreSQL.
   */
  role: 'all' | 'api' | 'worker';
  /** Bring the schema up to date on start; when false it must already be current (`hooklane migrate`). */
  migrateOnStart: boolean;
  /** PostgreSQL connections in this process's pool. */
  dbPoolSize: number;
  /** PostgreSQL URL for the LISTEN connection (session mode), when databaseUrl goes through a transaction pooler. */
  databaseListenUrl: string | undefined;
  /** On SIGTERM/SIGINT, how long in-flight deliveries get to finish before the process exits. */
  shutdownGraceMs: number;
  apiToken: string | undefined;
  /**
   * Key material for endpoint secrets at rest (AES-256-GCM, key derived with
   * HKDF-SHA256): any high-entropy string of at least 32 characters, e.g.
   * `openssl rand -base64 32`. Required with PostgreSQL; with SQLite, when
   * unset, one is generated into `main-secret.key` next to the database file.
   */
  mainSecret: string | undefined;
  /** Seconds to wait before each retry; its length is the number of retries. */
  retrySchedule: number[];
  allowedSubnets: string[];
  /** Refuse `http:` endpoint URLs: at save time (422) and at delivery (a failed attempt). */
  endpointHttpsOnly: boolean;
  /** The URL clients reach this Hooklane at; endpoints at its origin are refused (no delivery loops). */
  publicUrl: string | undefined;
  requestTimeoutMs: number;
  endpointDisableAfterHours: number;
  logLevel: string;
  logFormat: 'json' | 'pretty';
  /** Also send the `svix-id`, `svix-timestamp`, `svix-signature` headers. */
  svixHeaders: boolean;
  /** Deliveries in flight at once, over all endpoints. */
  deliveryConcurrency: number;
  /** Run outbound HTTP on a worker thread (when running from the compiled build). */
  deliveryThread: boolean;
  /** Deliveries in flight at once to one endpoint, counted across all processes sharing the database. */
  endpointConcurrency: number;
  /** Stored response bodies are cut to this many bytes. */
  maxResponseBytes: number;
  /** Largest API request body; bigger ones are refused with 413. */
  maxPayloadBytes: number;
  /** API requests per second per token (a token bucket); 0 turns the limit off. */
  rateLimitPerSecond: number;
  /** Requests a full bucket holds; 0 means twice rateLimitPerSecond. */
  rateLimitBurst: number;
  /** PEM certificate (chain) file: with tlsKey, the server speaks HTTPS. Both or neither. */
  tlsCert: string | undefined;
  /** PEM private key file of tlsCert. */
  tlsKey: string | undefined;
  /** How long a claimed delivery stays claimed without a heartbeat. */
  leaseMs: number;
  /** Idle poll interval of the dispatcher (it is also woken on new work). */
  pollIntervalMs: number;
  /** Jitter applied to retry delays, as a fraction (0.2 = ±20 %). */
  retryJitter: number;
  /** Scheme of the key generated for a new endpoint: `hmac` (whsec_, v1) or `ed25519` (whsk_, v1a). */
  defaultSignatureType: 'hmac' | 'ed25519';
}

type Parser<T> = (raw: unknown) => T;

const int = (min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> => (raw) => {
  const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`must be an integer between ${min} and ${max}`);
  return n;
};
const num = (min: number, max: number): Parser<number> => (raw) => {
  const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`must be a number between ${min} and ${max}`);
  return n;
};
const str: Parser<string> = (raw) => {
  if (typeof raw !== 'string' || raw.length === 0) throw new Error('must be a non-empty string');
  return raw;
};
const bool: Parser<boolean> = (raw) => {
  if (typeof raw === 'boolean') return raw;
  const s = String(raw).toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  throw new Error('must be true or false');
};
const oneOf = <T extends string>(...values: T[]): Parser<T> => (raw) => {
  if (!values.includes(raw as T)) throw new Error(`must be one of ${values.join(', ')}`);
  return raw as T;
};
const list = <T>(item: Parser<T>): Parser<T[]> => (raw) => {
  const parts = Array.isArray(raw) ? raw : String(raw).split(',').map((s) => s.trim()).filter((s) => s !== '');
  return parts.map((p, i) => {
    try {
      return item(p);
    } catch (e) {
      throw new Error(`item ${i + 1} (${String(p)}) ${(e as Error).message}`);
    }
  });
};
const cidr: Parser<string> = (raw) => {
  const s = String(raw);
  const [addr, bits, extra] = s.split('/');
  const family = isIP(addr ?? '');
  const max = family === 6 ? 128 : 32;
  const n = Number(bits);
  if (!family || extra !== undefined || !Number.isInteger(n) || n < 0 || n > max) {
    throw new Error('must be a CIDR such as 10.0.0.0/8 or ::1/128');
  }
  new BlockList().addSubnet(addr!, n, family === 6 ? 'ipv6' : 'ipv4');
  return s;
};
const databaseUrl: Parser<string> = (raw) => {
  const s = str(raw);
  if (!s.startsWith('sqlite:') && !/^postgres(ql)?:\/\//.test(s)) {
    throw new Error('must start with sqlite: (e.g. sqlite:./data/hooklane.db) or postgres://');
  }
  return s;
};

const httpUrl: Parser<string> = (raw) => {
  const s = str(raw);
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new Error('must be an absolute URL such as https://hooks.example.com');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('must be an http or https URL');
  return s;
};

const postgresUrl: Parser<string> = (raw) => {
  const s = str(raw);
  if (!/^postgres(ql)?:\/\//.test(s)) throw new Error('must start with postgres://');
  return s;
};

const mainSecret: Parser<string> = (raw) => {
  const s = str(raw);
  // Length only: the value is read as key material (HKDF), so it must be random, not a password.
  if (s.length < 32) throw new Error('must be at least 32 characters of random text, e.g. the output of `openssl rand -base64 32`');
  return s;
};

interface Field<K extends keyof Config> {
  env: string;
  parse: Parser<Config[K]>;
  default: Config[K];
}
type Fields = { [K in keyof Config]: Field<K> };

const FIELDS: Fields = {
  host: { env: 'HOOKLANE_HOST', parse: str, default: '0.0.0.0' },
  port: { env: 'HOOKLANE_PORT', parse: int(0, 65535), default: 8071 },
  databaseUrl: { env: 'HOOKLANE_DATABASE_URL', parse: databaseUrl, default: 'sqlite:./data/hooklane.db' },
  role: { env: 'HOOKLANE_ROLE', parse: oneOf('all', 'api', 'worker'), default: 'all' },
  migrateOnStart: { env: 'HOOKLANE_MIGRATE_ON_START', parse: bool, default: true },
  dbPoolSize: { env: 'HOOKLANE_DB_POOL_SIZE', parse: int(1, 10_000), default: 10 },
  databaseListenUrl: { env: 'HOOKLANE_DATABASE_LISTEN_URL', parse: (raw) => (raw === '' ? undefined : postgresUrl(raw)), default: undefined },
  shutdownGraceMs: { env: 'HOOKLANE_SHUTDOWN_GRACE_MS', parse: int(0, 3_600_000), default: 10_000 },
  apiToken: { env: 'HOOKLANE_API_TOKEN', parse: (raw) => (raw === '' ? undefined : str(raw)), default: undefined },
  mainSecret: { env: 'HOOKLANE_MAIN_SECRET', parse: (raw) => (raw === '' ? undefined : mainSecret(raw)), default: undefined },
  retrySchedule: { env: 'HOOKLANE_RETRY_SCHEDULE', parse: list(num(0, 7 * 86400)), default: [5, 300, 1800, 7200, 18000, 36000, 36000] },
  allowedSubnets: { env: 'HOOKLANE_ALLOWED_SUBNETS', parse: list(cidr), default: [] },
  endpointHttpsOnly: { env: 'HOOKLANE_ENDPOINT_HTTPS_ONLY', parse: bool, default: false },
  publicUrl: { env: 'HOOKLANE_PUBLIC_URL', parse: (raw) => (raw === '' ? undefined : httpUrl(raw)), default: undefined },
  requestTimeoutMs: { env: 'HOOKLANE_REQUEST_TIMEOUT_MS', parse: int(100, 600_000), default: 15_000 },
  endpointDisableAfterHours: { env: 'HOOKLANE_ENDPOINT_DISABLE_AFTER_HOURS', parse: num(0, 24 * 365), default: 120 },
  logLevel: { env: 'HOOKLANE_LOG_LEVEL', parse: oneOf('trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'), default: 'info' },
  logFormat: { env: 'HOOKLANE_LOG_FORMAT', parse: oneOf('json', 'pretty'), default: 'json' },
  svixHeaders: { env: 'HOOKLANE_SVIX_HEADERS', parse: bool, default: false },
  deliveryConcurrency: { env: 'HOOKLANE_DELIVERY_CONCURRENCY', parse: int(1, 100_000), default: 512 },
  deliveryThread: { env: 'HOOKLANE_DELIVERY_THREAD', parse: bool, default: true },
  endpointConcurrency: { env: 'HOOKLANE_ENDPOINT_CONCURRENCY', parse: int(1, 10_000), default: 64 },
  maxResponseBytes: { env: 'HOOKLANE_MAX_RESPONSE_BYTES', parse: int(0, 10_000_000), default: 20_480 },
  maxPayloadBytes: { env: 'HOOKLANE_MAX_PAYLOAD_BYTES', parse: int(1024, 100 * 1024 * 1024), default: 1024 * 1024 },
  rateLimitPerSecond: { env: 'HOOKLANE_RATE_LIMIT_PER_SECOND', parse: int(0, 10_000_000), default: 5000 },
  rateLimitBurst: { env: 'HOOKLANE_RATE_LIMIT_BURST', parse: int(0, 100_000_000), default: 0 },
  tlsCert: { env: 'HOOKLANE_TLS_CERT', parse: (raw) => (raw === '' ? undefined : str(raw)), default: undefined },
  tlsKey: { env: 'HOOKLANE_TLS_KEY', parse: (raw) => (raw === '' ? undefined : str(raw)), default: undefined },
  leaseMs: { env: 'HOOKLANE_LEASE_MS', parse: int(1000, 3_600_000), default: 60_000 },
  pollIntervalMs: { env: 'HOOKLANE_POLL_INTERVAL_MS', parse: int(5, 60_000), default: 500 },
  retryJitter: { env: 'HOOKLANE_RETRY_JITTER', parse: num(0, 0.9), default: 0.2 },
  defaultSignatureType: { env: 'HOOKLANE_DEFAULT_SIGNATURE_TYPE', parse: oneOf('hmac', 'ed25519'), default: 'hmac' },
};

export class ConfigError extends Error {}

/** Settings whose values are credentials: never echoed in errors or logs. */
const SECRET_SETTINGS = new Set<keyof Config>(['apiToken', 'mainSecret']);

function readFile(path: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`config file ${path}: ${(e as Error).message}`);
  }
}

/**
 * Build the configuration. `overrides` (used by tests and the CLI) win over
 * the environment, which wins over the file, which wins over the defaults.
 */
export function loadConfig(overrides: Partial<Config> = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const filePath = env.HOOKLANE_CONFIG ?? (existsSync('hooklane.config.json') ? 'hooklane.config.json' : undefined);
  const file = filePath ? readFile(filePath) : {};
  for (const key of Object.keys(file)) {
    if (!(key in FIELDS)) throw new ConfigError(`config file ${filePath}: unknown setting "${key}"`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(FIELDS) as [keyof Config, Field<keyof Config>][]) {
    let source: string | undefined;
    let raw: unknown;
    if (key in overrides) {
      out[key] = overrides[key];
      continue;
    } else if (env[field.env] !== undefined) {
      [source, raw] = [field.env, env[field.env]];
    } else if (key === 'databaseUrl' && env.DATABASE_URL !== undefined) {
      [source, raw] = ['DATABASE_URL', env.DATABASE_URL];
    } else if (key in file) {
      [source, raw] = [`${key} in ${filePath}`, file[key]];
    } else {
      out[key] = field.default;
      continue;
    }
    try {
      out[key] = field.parse(raw);
    } catch (e) {
      // Secrets are named, never echoed.
      const shown = SECRET_SETTINGS.has(key) ? '(hidden)' : JSON.stringify(raw);
      throw new ConfigError(`invalid setting ${source}=${shown}: ${(e as Error).message}`);
    }
  }
  const config = out as unknown as Config;
  checkCombination(config);
  checkTls(config);
  return config;
}

/** Rules that involve several settings. */
function checkCombination(c: Config): void {
  if (c.role !== 'all' && c.databaseUrl.startsWith('sqlite:')) {
    throw new ConfigError(
      `invalid setting HOOKLANE_ROLE=${c.role}: roles api and worker need PostgreSQL (HOOKLANE_DATABASE_URL=postgres://…); ` +
        'the embedded SQLite engine is single-process, so its one process must both serve and deliver (HOOKLANE_ROLE=all)',
    );
  }
}

/** HOOKLANE_TLS_CERT and HOOKLANE_TLS_KEY: both or neither, readable, and a matching pair. */
function checkTls(c: Config): void {
  try {
    loadTls(c.tlsCert, c.tlsKey);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}
