#!/usr/bin/env node
import { Command, Option } from 'commander';
import { tokenCommands } from './auth/token-commands.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { startHooklane } from './hooklane.js';
import { openStore } from './store/open.js';
import { VERSION } from './version.js';

const program = new Command('hooklane').description('Self-hosted webhooks: send, receive and verify').version(VERSION);

function config(overrides: Partial<Config> = {}): Config {
  try {
    return loadConfig(overrides);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`hooklane: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

program
  .command('serve')
  .description('run the API and the delivery workers')
  .option('--port <port>', 'listen port (HOOKLANE_PORT)')
  .option('--host <host>', 'listen address (HOOKLANE_HOST)')
  .addOption(new Option('--role <role>', 'api: serve the API only; worker: deliver only (and serve health); all: both (HOOKLANE_ROLE)').choices(['all', 'api', 'worker']))
  .option('--no-migrate', 'do not migrate the schema on start; it must be current (HOOKLANE_MIGRATE_ON_START=false)')
  .action(async (opts: { port?: string; host?: string; role?: string; migrate: boolean }) => {
    if (opts.port) process.env.HOOKLANE_PORT = opts.port;
    if (opts.host) process.env.HOOKLANE_HOST = opts.host;
    if (opts.role) process.env.HOOKLANE_ROLE = opts.role;
    if (!opts.migrate) process.env.HOOKLANE_MIGRATE_ON_START = 'false';
    const c = config();
    const hl = await startHooklane(c).catch((e: unknown) => {
      if (!(e instanceof ConfigError)) throw e;
      process.stderr.write(`hooklane: ${e.message}\n`);
      process.exit(2);
    });
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) {
        hl.log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      hl.log.info({ signal, graceMs: c.shutdownGraceMs }, 'shutting down: no new deliveries, waiting for those in flight');
      // A last resort should anything hang past the grace period.
      setTimeout(() => {
        hl.log.error({ graceMs: c.shutdownGraceMs }, 'shutdown did not finish in time; exiting');
        process.exit(1);
      }, c.shutdownGraceMs + 1000).unref();
      await hl.close();
      hl.log.info('shut down');
      process.exit(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
  });

program
  .command('migrate')
  .description('bring the database schema up to date, then exit')
  .action(async () => {
    const c = config();
    const store = await openStore(c.databaseUrl, { migrate: true, applicationName: 'hooklane:migrate' });
    await store.close();
    process.stdout.write(`database ${c.databaseUrl.split('?')[0]} is up to date\n`);
  });

tokenCommands(program, config);

program.parseAsync().catch((e: unknown) => {
  process.stderr.write(`hooklane: ${(e as Error).message}\n`);
  process.exit(1);
});
