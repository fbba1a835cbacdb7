import { rmSync } from 'node:fs';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { SecretBox } from '../../src/auth/secret-box.js';
import { Dispatcher } from '../../src/delivery/dispatcher.js';
import { newId } from '../../src/ids.js';
import type { AppRow, EndpointRow, NewMessage } from '../../src/store/types.js';
import { startReceiver } from '../helpers/receiver.js';
import { eventually, tempDir, testConfig } from '../helpers/server.js';
import { ENGINES } from '../store/engines.js';
import { at, header } from './support.js';

/**
 * One endpoint's row cannot be read (its sealed secrets were altered, or
 * sealed under another HOOKLANE_MAIN_SECRET). The dispatcher must keep
 * delivering to every other endpoint, leave that endpoint's deliveries
 * pending, and say so in the log once, not on every claim round.
 */

const T0 = Date.now() - 60_000;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function endpoint(appId: string, url: string): EndpointRow {
  return {
    id: newId('ep', T0), appId, uid: null, url, description: '', disabled: false, eventTypes: null, channels: null, metadata: {}, throttleRate: null,
    headers: {}, secrets: [{ key: 'whsec_' + Buffer.from('unreadable-test-secret-32-bytes!').toString('base64'), expiresAt: null }], failingSince: null,
    createdAt: T0, updatedAt: T0,
  };
}

describe.each(ENGINES)('an unreadable endpoint: $name', (engine) => {
  describe.skipIf(!engine.available)(engine.name, () => {
    test('is skipped and logged once; deliveries to the other endpoints still arrive; repaired, its own go out', async () => {
      const h = await engine.create();
      cleanups.push(() => h.cleanup());
      const rx = await startReceiver();
      cleanups.push(() => rx.close());
      const store = h.store;

      const apps: AppRow[] = ['broken', 'fine'].map((name, i) => ({
        id: newId('app', T0 + i), uid: null, name, metadata: {}, throttleRate: null, createdAt: T0, updatedAt: T0,
      }));
      for (const a of apps) await store.insertApp(a);
      const broken = endpoint(apps[0]!.id, `${rx.url}/broken`);
      const fine = endpoint(apps[1]!.id, `${rx.url}/fine`);
      await store.insertEndpoint(broken);
      await store.insertEndpoint(fine);
      // Sealed under another key: it cannot be opened with this store's.
      const foreign = SecretBox.fromMainSecret('another-main-secret-0123456789abcdefgh').seal(JSON.stringify(broken.secrets), `endpoint-secrets:${broken.id}`);
      await h.sql('UPDATE endpoints SET secrets = $1 WHERE id = $2', [engine.name === 'postgres' ? JSON.stringify(foreign) : foreign, broken.id]);

      // Queued work for both, the broken endpoint's due first (written as the API would, minus fan-out).
      const items = (a: AppRow, ep: EndpointRow, n: number, t: number): NewMessage[] =>
        Array.from({ length: n }, (_, i) => ({
          message: { id: newId('msg', t + i), appId: a.id, eventId: null, eventType: 'e', channels: null, payload: JSON.stringify({ i }), createdAt: t + i },
          endpointIds: [ep.id],
        }));
      const stuck = items(apps[0]!, broken, 5, T0);
      const wanted = items(apps[1]!, fine, 20, T0 + 1000);
      expect(await store.insertMessages([...stuck, ...wanted])).toEqual([...stuck, ...wanted].map(() => null));

      const lines: string[] = [];
      const dir = tempDir('hooklane-unreadable-');
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const dispatcher = new Dispatcher(store, testConfig(dir, { pollIntervalMs: 20 }), pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }));
      await dispatcher.start();
      cleanups.push(() => dispatcher.stop(2000));

      const got = () => new Set(at(rx.requests, '/fine').map((r) => header(r, 'webhook-id')));
      await eventually(() => wanted.every((w) => got().has(w.message.id)), 20_000, 'every delivery to the readable endpoint');
      // Many more claim rounds (20 ms poll) meet the broken endpoint again.
      await new Promise((r) => setTimeout(r, 500));
      expect(at(rx.requests, '/broken')).toHaveLength(0);
      expect(await store.endpointStats(broken.id, null, null)).toMatchObject({ pending: 5, sending: 0, success: 0, fail: 0 });
      const reports = lines.filter((l) => l.includes('endpoint cannot be read'));
      expect(reports).toHaveLength(1);
      expect(JSON.parse(reports[0]!)).toMatchObject({ level: 50, endpointId: broken.id, err: { message: expect.stringMatching(/HOOKLANE_MAIN_SECRET does not match/) } });
      expect(reports[0]).not.toContain('whsec_');

      // Secrets written again (as rotating them through the API would): its deliveries were only waiting.
      await store.updateEndpoint(broken);
      await eventually(() => at(rx.requests, '/broken').length === 5, 20_000, 'the repaired endpoint\'s deliveries');
      expect(new Set(at(rx.requests, '/broken').map((r) => header(r, 'webhook-id')))).toEqual(new Set(stuck.map((s) => s.message.id)));
      expect(lines.filter((l) => l.includes('endpoint readable again'))).toHaveLength(1);
      expect(lines.filter((l) => l.includes('endpoint cannot be read'))).toHaveLength(1);
    }, 60_000);
  });
});
