import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import type { Config } from './config.js';
import { Dispatcher } from './delivery/dispatcher.js';
import { Outbox } from './delivery/outbox.js';
import { buildServer } from './server.js';
import { openStore } from './store/open.js';
import type { Store } from './store/types.js';

/** One running Hooklane: store, dispatcher, HTTP server. */
export interface Hooklane {
  config: Config;
  store: Store;
  log: Logger;
  outbox: Outbox;
  dispatcher: Dispatcher | null;
  server: FastifyInstance;
  /** Base URL the server listens on, e.g. http://127.0.0.1:8071 */
  url: string;
  checkToken(token: string): boolean;
  close(): Promise<void>;
}

export function createLogger(config: Config): Logger {
  if (config.logFormat === 'pretty') {
    return pino({ level: config.logLevel, transport: { target: 'pino-pretty', options: { destination: 2 } } });
  }
  return pino({ level: config.logLevel }, pino.destination(2));
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();
const TOKEN_SETTING = 'admin_token_sha256';

/**
 * The admin token: HOOKLANE_API_TOKEN when set; otherwise one generated on
 * the first start, returned once to be printed, and stored only as a hash.
 */
async function adminTokenHash(store: Store, config: Config): Promise<{ hash: Buffer; generated: string | null }> {
  if (config.apiToken) return { hash: sha256(config.apiToken), generated: null };
  const stored = await store.getSetting(TOKEN_SETTING);
  if (stored) return { hash: Buffer.from(stored, 'hex'), generated: null };
  const token = 'hl_' + randomBytes(24).toString('base64url');
  const hash = sha256(token);
  await store.setSetting(TOKEN_SETTING, hash.toString('hex'));
  return { hash, generated: token };
}

export interface StartOptions {
  /** Run the dispatcher in this process (default true). */
  deliver?: boolean;
  logger?: Logger;
  /** Called with a freshly generated admin token, once. */
  onGeneratedToken?: (token: string) => void;
}

export async function startHooklane(config: Config, opts: StartOptions = {}): Promise<Hooklane> {
  const log = opts.logger ?? createLogger(config);
  const store = await openStore(config.databaseUrl);
  const { hash, generated } = await adminTokenHash(store, config);
  if (generated) {
    if (opts.onGeneratedToken) opts.onGeneratedToken(generated);
    else process.stdout.write(`\nAdmin API token (shown once, only its hash is stored):\n\n  ${generated}\n\n`);
  }
  const dispatcher = opts.deliver === false ? null : new Dispatcher(store, config, log);
  const outbox = new Outbox(store, () => dispatcher?.wake());
  const hl: Hooklane = {
    config,
    store,
    log,
    outbox,
    dispatcher,
    server: undefined as unknown as FastifyInstance,
    url: '',
    checkToken: (token) => {
      const given = sha256(token);
      return timingSafeEqual(given, hash);
    },
    close: async () => {
      await hl.server.close();
      await dispatcher?.stop();
      await store.close();
    },
  };
  hl.server = await buildServer(hl);
  const address = await hl.server.listen({ host: config.host, port: config.port });
  hl.url = address.replace('[::]', '127.0.0.1').replace('0.0.0.0', '127.0.0.1');
  await dispatcher?.start();
  log.info({ url: hl.url, engine: store.engine }, 'hooklane listening');
  return hl;
}
