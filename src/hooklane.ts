import type { FastifyInstance } from 'fastify';
import pino, { type DestinationStream, type Logger } from 'pino';
import { openSecureStore } from './auth/main-secret.js';
import { LOG_REDACT } from './auth/redact.js';
import { TokenAuthenticator, bootstrapAdminToken } from './auth/tokens.js';
import { ConfigError, type Config } from './config.js';
import { Dispatcher } from './delivery/dispatcher.js';
import { Outbox } from './delivery/outbox.js';
import { buildServer } from './server.js';
import type { Store } from './store/types.js';
import { buildWorkerServer } from './worker-server.js';

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
  /** Checks bearer tokens (src/auth/tokens.ts). */
  tokens: TokenAuthenticator;
  close(): Promise<void>;
}

/** Tokens, authorization headers and secrets are redacted (src/auth/redact.ts). `destination`: tests capture output. */
export function createLogger(config: Config, destination?: DestinationStream): Logger {
  if (config.logFormat === 'pretty' && !destination) {
    return pino({ level: config.logLevel, redact: LOG_REDACT, transport: { target: 'pino-pretty', options: { destination: 2 } } });
  }
  return pino({ level: config.logLevel, redact: LOG_REDACT }, destination ?? pino.destination(2));
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
  // Endpoint secrets are sealed with HOOKLANE_MAIN_SECRET; a wrong key stops the start here.
  const store = await openSecureStore(config, log, {
    migrate: config.migrateOnStart,
    poolSize: config.dbPoolSize,
    listenUrl: config.databaseListenUrl,
    applicationName: `hooklane:${config.role}`,
    backgroundCheckpoint: true,
  });
  if (config.role !== 'all' && store.capabilities.singleProcess) {
    await store.close();
    throw new ConfigError(`invalid setting HOOKLANE_ROLE=${config.role}: the ${store.engine} engine is single-process; use HOOKLANE_ROLE=all, or PostgreSQL`);
  }
  // A worker serves no API: it needs no admin token, and must not be the one to print a generated one.
  const servesApi = config.role !== 'worker';
  const generated = servesApi ? await bootstrapAdminToken(store, config.apiToken) : null;
  if (generated) {
    if (opts.onGeneratedToken) opts.onGeneratedToken(generated);
    else process.stdout.write(`\nAdmin API token (shown once, only its hash is stored):\n\n  ${generated}\n\n`);
  }
  const deliver = opts.deliver ?? config.role !== 'api';
  const dispatcher = deliver ? new Dispatcher(store, config, log) : null;
  const outbox = new Outbox(store, dispatcher, config.leaseMs);
  const hl: Hooklane = {
    config,
    store,
    log,
    outbox,
    dispatcher,
    server: undefined as unknown as FastifyInstance,
    url: '',
    tokens: new TokenAuthenticator(store, config.apiToken, log),
    close: async () => {
      // The HTTP server (requests in progress) and the dispatcher (deliveries in flight) wind
      // down side by side within the grace period; the store they both use closes last.
      const grace = config.shutdownGraceMs;
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          log.warn('requests still in progress at the end of the grace period');
          resolve();
        }, grace);
      });
      const serverClosed = Promise.race([hl.server.close(), graceOver]).finally(() => clearTimeout(timer));
      await Promise.all([serverClosed, dispatcher?.stop(grace)]);
      await store.close();
    },
  };
  hl.server = servesApi ? await buildServer(hl) : await buildWorkerServer(hl);
  const address = await hl.server.listen({ host: config.host, port: config.port });
  hl.url = address.replace('[::]', '127.0.0.1').replace('0.0.0.0', '127.0.0.1');
  await dispatcher?.start();
  log.info({ url: hl.url, engine: store.engine, role: config.role, delivering: dispatcher !== null }, 'hooklane listening');
  return hl;
}
