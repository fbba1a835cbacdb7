import pg from 'pg';
import { WORK_CHANNEL } from './db.js';

export const LISTENER_APPLICATION_NAME = 'hooklane:listen';

/**
 * LISTENs for work on a dedicated connection (a pooled one would be handed
 * to other queries and lose the subscription). When the connection drops it
 * reconnects with capped exponential backoff, and calls `onWork` once
 * reconnected, since notifications sent meanwhile are lost. The first
 * connection's failure is the caller's; later ones are retried forever.
 */
export async function listenForWork(config: pg.ClientConfig, onWork: () => void): Promise<() => Promise<void>> {
  let stopped = false;
  let current: pg.Client | null = null;
  let timer: NodeJS.Timeout | null = null;
  let delay = 0;

  const connect = async (): Promise<void> => {
    const client = new pg.Client({ ...config, keepAlive: true, application_name: LISTENER_APPLICATION_NAME });
    client.on('notification', (n) => {
      if (n.channel === WORK_CHANNEL) onWork();
    });
    client.on('error', () => {
      /* followed by 'end', which reconnects */
    });
    client.on('end', () => {
      if (current !== client) return;
      current = null;
      retry();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${WORK_CHANNEL}`);
    } catch (e) {
      await client.end().catch(() => {});
      throw e;
    }
    if (stopped) {
      await client.end().catch(() => {});
      return;
    }
    current = client;
    delay = 0;
  };

  const retry = (): void => {
    if (stopped || timer) return;
    delay = Math.min(Math.max(delay * 2, 250), 10_000);
    timer = setTimeout(() => {
      timer = null;
      connect().then(
        () => !stopped && onWork(),
        () => retry(),
      );
    }, delay * (0.8 + Math.random() * 0.4));
    timer.unref();
  };

  await connect();
  return async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    timer = null;
    const client = current;
    current = null;
    if (client) await client.end().catch(() => {});
  };
}
