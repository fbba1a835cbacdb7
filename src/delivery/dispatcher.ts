import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { decide, type RetryPolicy } from '../domain/retry.js';
import { newId } from '../ids.js';
import { Status, Trigger, type AttemptResult, type ClaimOptions, type ClaimedDelivery, type Store } from '../store/types.js';
import { deliveryHeaders } from './headers.js';
import { HttpClient } from './http.js';
import { httpThreadAvailable, ThreadedHttpClient, type Poster } from './http-thread.js';
import { OutageLog } from './outage.js';
import { AddressPolicy } from './ssrf.js';

/**
 * Claims due deliveries, POSTs them, records the outcome. Concurrency is
 * capped overall and per endpoint (the per-endpoint cap across all processes:
 * the claim counts every process's leases); a slow endpoint fills only its own slots,
 * and the claim skips endpoints with no free slot, so it never holds up the
 * rest. Outcomes are written in batches (group commit).
 */
export class Dispatcher {
  private readonly http: Poster;
  private readonly policy: RetryPolicy;
  private readonly perEndpoint = new Map<string, number>();
  private inFlight = 0;
  private running = false;
  private claiming = false;
  private rerun = false;
  private timer: NodeJS.Timeout | null = null;
  private reclaimTimer: NodeJS.Timeout | null = null;
  /** Outcomes waiting for the next batched write, each with the resolver of its record() call. */
  private pending: { result: AttemptResult; written: () => void }[] = [];
  private flushing: Promise<void> | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  /** Consecutive failed writes of outcomes, and claim rounds: the backoff. */
  private flushFailures = 0;
  private claimFailures = 0;
  /** Set at the end of stop(): outcomes are written once more, not retried. */
  private finishing = false;
  /** Deliveries whose HTTP request is under way. */
  private readonly sending = new Set<number>();
  /** Handed back at shutdown while still being sent: their late outcome is not recorded. */
  private readonly abandoned = new Set<number>();
  private readonly outage: OutageLog;
  private stopped: Promise<void> | null = null;
  private idle: (() => void)[] = [];
  /** Lease owner id of this dispatcher: unique per process and start. */
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  /** Deliveries this dispatcher holds a lease on, renewed by the heartbeat. */
  private readonly leased = new Set<number>();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private unwatch: (() => Promise<void>) | null = null;
  private listenTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.http = outboundClient(config, log);
    this.policy = { schedule: config.retrySchedule, jitter: config.retryJitter };
    this.outage = new OutageLog(log);
  }

  async start(): Promise<void> {
    this.running = true;
    this.log.info({ httpThread: this.http instanceof ThreadedHttpClient }, 'delivery starting');
    // With one process per database, anything still leased was orphaned by a crash.
    try {
      const orphans = await this.store.reclaimExpired(this.store.capabilities.singleProcess ? Number.MAX_SAFE_INTEGER : Date.now());
      if (orphans > 0) this.log.info({ orphans }, 'requeued deliveries left in flight by a previous run');
    } catch (e) {
      // The database dropping out now is not fatal: the reclaim timer below tries again.
      if (!this.outage.failed('requeuing deliveries left in flight failed', e)) throw e;
    }
    this.reclaimTimer = setInterval(() => {
      this.store.reclaimExpired(Date.now()).then(
        (n) => {
          this.outage.ok();
          if (n > 0) this.wake();
        },
        (e) => this.outage.failed('reclaiming expired leases failed', e),
      );
    }, Math.max(1000, Math.floor(this.config.leaseMs / 4)));
    this.reclaimTimer.unref();
    // Heartbeat: a slow attempt keeps its lease, so no other worker reclaims it meanwhile.
    this.heartbeatTimer = setInterval(() => this.heartbeat(), Math.max(100, Math.floor(this.config.leaseMs / 3)));
    this.heartbeatTimer.unref();
    // Other processes writing work wake this one without waiting for the poll.
    if (this.store.capabilities.notifications && this.store.watchWork) await this.listen(0);
    this.wake();
  }

  /** Subscribes to new-work notifications. While that fails (database down) polling carries on, and it is retried. */
  private async listen(failures: number): Promise<void> {
    this.listenTimer = null;
    try {
      const unwatch = await this.store.watchWork!(() => this.wake());
      if (!this.running) {
        await unwatch();
        return;
      }
      this.unwatch = unwatch;
      if (failures > 0) this.wake(); // notifications were missed meanwhile
    } catch (e) {
      const outage = this.outage.failed('listening for new work failed', e);
      if (!outage && failures === 0) throw e;
      if (this.running) this.listenTimer = setTimeout(() => void this.listen(failures + 1), backoff(500, failures + 1));
    }
  }

  private heartbeat(): void {
    if (this.leased.size === 0) return;
    const ids = [...this.leased];
    this.store.extendLeases(this.owner, ids, Date.now() + this.config.leaseMs).then(
      (n) => {
        this.outage.ok();
        if (n < ids.length) this.log.debug({ lost: ids.length - n }, 'some leases were no longer held');
      },
      (e) => this.outage.failed('extending leases failed', e),
    );
  }

  /** Ask for a claim round soon (new work was written). */
  wake(): void {
    if (!this.running) return;
    if (this.claiming) {
      this.rerun = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.claimRound(), 0);
  }

  private slots = (endpointId: string): number => this.config.endpointConcurrency - (this.perEndpoint.get(endpointId) ?? 0);

  /** Endpoints reported unreadable, logged once each until one of their deliveries is claimed again. */
  private readonly unreadable = new Set<string>();

  /**
   * What every claim asks of the store besides `slots` (this process's
   * share): endpointConcurrency across all processes, and endpoints whose row
   * cannot be read skipped and reported rather than failing the whole claim.
   */
  private claimOptions(): ClaimOptions {
    return { endpointCap: this.config.endpointConcurrency, onUnreadableEndpoint: this.onUnreadable };
  }

  private readonly onUnreadable = (endpointId: string, error: unknown): void => {
    if (this.unreadable.has(endpointId)) return;
    this.unreadable.add(endpointId);
    this.log.error(
      { endpointId, err: error },
      'endpoint cannot be read (its sealed secrets do not open: altered, or sealed under another HOOKLANE_MAIN_SECRET); its deliveries stay pending',
    );
  };

  private async claimRound(): Promise<void> {
    this.timer = null;
    if (!this.running || this.claiming) return;
    this.claiming = true;
    let claimed: ClaimedDelivery[] = [];
    let failed = false;
    try {
      const room = this.config.deliveryConcurrency - this.inFlight;
      if (room > 0) {
        claimed = await this.store.claimDue(this.owner, Date.now(), room, this.config.leaseMs, this.slots, this.claimOptions());
        this.outage.ok();
        this.claimFailures = 0;
        for (const c of claimed) this.send(c);
      }
    } catch (e) {
      failed = true;
      this.claimFailures++;
      this.outage.failed('claiming deliveries failed', e);
    } finally {
      this.claiming = false;
    }
    if (!this.running) return;
    if (failed) {
      // Back off (database down, or a bug); new work or a reconnected listener still wakes us at once.
      this.rerun = false;
      const base = Math.min(Math.max(this.config.pollIntervalMs, 100), 1000);
      if (!this.timer) this.timer = setTimeout(() => void this.claimRound(), backoff(base, this.claimFailures));
      return;
    }
    if (this.rerun || claimed.length > 0) {
      this.rerun = false;
      // More may be due; completions also wake us.
      if (this.inFlight < this.config.deliveryConcurrency) this.wake();
      return;
    }
    await this.sleepUntilDue();
  }

  private async sleepUntilDue(): Promise<void> {
    let delay = this.config.pollIntervalMs;
    try {
      const next = await this.store.nextDueAt();
      // Work already due that this round did not claim is blocked (its endpoint's slots are full):
      // completions wake us, so wait for them or the poll rather than spin on a 0 ms timer.
      const now = Date.now();
      if (next !== null && next > now) delay = Math.min(delay, next - now);
      this.outage.ok();
    } catch (e) {
      this.outage.failed('reading next due time failed', e);
    }
    if (!this.running || this.timer || this.claiming) return;
    this.timer = setTimeout(() => void this.claimRound(), delay);
    if (this.inFlight === 0) this.idle.splice(0).forEach((f) => f());
  }

  /**
   * Takes a slot for a delivery about to be created leased to this
   * dispatcher (see NewMessage.direct); false when none is free, and the
   * delivery is then queued for claiming as usual.
   */
  reserve(endpointId: string): boolean {
    if (!this.running || this.inFlight >= this.config.deliveryConcurrency || this.slots(endpointId) <= 0) return false;
    this.inFlight++;
    this.perEndpoint.set(endpointId, (this.perEndpoint.get(endpointId) ?? 0) + 1);
    return true;
  }

  /** Gives back a slot from reserve() whose delivery was not created. */
  unreserve(endpointId: string): void {
    this.inFlight--;
    const n = (this.perEndpoint.get(endpointId) ?? 1) - 1;
    if (n <= 0) this.perEndpoint.delete(endpointId);
    else this.perEndpoint.set(endpointId, n);
  }

  /** Sends a delivery created leased to this dispatcher, in a slot taken by reserve(). */
  sendReserved(c: ClaimedDelivery): void {
    this.run(c);
  }

  private send(c: ClaimedDelivery): void {
    if (this.unreadable.size > 0 && this.unreadable.delete(c.endpoint.id)) this.log.info({ endpointId: c.endpoint.id }, 'endpoint readable again');
    this.inFlight++;
    this.perEndpoint.set(c.endpoint.id, (this.perEndpoint.get(c.endpoint.id) ?? 0) + 1);
    this.run(c);
  }

  private run(c: ClaimedDelivery): void {
    const epId = c.endpoint.id;
    const id = c.delivery.id;
    this.leased.add(id);
    this.sending.add(id);
    this.attempt(c)
      .finally(() => this.sending.delete(id))
      .then((r) => (this.abandoned.has(id) ? undefined : this.record(r)))
      .catch((e) => this.log.error({ err: e, msgId: c.message.id }, 'delivery attempt crashed'))
      .finally(() => {
        this.leased.delete(id);
        this.abandoned.delete(id);
        this.unreserve(epId);
      });
  }

  private async attempt(c: ClaimedDelivery): Promise<AttemptResult> {
    const { delivery, message, endpoint } = c;
    const startedAt = Date.now();
    if (endpoint.disabled) {
      return {
        deliveryId: delivery.id, endpointId: endpoint.id, attempt: null, status: Status.fail, nextAttemptAt: null, at: startedAt,
        endpointOk: false, disableEndpoint: false, failingCutoff: this.failingCutoff(startedAt),
      };
    }
    const body = message.payload ?? '{}';
    const headers = deliveryHeaders(endpoint, message.id, body, startedAt, this.config.svixHeaders);
    const res = await this.http.post(endpoint.url, headers, body);
    const at = Date.now();
    const attemptsMade = delivery.attempts + 1;
    const outcome = decide(this.policy, attemptsMade, res.statusCode, res.retryAfter, delivery.manual);
    const ok = outcome.kind === 'success';
    const status = ok ? Status.success : outcome.kind === 'retry' ? Status.pending : Status.fail;
    if (outcome.kind === 'gone') this.log.warn({ endpointId: endpoint.id }, 'endpoint answered 410 Gone; disabling it');
    return {
      deliveryId: delivery.id,
      endpointId: endpoint.id,
      attempt: {
        id: newId('atmpt', at),
        msgId: message.id,
        endpointId: endpoint.id,
        appId: message.appId,
        url: endpoint.url,
        status: ok ? Status.success : Status.fail,
        statusCode: res.statusCode,
        response: res.error ?? res.body,
        durationMs: res.durationMs,
        triggerType: delivery.manual ? Trigger.manual : Trigger.scheduled,
        error: res.error,
        createdAt: at,
      },
      status,
      nextAttemptAt: outcome.kind === 'retry' ? at + outcome.delayMs : null,
      at,
      endpointOk: ok,
      disableEndpoint: outcome.kind === 'gone',
      failingCutoff: this.failingCutoff(at),
    };
  }

  /**
   * An endpoint failing since this time or earlier is disabled. Measured from
   * the end of the attempt, the time a first failure is recorded as
   * failing_since: from its start, 0 hours would need two failures.
   */
  private failingCutoff(at: number): number {
    return at - this.config.endpointDisableAfterHours * 3600_000;
  }

  /**
   * Queues an outcome for the next batched write; resolves once it is written
   * or given up on. Until then the delivery stays in `leased` (heartbeat), so
   * an outcome kept through a database outage is still ours to write.
   */
  private record(result: AttemptResult): Promise<void> {
    return new Promise((written) => {
      this.pending.push({ result, written });
      this.scheduleFlush(0);
    });
  }

  private scheduleFlush(delayMs: number): void {
    // A batch being written now is closed; new outcomes wait for the next one.
    if (this.flushing || this.flushTimer || this.pending.length === 0 || this.finishing) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.flushing = this.flush();
    }, delayMs);
  }

  /** Writes the queued outcomes in one transaction. Never rejects. */
  private async flush(): Promise<void> {
    const batch = this.pending.splice(0);
    let retryIn: number | null = null;
    try {
      await this.store.completeAttempts(this.owner, batch.map((p) => p.result));
      this.outage.ok();
      this.flushFailures = 0;
      for (const p of batch) p.written();
    } catch (e) {
      this.flushFailures++;
      const outage = this.outage.failed('recording attempts failed', e);
      if (this.finishing || (!outage && this.flushFailures >= 3)) {
        // Given up: the leases run out and the deliveries are sent again (at-least-once).
        this.log.warn({ count: batch.length }, 'attempt outcomes not recorded: those deliveries are sent again once their lease runs out');
        this.flushFailures = 0;
        for (const p of batch) p.written();
      } else {
        // Kept, and their leases with them: written once the database answers again.
        this.pending.unshift(...batch);
        retryIn = backoff(100, this.flushFailures);
      }
    }
    this.flushing = null;
    this.scheduleFlush(retryIn ?? 0);
    if (retryIn === null) this.wake();
  }

  /** Resolves when nothing is in flight and nothing is due (tests, benchmarks). */
  whenIdle(): Promise<void> {
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /**
   * Graceful stop, within `graceMs`: no new claims from now on; attempts in
   * flight get the grace period to finish and have their outcomes written;
   * requests still under way then are aborted and their deliveries released,
   * claimable again at once by other workers rather than when the lease would
   * run out. Leases are kept alive (heartbeat) until then.
   */
  stop(graceMs = this.config.shutdownGraceMs): Promise<void> {
    this.stopped ??= this.windDown(graceMs);
    return this.stopped;
  }

  private async windDown(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    const left = () => Math.max(deadline - Date.now(), 100);
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.reclaimTimer) clearInterval(this.reclaimTimer);
    if (this.listenTimer) clearTimeout(this.listenTimer);
    const unwatch = this.unwatch;
    this.unwatch = null;
    if (unwatch) await within(unwatch(), Math.min(1000, left())).catch((e: unknown) => this.log.warn({ err: e }, 'stopping the work listener failed'));
    // Kept back for the end: writing outcomes and releasing what is unfinished.
    const reserve = Math.min(2000, Math.floor(graceMs / 4));
    while (this.inFlight > 0 && Date.now() < deadline - reserve) await sleep(20);

    this.finishing = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const unfinished = [...this.sending];
    for (const id of unfinished) this.abandoned.add(id);
    await this.http.close(); // aborts the requests still under way
    if (this.flushing) await within(this.flushing, left()).catch(() => {});
    if (this.pending.length > 0) await within((this.flushing = this.flush()), left()).catch(() => {});
    if (unfinished.length > 0) {
      try {
        const released = await within(this.store.releaseLeases(this.owner, unfinished), left());
        this.log.info({ released, graceMs }, 'shutdown: deliveries still in flight handed back to the queue');
      } catch (e) {
        this.log.warn({ err: e, count: unfinished.length }, 'shutdown: releasing deliveries failed; they are sent again once their lease runs out');
      }
    }
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Rejects when `p` has not settled within `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Capped exponential backoff with ±20 % jitter: base, 2·base, 4·base… at most 3 s. */
function backoff(baseMs: number, failures: number): number {
  const d = Math.min(baseMs * 2 ** Math.min(Math.max(failures - 1, 0), 16), 3000);
  return Math.round(d * (0.8 + Math.random() * 0.4));
}

/**
 * The compiled build sends on a worker thread (http-thread.ts); run from the
 * TypeScript sources, or with HOOKLANE_DELIVERY_THREAD=false, it sends on
 * the event loop. Both run the same HttpClient.
 */
function outboundClient(config: Config, log: Logger): Poster {
  if (config.deliveryThread && httpThreadAvailable()) {
    const { requestTimeoutMs, maxResponseBytes, deliveryConcurrency, allowedSubnets, endpointHttpsOnly, publicUrl, port } = config;
    return new ThreadedHttpClient(
      { requestTimeoutMs, maxResponseBytes, deliveryConcurrency, allowedSubnets, endpointHttpsOnly, publicUrl, port },
      (e) => log.error({ err: e }, 'the delivery thread failed; restarting it'),
    );
  }
  return new HttpClient({
    timeoutMs: config.requestTimeoutMs,
    maxResponseBytes: config.maxResponseBytes,
    // Not endpointConcurrency: endpoints of many apps share an origin (hooks.slack.com), and
    // one hanging endpoint would hold every connection and queue the others behind it.
    // The dispatcher's own caps bound what is in flight.
    connectionsPerOrigin: config.deliveryConcurrency,
    policy: AddressPolicy.fromConfig(config),
  });
}
