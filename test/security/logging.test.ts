import { rmSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import { createToken } from '../../src/auth/tokens.js';
import { createLogger, startHooklane } from '../../src/hooklane.js';
import { startReceiver } from '../helpers/receiver.js';
import { apiClient, eventually, tempDir, testConfig, TEST_MAIN_SECRET, TEST_TOKEN } from '../helpers/server.js';

/**
 * Tokens and secrets never reach the logs: the whole log output of a server
 * at trace level is captured while requests carry tokens and endpoint
 * secrets, deliveries succeed and fail, and objects holding secrets are
 * logged on purpose; none of the secret values may appear in it.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const SECRET = 'whsec_' + Buffer.from('logging test secret, 32 bytes!!!').toString('base64');
const ROTATED = 'whsec_' + Buffer.from('logging rotated key, 32 bytes!!!').toString('base64');
const DOWNSTREAM = 'downstream-bearer-credential-for-the-receiver';

describe('logging', () => {
  test('no token, main secret or endpoint secret appears in the log output', async () => {
    const out: string[] = [];
    const dir = tempDir('hooklane-logging-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = testConfig(dir, { logLevel: 'trace' });
    const hl = await startHooklane(config, { logger: createLogger(config, { write: (line: string) => void out.push(line) }) });
    cleanups.push(() => hl.close());
    // 500 once, then 410 Gone (the endpoint is disabled, which is logged), then 200 for the others.
    let calls = 0;
    const receiver = await startReceiver((req) => (req.path === '/gone' ? { status: ++calls === 1 ? 500 : 410 } : { status: 200, body: 'ok' }));
    cleanups.push(() => receiver.close());
    const admin = apiClient(hl.url);

    const app = (await admin('POST', '/app', { name: 'Logged' })).body;
    const { token: appToken } = await createToken(hl.store, { name: 'logged app', appId: app.id });
    const asApp = apiClient(hl.url, appToken);
    const ep = (await admin('POST', `/app/${app.id}/endpoint`, { url: `${receiver.url}/gone`, secret: SECRET })).body;
    expect((await admin('PUT', `/app/${app.id}/endpoint/${ep.id}/headers`, { headers: { authorization: `Bearer ${DOWNSTREAM}` } })).status).toBe(204);
    const ok = (await asApp('POST', `/app/${app.id}/endpoint`, { url: `${receiver.url}/ok`, secret: ROTATED })).body;
    expect((await asApp('GET', `/app/${app.id}/endpoint/${ep.id}/secret`)).body.key).toBe(SECRET);
    expect((await asApp('POST', `/app/${app.id}/endpoint/${ok.id}/secret/rotate`, { key: SECRET })).status).toBe(204);
    expect((await admin('POST', `/app/${app.id}/endpoint`, { url: `${receiver.url}/bad`, secret: 'whsec_not base64!' })).status).toBe(422);
    expect((await asApp('GET', '/app')).status).toBe(403);
    expect((await apiClient(hl.url, `${appToken}x`)('GET', `/app/${app.id}`)).status).toBe(401);
    expect((await apiClient(hl.url, 'hl_' + 'z'.repeat(43))('GET', `/app/${app.id}`)).status).toBe(401);
    expect((await admin('POST', `/app/${app.id}/msg`, { eventType: 'user.created', payload: { token: 'payload-is-not-logged' } })).status).toBe(202);
    await eventually(async () => (await admin('GET', `/app/${app.id}/endpoint/${ep.id}`)).body.disabled === true, 15_000, 'the 410 endpoint to be disabled');
    await receiver.waitFor(3);

    // Objects that hold secrets, logged the way code might log them.
    const row = (await hl.store.findEndpoint(app.id, ep.id))!;
    hl.log.info({ req: { headers: { authorization: `Bearer ${appToken}` } }, endpoint: row, config: hl.config }, 'objects with secrets');
    hl.log.warn({ claimed: { endpoint: row, message: { id: 'msg_x' } }, token: appToken, secret: SECRET }, 'nested');
    hl.log.error({ body: { key: ROTATED, secret: SECRET }, headers: { Authorization: `Bearer ${TEST_TOKEN}`, authorization: `Bearer ${TEST_TOKEN}` } }, 'a request body');

    await hl.close();
    const text = out.join('');
    // Something was logged: requests, deliveries, the disabled endpoint, the objects above.
    expect(out.length).toBeGreaterThan(10);
    expect(text).toContain('endpoint answered 410 Gone');
    expect(text).toContain('[redacted]');
    const lines = out.map((l) => JSON.parse(l) as Record<string, any>);
    expect(lines.find((l) => l.msg === 'objects with secrets')).toMatchObject({ endpoint: { id: ep.id, secrets: '[redacted]' }, config: { apiToken: '[redacted]', mainSecret: '[redacted]' } });
    for (const secret of [TEST_TOKEN, appToken, appToken.slice(3), TEST_MAIN_SECRET, SECRET, SECRET.slice(6), ROTATED, ROTATED.slice(6), DOWNSTREAM]) {
      expect(text.includes(secret), `log output contains ${secret}`).toBe(false);
    }
  });
});
