import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('configuration', () => {
  test('defaults', () => {
    const c = loadConfig({}, {});
    expect(c.port).toBe(8071);
    expect(c.host).toBe('0.0.0.0');
    expect(c.databaseUrl).toBe('sqlite:./data/hooklane.db');
    expect(c.retrySchedule).toEqual([5, 300, 1800, 7200, 18000, 36000, 36000]);
    expect(c.allowedSubnets).toEqual([]);
    expect(c.requestTimeoutMs).toBe(15000);
    expect(c.endpointDisableAfterHours).toBe(120);
  });

  test('env values are parsed', () => {
    const c = loadConfig({}, {
      HOOKLANE_PORT: '9000', HOOKLANE_RETRY_SCHEDULE: '1, 2,3', HOOKLANE_ALLOWED_SUBNETS: '127.0.0.0/8,::1/128', HOOKLANE_SVIX_HEADERS: 'true',
    });
    expect(c.port).toBe(9000);
    expect(c.retrySchedule).toEqual([1, 2, 3]);
    expect(c.allowedSubnets).toEqual(['127.0.0.0/8', '::1/128']);
    expect(c.svixHeaders).toBe(true);
  });

  test.each([
    ['HOOKLANE_PORT', 'abc'],
    ['HOOKLANE_PORT', '70000'],
    ['HOOKLANE_RETRY_SCHEDULE', '5,x'],
    ['HOOKLANE_ALLOWED_SUBNETS', '10.0.0.0/33'],
    ['HOOKLANE_ALLOWED_SUBNETS', 'localhost'],
    ['HOOKLANE_DATABASE_URL', 'mysql://x'],
    ['HOOKLANE_LOG_FORMAT', 'xml'],
    ['HOOKLANE_REQUEST_TIMEOUT_MS', '-1'],
  ])('a bad %s=%s fails naming the setting', (name, value) => {
    expect(() => loadConfig({}, { [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({}, { [name]: value })).toThrow(name);
  });

  test('config file, with env winning over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hl-config-'));
    const file = join(dir, 'hooklane.config.json');
    writeFileSync(file, JSON.stringify({ port: 7000, requestTimeoutMs: 2000 }));
    const c = loadConfig({}, { HOOKLANE_CONFIG: file, HOOKLANE_PORT: '7001' });
    expect(c.port).toBe(7001);
    expect(c.requestTimeoutMs).toBe(2000);
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    expect(() => loadConfig({}, { HOOKLANE_CONFIG: file })).toThrow('unknown setting "prot"');
    writeFileSync(file, '{ nope');
    expect(() => loadConfig({}, { HOOKLANE_CONFIG: file })).toThrow(ConfigError);
  });

  test('DATABASE_URL is accepted as a fallback', () => {
    expect(loadConfig({}, { DATABASE_URL: 'sqlite:/tmp/x.db' }).databaseUrl).toBe('sqlite:/tmp/x.db');
    expect(loadConfig({}, { DATABASE_URL: 'sqlite:/tmp/x.db', HOOKLANE_DATABASE_URL: 'sqlite:/tmp/y.db' }).databaseUrl).toBe('sqlite:/tmp/y.db');
  });
});
