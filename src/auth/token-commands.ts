import type { Command } from 'commander';
import type { Config } from '../config.js';
import { openStore } from '../store/open.js';
import type { ApiTokenRow, Store } from '../store/types.js';
import { createToken } from './tokens.js';

/**
 * `hooklane token create|list|revoke`: API tokens, straight on the database
 * (no server needed). Tokens touch no endpoint secrets, so the store is
 * opened without the main secret.
 */
export function tokenCommands(program: Command, config: () => Config): void {
  const token = program.command('token').description('manage API tokens (admin, or scoped to one application)');

  const withStore = async <T>(fn: (store: Store) => Promise<T>): Promise<T> => {
    const c = config();
    const store = await openStore(c.databaseUrl, { applicationName: 'hooklane:token', poolSize: 1 });
    try {
      return await fn(store);
    } finally {
      await store.close();
    }
  };
  const fail = (message: string): never => {
    process.stderr.write(`hooklane: ${message}\n`);
    process.exit(1);
  };

  token
    .command('create')
    .description('create a token and print it (once: only its hash is stored)')
    .option('--name <name>', 'what the token is for', 'api token')
    .option('--app <app>', 'scope the token to this application (id or uid); without it the token is an admin token')
    .action(async (opts: { name: string; app?: string }) => {
      await withStore(async (store) => {
        let appId: string | null = null;
        if (opts.app !== undefined) {
          const app = await store.findApp(opts.app);
          if (!app) return fail(`no application ${JSON.stringify(opts.app)}`);
          appId = app.id;
        }
        const { token: text, row } = await createToken(store, { name: opts.name, appId });
        // The token alone on stdout (for `TOKEN=$(hooklane token create …)`); the rest on stderr.
        process.stderr.write(`created ${row.id} (${scope(row)}); the token is shown once:\n`);
        process.stdout.write(`${text}\n`);
      });
    });

  token
    .command('list')
    .description('list tokens (never their text)')
    .option('--json', 'one JSON object per line')
    .action(async (opts: { json?: boolean }) => {
      await withStore(async (store) => {
        const rows = await store.listTokens();
        if (opts.json) {
          for (const r of rows) process.stdout.write(JSON.stringify({ id: r.id, name: r.name, scope: scope(r), appId: r.appId, createdAt: iso(r.createdAt), lastUsedAt: iso(r.lastUsedAt), revokedAt: iso(r.revokedAt) }) + '\n');
          return;
        }
        const table = [['ID', 'NAME', 'SCOPE', 'CREATED', 'LAST USED', 'REVOKED'], ...rows.map((r) => [r.id, r.name, scope(r), iso(r.createdAt), iso(r.lastUsedAt) ?? '-', iso(r.revokedAt) ?? '-'])];
        const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => String(row[i]).length)));
        for (const row of table) process.stdout.write(row.map((cell, i) => String(cell).padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
      });
    });

  token
    .command('revoke')
    .description('revoke a token by id; running servers stop accepting it within seconds')
    .argument('<id>', 'token id (tok_…), as shown by `hooklane token list`')
    .action(async (id: string) => {
      await withStore(async (store) => {
        if (!(await store.revokeToken(id, Date.now()))) return fail(`no token ${JSON.stringify(id)}`);
        process.stdout.write(`revoked ${id}\n`);
      });
    });
}

const scope = (r: ApiTokenRow) => (r.appId === null ? 'admin' : `app:${r.appId}`);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
