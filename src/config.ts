import { readFileSync, existsSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';

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
  apiToken: string | undefined;
  /** Seconds to wait before each retry; its length is the number of retries. */
  retrySchedule: number[];
  allowedSubnets: string[];
  requestTimeoutMs: number;
  endpointDisableAfterHours: number;
  logLevel: string;
  logFormat: 'json' | 'pretty';
  /** Also send the `svix-id`, `svix-timestamp`, `svix-signature` headers. */
  svixHeaders: boolean;
  /** Deliveries in flight at once, over all endpoints. */
  deliveryConcurrency: number;
  /** Deliveries in flight at once to one endpoint. */
  endpointConcurrency: number;
  /** Stored response bodies are cut to this many bytes. */
  maxResponseBytes: number;
  /** How long a claimed delivery stays claimed without a heartbeat. */
  leaseMs: number;
  /** Idle poll interval of the dispatcher (it is also woken on new work). */
  pollIntervalMs: number;
  /** Jitter applied to retry delays, as a fraction (0.2 = ±20 %). */
  retryJitter: number;
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
  apiToken: { env: 'HOOKLANE_API_TOKEN', parse: (raw) => (raw === '' ? undefined : str(raw)), default: undefined },
  retrySchedule: { env: 'HOOKLANE_RETRY_SCHEDULE', parse: list(num(0, 7 * 86400)), default: [5, 300, 1800, 7200, 18000, 36000, 36000] },
  allowedSubnets: { env: 'HOOKLANE_ALLOWED_SUBNETS', parse: list(cidr), default: [] },
  requestTimeoutMs: { env: 'HOOKLANE_REQUEST_TIMEOUT_MS', parse: int(100, 600_000), default: 15_000 },
  endpointDisableAfterHours: { env: 'HOOKLANE_ENDPOINT_DISABLE_AFTER_HOURS', parse: num(0, 24 * 365), default: 120 },
  logLevel: { env: 'HOOKLANE_LOG_LEVEL', parse: oneOf('trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'), default: 'info' },
  logFormat: { env: 'HOOKLANE_LOG_FORMAT', parse: oneOf('json', 'pretty'), default: 'json' },
  svixHeaders: { env: 'HOOKLANE_SVIX_HEADERS', parse: bool, default: false },
  deliveryConcurrency: { env: 'HOOKLANE_DELIVERY_CONCURRENCY', parse: int(1, 100_000), default: 512 },
  endpointConcurrency: { env: 'HOOKLANE_ENDPOINT_CONCURRENCY', parse: int(1, 10_000), default: 64 },
  maxResponseBytes: { env: 'HOOKLANE_MAX_RESPONSE_BYTES', parse: int(0, 10_000_000), default: 20_480 },
  leaseMs: { env: 'HOOKLANE_LEASE_MS', parse: int(1000, 3_600_000), default: 60_000 },
  pollIntervalMs: { env: 'HOOKLANE_POLL_INTERVAL_MS', parse: int(5, 60_000), default: 500 },
  retryJitter: { env: 'HOOKLANE_RETRY_JITTER', parse: num(0, 0.9), default: 0.2 },
};

export class ConfigError extends Error {}

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
      throw new ConfigError(`invalid setting ${source}=${JSON.stringify(raw)}: ${(e as Error).message}`);
    }
  }
  return out as unknown as Config;
}

/** The settings table for docs: env name, default. */
export function describeSettings(): { key: string; env: string; default: unknown }[] {
  return Object.entries(FIELDS).map(([key, f]) => ({ key, env: f.env, default: f.default }));
}
