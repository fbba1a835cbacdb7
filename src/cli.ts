#!/usr/bin/env node
import { Command } from 'commander';
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
  .action(async (opts: { port?: string; host?: string }) => {
    if (opts.port) process.env.HOOKLANE_PORT = opts.port;
    if (opts.host) process.env.HOOKLANE_HOST = opts.host;
    const hl = await startHooklane(config());
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      hl.log.info({ signal }, 'shutting down');
      await hl.close();
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
    const store = await openStore(c.databaseUrl);
    await store.close();
    process.stdout.write(`database ${c.databaseUrl.split('?')[0]} is up to date\n`);
  });

program.parseAsync().catch((e: unknown) => {
  process.stderr.write(`hooklane: ${(e as Error).message}\n`);
  process.exit(1);
});
