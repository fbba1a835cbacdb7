import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { decide, type RetryPolicy } from '../domain/retry.js';
import { newId } from '../ids.js';
import { Status, Trigger, type AttemptResult, type ClaimedDelivery, type Store } from '../store/types.js';
import { deliveryHeaders } from './headers.js';
import { HttpClient } from './http.js';
import { AddressPolicy } from './ssrf.js';

/**
 * Claims due deliveries, POSTs them, records the outcome. Concurrency is
 * capped overall and per endpoint; a slow endpoint fills only its own slots,
 * and the claim skips endpoints with no free slot, so it never holds up the
 * rest. Outcomes are written in batches (group commit).
 */
export class Dispatcher {
  private readonly http: HttpClient;
  private readonly policy: RetryPolicy;
  private readonly perEndpoint = new Map<string, number>();
  private inFlight = 0;
  private running = false;
  private claiming = false;
  private rerun = false;
  private timer: NodeJS.Timeout | null = null;
  private reclaimTimer: NodeJS.Timeout | null = null;
  private pending: AttemptResult[] = [];
  private flushing: Promise<void> | null = null;
  private idle: (() => void)[] = [];
  /** Lease owner id of this dispatcher: unique per process and start. */
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  /** Deliveries this dispatcher holds a lease on, renewed by the heartbeat. */
  private readonly leased = new Set<number>();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private unwatch: (() => Promise<void>) | null = null;

  constructor(
    private readonly store: Store,
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.http = new HttpClient({
      timeoutMs: config.requestTimeoutMs,
      maxResponseBytes: config.maxResponseBytes,
      // Not endpointConcurrency: endpoints of many apps share an origin (hooks.slack.com), and
      // one hanging endpoint would hold every connection and queue the others behind it.
      // The dispatcher's own caps bound what is in flight.
      connectionsPerOrigin: config.deliveryConcurrency,
      policy: new AddressPolicy(config.allowedSubnets),
    });
    this.policy = { schedule: config.retrySchedule, jitter: config.retryJitter };
  }

  async start(): Promise<void> {
    this.running = true;
    // With one process per database, anything still leased was orphaned by a crash.
    const now = Date.now();
    const orphans = await this.store.reclaimExpired(this.store.capabilities.singleProcess ? Number.MAX_SAFE_INTEGER : now);
    if (orphans > 0) this.log.info({ orphans }, 'requeued deliveries left in flight by a previous run');
    this.reclaimTimer = setInterval(() => {
      this.store.reclaimExpired(Date.now()).then((n) => n > 0 && this.wake(), (e) => this.log.error({ err: e }, 'reclaim failed'));
    }, Math.max(1000, Math.floor(this.config.leaseMs / 4)));
    this.reclaimTimer.unref();
    // Heartbeat: a slow attempt keeps its lease, so no other worker reclaims it meanwhile.
    this.heartbeatTimer = setInterval(() => this.heartbeat(), Math.max(100, Math.floor(this.config.leaseMs / 3)));
    this.heartbeatTimer.unref();
    // Other processes writing work wake this one without waiting for the poll.
    if (this.store.capabilities.notifications && this.store.watchWork) {
      this.unwatch = await this.store.watchWork(() => this.wake());
    }
    this.wake();
  }

  private heartbeat(): void {
    if (this.leased.size === 0) return;
    const ids = [...this.leased];
    this.store.extendLeases(this.owner, ids, Date.now() + this.config.leaseMs).then(
      (n) => n < ids.length && this.log.debug({ lost: ids.length - n }, 'some leases were no longer held'),
      (e) => this.log.error({ err: e }, 'extending leases failed'),
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

  private async claimRound(): Promise<void> {
    this.timer = null;
    if (!this.running || this.claiming) return;
    this.claiming = true;
    let claimed: ClaimedDelivery[] = [];
    try {
      const room = this.config.deliveryConcurrency - this.inFlight;
      if (room > 0) {
        claimed = await this.store.claimDue(this.owner, Date.now(), room, this.config.leaseMs, this.slots);
        for (const c of claimed) this.send(c);
      }
    } catch (e) {
      this.log.error({ err: e }, 'claiming deliveries failed');
    } finally {
      this.claiming = false;
    }
    if (!this.running) return;
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
    } catch (e) {
      this.log.error({ err: e }, 'reading next due time failed');
    }
    if (!this.running || this.timer || this.claiming) return;
    this.timer = setTimeout(() => void this.claimRound(), delay);
    if (this.inFlight === 0) this.idle.splice(0).forEach((f) => f());
  }

  private send(c: ClaimedDelivery): void {
    const epId = c.endpoint.id;
    this.inFlight++;
    this.leased.add(c.delivery.id);
    this.perEndpoint.set(epId, (this.perEndpoint.get(epId) ?? 0) + 1);
    this.attempt(c)
      .then((r) => this.record(r))
      .catch((e) => this.log.error({ err: e, msgId: c.message.id }, 'delivery attempt crashed'))
      .finally(() => {
        this.inFlight--;
        this.leased.delete(c.delivery.id);
        const n = (this.perEndpoint.get(epId) ?? 1) - 1;
        if (n === 0) this.perEndpoint.delete(epId);
        else this.perEndpoint.set(epId, n);
      });
  }

  private async attempt(c: ClaimedDelivery): Promise<AttemptResult> {
    const { delivery, message, endpoint } = c;
    const startedAt = Date.now();
    const failingCutoff = startedAt - this.config.endpointDisableAfterHours * 3600_000;
    if (endpoint.disabled) {
      return {
        deliveryId: delivery.id, endpointId: endpoint.id, attempt: null, status: Status.fail, nextAttemptAt: null, at: startedAt,
        endpointOk: false, disableEndpoint: false, failingCutoff,
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
      // Measured from the end of this attempt, the time a first failure is recorded as failing_since:
      // from its start, a first failure would never count and 0 hours would need two failures.
      failingCutoff: at - this.config.endpointDisableAfterHours * 3600_000,
    };
  }

  /** Queues an outcome for the next batched write; resolves once it is written. */
  private record(r: AttemptResult): Promise<void> {
    this.pending.push(r);
    return this.scheduleFlush();
  }

  private scheduleFlush(): Promise<void> {
    // A batch being written now is closed; new outcomes wait for the next one.
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
    return this.flushing;
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    try {
      await this.store.completeAttempts(this.owner, batch);
    } catch (e) {
      // The leases run out and the deliveries are retried: at-least-once.
      this.log.error({ err: e, count: batch.length }, 'recording attempts failed');
    }
    this.flushing = null;
    if (this.pending.length > 0) void this.scheduleFlush();
    this.wake();
  }

  /** Resolves when nothing is in flight and nothing is due (tests, benchmarks). */
  whenIdle(): Promise<void> {
    return new Promise((resolve) => this.idle.push(resolve));
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.reclaimTimer) clearInterval(this.reclaimTimer);
    const unwatch = this.unwatch;
    this.unwatch = null;
    if (unwatch) await unwatch().catch((e: unknown) => this.log.error({ err: e }, 'stopping the work listener failed'));
    const deadline = Date.now() + 10_000;
    while ((this.inFlight > 0 || this.flushing) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    if (this.flushing) await this.flushing;
    // Only now: leases of attempts still finishing above were kept alive.
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await this.http.close();
  }
}
