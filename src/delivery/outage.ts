import type { Logger } from 'pino';
import { isDatabaseUnavailable } from '../store/unavailable.js';

/**
 * Logs a database outage once rather than once per failed operation: the
 * first failure that means "unreachable" is a warning, later ones are quiet
 * (debug) until an operation succeeds again, which is logged with the length
 * of the outage. Other errors are logged every time: they are bugs, not
 * weather.
 */
export class OutageLog {
  private since: number | null = null;

  constructor(private readonly log: Logger) {}

  get down(): boolean {
    return this.since !== null;
  }

  /** Logs a failed operation; returns whether it failed because the database is unreachable. */
  failed(what: string, err: unknown): boolean {
    if (!isDatabaseUnavailable(err)) {
      this.log.error({ err }, what);
      return false;
    }
    if (this.since === null) {
      this.since = Date.now();
      this.log.warn({ op: what, reason: (err as Error).message }, 'database unavailable: delivery paused, retrying with backoff');
    } else {
      this.log.debug({ op: what, reason: (err as Error).message }, 'database still unavailable');
    }
    return true;
  }

  /** An operation succeeded: ends the outage, if any. */
  ok(): void {
    if (this.since === null) return;
    this.log.info({ downMs: Date.now() - this.since }, 'database available again: delivery resumed');
    this.since = null;
  }
}
