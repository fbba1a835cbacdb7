import { parentPort, workerData } from 'node:worker_threads';
import { HttpClient } from './http.js';
import type { HttpThreadSettings, PostReply, PostRequest } from './http-thread.js';
import { AddressPolicy } from './ssrf.js';

/** Entry point of the delivery HTTP thread (see http-thread.ts). */
const settings = workerData as HttpThreadSettings;
const client = new HttpClient({
  timeoutMs: settings.requestTimeoutMs,
  maxResponseBytes: settings.maxResponseBytes,
  connectionsPerOrigin: settings.deliveryConcurrency,
  policy: AddressPolicy.fromConfig(settings),
});

let replies: PostReply[] = [];
let scheduled = false;
function reply(r: PostReply): void {
  replies.push(r);
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    const batch = replies;
    replies = [];
    parentPort!.postMessage(batch);
  });
}

parentPort!.on('message', (msg: PostRequest[] | 'close') => {
  if (msg === 'close') {
    void client.close().finally(() => setImmediate(() => process.exit(0)));
    return;
  }
  for (const r of msg) {
    void client.post(r.url, r.headers, r.body).then((result) => reply({ id: r.id, result }));
  }
});
