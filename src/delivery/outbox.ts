import type { NewMessage, Store } from '../store/types.js';

/**
 * Group commit for new messages: requests arriving in the same tick share
 * one transaction (one fsync). Each caller's promise settles only after the
 * commit, so a 202 is never sent for a message that is not on disk.
 */
export class Outbox {
  private queue: { item: NewMessage; resolve: () => void; reject: (e: Error) => void }[] = [];
  private scheduled = false;

  constructor(
    private readonly store: Store,
    private readonly onCommit: () => void,
    private readonly maxBatch = 1000,
  ) {}

  submit(item: NewMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.maxBatch) void this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    try {
      const results = await this.store.insertMessages(batch.map((b) => b.item));
      batch.forEach((b, i) => {
        const err = results[i];
        if (err) b.reject(err);
        else b.resolve();
      });
      this.onCommit();
    } catch (e) {
      for (const b of batch) b.reject(e as Error);
    }
  }
}
