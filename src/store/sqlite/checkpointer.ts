import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * WAL checkpoints on a thread of their own. SQLite's automatic checkpoint
 * runs inside whichever commit crosses the threshold, on the event loop,
 * copying pages and fsyncing the database file: a stall of many
 * milliseconds for the requests behind it. Here a worker thread with its own
 * connection checkpoints in PASSIVE mode (writers carry on meanwhile), and
 * the main connection's automatic checkpoint is turned off.
 */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 2000');
let busy = false;
const run = (mode) => {
  if (busy) return;
  busy = true;
  try { db.pragma('wal_checkpoint(' + mode + ')'); } catch (e) { parentPort.postMessage({ error: String(e && e.message || e) }); }
  busy = false;
};
const timer = setInterval(() => run('PASSIVE'), workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  run('PASSIVE');
  db.close();
  parentPort.postMessage({ stopped: true });
});
`;

export class Checkpointer {
  private readonly worker: Worker;

  constructor(path: string, intervalMs = 200, onError: (message: string) => void = () => {}) {
    const module = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER, { eval: true, workerData: { module, path, intervalMs } });
    this.worker.on('message', (m: { error?: string }) => m.error && onError(m.error));
    this.worker.on('error', (e) => onError(e.message));
    // Never keeps the process alive on its own.
    this.worker.unref();
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2000);
      this.worker.once('message', () => (clearTimeout(t), resolve()));
      this.worker.once('exit', () => (clearTimeout(t), resolve()));
      this.worker.postMessage('stop');
    });
    await this.worker.terminate();
  }
}
