import { Status, type EndpointRow, type NewMessage, type Store } from '../store/types.js';
import type { Dispatcher } from './dispatcher.js';

interface Queued {
  item: NewMessage;
  /** Endpoints with a slot reserved in this process's dispatcher. */
  reserved: EndpointRow[];
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Group commit for new messages: requests arriving in the same tick share
 * one transaction (one fsync). Each caller's promise settles only after the
 * commit, so a 202 is never sent for a message that is not on disk.
 *
 * With a single-process engine and a local dispatcher with free slots, the
 * deliveries are created already leased to that dispatcher and handed to it
 * straight after the commit: no claim round trip through the database.
 */
export class Outbox {
  private queue: Queued[] = [];
  private scheduled = false;
  /**
   * One batch at a time: while a commit is under way the next batch grows.
   * Concurrent batches would only queue on the same rows (an endpoint's
   * queue entry) inside the database, each holding a connection.
   */
  private writing = false;

  constructor(
    private readonly store: Store,
    private readonly dispatcher: Dispatcher | null,
    private readonly leaseMs: number,
    private readonly maxBatch = 1000,
  ) {}

  /** `endpoints` are the rows behind `item.endpointIds`, when the caller has them. */
  submit(item: NewMessage, endpoints: readonly EndpointRow[] = []): Promise<void> {
    const reserved: EndpointRow[] = [];
    const d = this.dispatcher;
    if (d && this.store.capabilities.singleProcess) {
      for (const ep of endpoints) if (d.reserve(ep.id)) reserved.push(ep);
      if (reserved.length > 0) {
        item.direct = { owner: d.owner, leaseUntil: item.message.createdAt + this.leaseMs, endpointIds: new Set(reserved.map((e) => e.id)) };
      }
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ item, reserved, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.writing || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    if (this.writing || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    this.writing = true;
    try {
      await this.write(batch);
    } finally {
      this.writing = false;
      if (this.queue.length > 0) this.schedule();
    }
  }

  private async write(batch: Queued[]): Promise<void> {
    let results: (Error | null)[];
    try {
      results = await this.store.insertMessages(batch.map((b) => b.item));
    } catch (e) {
      for (const b of batch) {
        this.release(b);
        b.reject(e as Error);
      }
      return;
    }
    let queued = false;
    batch.forEach((b, i) => {
      const err = results[i];
      if (err) {
        this.release(b);
        b.reject(err);
        return;
      }
      this.handOver(b);
      if (b.item.endpointIds.length > b.reserved.length) queued = true;
      b.resolve();
    });
    if (queued) this.dispatcher?.wake();
  }

  private release(b: Queued): void {
    for (const ep of b.reserved) this.dispatcher!.unreserve(ep.id);
  }

  private handOver(b: Queued): void {
    const ids = b.item.direct?.directIds;
    const m = b.item.message;
    for (const endpoint of b.reserved) {
      const id = ids?.get(endpoint.id);
      if (id === undefined) {
        this.dispatcher!.unreserve(endpoint.id);
        continue;
      }
      this.dispatcher!.sendReserved({
        delivery: {
          id, msgId: m.id, appId: m.appId, endpointId: endpoint.id, status: Status.sending, attempts: 0, nextAttemptAt: m.createdAt,
          manual: false, createdAt: m.createdAt, updatedAt: m.createdAt,
        },
        message: m,
        endpoint,
      });
    }
  }
}
