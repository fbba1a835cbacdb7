import type { LookupAddress } from 'node:dns';
import { networkInterfaces } from 'node:os';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { AddressPolicy, BlockedAddressError, classifyAddress, parseIp, type Resolver } from '../../src/delivery/ssrf.js';

/** The outbound address classifier and policy, without a server or a network. */

describe('WHATWG URL parsing normalises IPv4 spellings (verified, not assumed)', () => {
  test.each([
    ['127.1', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['0x7f.0.0.1', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['017700000001', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['127.0.0.1.', '127.0.0.1'],
    ['0', '0.0.0.0'],
    ['0xA9FEA9FE', '169.254.169.254'],
    ['0300.0250.0.1', '192.168.0.1'],
    ['%31%32%37.0.0.1', '127.0.0.1'],
    ['[::ffff:127.0.0.1]', '[::ffff:7f00:1]'],
    ['[0:0:0:0:0:ffff:a9fe:a9fe]', '[::ffff:a9fe:a9fe]'],
    ['[64:ff9b::127.0.0.1]', '[64:ff9b::7f00:1]'],
  ])('http://%s/ has host %s', (spelling, host) => {
    expect(new URL(`http://${spelling}/`).hostname).toBe(host);
  });

  test('trailing dots on names are kept by the URL parser (so the policy strips them)', () => {
    expect(new URL('http://localhost./').hostname).toBe('localhost.');
    expect(new URL('http://metadata.google.internal./').hostname).toBe('metadata.google.internal.');
  });
});

describe('parseIp', () => {
  test.each([
    ['127.1', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['0x7f.0.0.1', '127.0.0.1'],
    ['017700000001', '127.0.0.1'],
    ['[::1]', '::1'],
    ['::ffff:127.0.0.1', '::ffff:7f00:1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
  ])('%s is %s', (given, ip) => {
    expect(parseIp(given)?.ip).toBe(ip);
  });

  test.each(['example.com', 'localhost', 'localhost.', '1.2.3.4.5', 'metadata.google.internal', '::g', '', 'x@127.0.0.1', '127.0.0.1/x'])('%s is not an IP address', (name) => {
    expect(parseIp(name)).toBeNull();
  });
});

describe('classifyAddress', () => {
  test.each([
    // loopback in every spelling
    ['127.0.0.1', /loopback/],
    ['127.1', /loopback/],
    ['2130706433', /loopback/],
    ['0x7f.0.0.1', /loopback/],
    ['017700000001', /loopback/],
    ['127.255.255.254', /loopback/],
    ['[::1]', /loopback/],
    ['::1', /loopback/],
    ['0.0.0.0', /unspecified/],
    ['0.1.2.3', /unspecified/],
    ['::', /unspecified/],
    // RFC 1918, CGNAT, link-local, metadata
    ['10.0.0.1', /private, RFC 1918/],
    ['10.255.255.255', /private/],
    ['172.16.0.1', /private/],
    ['172.31.255.255', /private/],
    ['192.168.1.1', /private/],
    ['100.64.0.1', /CGNAT/],
    ['100.127.255.255', /CGNAT/],
    ['169.254.0.1', /link-local/],
    ['169.254.169.254', /cloud metadata/],
    ['169.254.170.2', /cloud metadata/],
    ['100.100.100.200', /cloud metadata/],
    ['fd00:ec2::254', /cloud metadata/],
    ['fe80::1', /link-local/],
    ['fe80::1%eth0', /link-local/],
    // benchmarking, reserved, multicast, broadcast, documentation, protocol assignments
    ['198.18.0.1', /benchmarking/],
    ['198.19.255.255', /benchmarking/],
    ['240.0.0.1', /reserved/],
    ['254.1.2.3', /reserved/],
    ['224.0.0.1', /multicast/],
    ['239.255.255.250', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['192.0.2.1', /documentation/],
    ['198.51.100.1', /documentation/],
    ['203.0.113.1', /documentation/],
    ['192.0.0.8', /IETF protocol/],
    ['192.88.99.1', /6to4 relay/],
    // IPv6 non-global
    ['fc00::1', /unique local/],
    ['fd12:3456::1', /unique local/],
    ['ff02::1', /multicast/],
    ['fec0::1', /site-local/],
    ['100::1', /discard/],
    ['2001:db8::1', /documentation/],
    ['3fff::1', /documentation/],
    ['::2', /IPv4-compatible/],
    ['1::1', /not global unicast/],
    // IPv4-mapped, dotted and hex, and other transition forms
    ['::ffff:127.0.0.1', /IPv4-mapped form of 127\.0\.0\.1, loopback/],
    ['::ffff:7f00:1', /IPv4-mapped form of 127\.0\.0\.1, loopback/],
    ['[::ffff:7f00:1]', /IPv4-mapped form of 127\.0\.0\.1/],
    ['::ffff:10.0.0.1', /IPv4-mapped form of 10\.0\.0\.1, private/],
    ['::ffff:a9fe:a9fe', /IPv4-mapped form of 169\.254\.169\.254, cloud metadata/],
    ['0:0:0:0:0:ffff:c0a8:0101', /IPv4-mapped form of 192\.168\.1\.1/],
    ['64:ff9b::127.0.0.1', /NAT64 form of 127\.0\.0\.1, loopback/],
    ['64:ff9b::a00:1', /NAT64 form of 10\.0\.0\.1/],
    ['64:ff9b::a9fe:a9fe', /NAT64 form of 169\.254\.169\.254/],
    ['64:ff9b:1::1', /local-use NAT64/],
    ['2002:7f00:1::1', /6to4, deprecated, embedding 127\.0\.0\.1, loopback/],
    ['2002:c0a8:101::', /6to4.*192\.168\.1\.1, private/],
    ['2002:a9fe:a9fe::1', /6to4.*169\.254\.169\.254/],
    ['2002:808:808::1', /6to4, deprecated/],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', /Teredo/],
    ['2001::1', /Teredo/],
    ['2001:2::1', /IETF protocol/],
  ])('%s is not global (%s)', (address, why) => {
    expect(classifyAddress(address)).toMatch(why);
  });

  test.each([
    '8.8.8.8', '1.1.1.1', '93.184.216.34', '100.63.255.255', '100.128.0.0', '172.15.255.255', '172.32.0.0', '192.169.0.1', '198.17.255.255',
    '198.20.0.0', '223.255.255.255', '11.0.0.1', '169.253.255.255', '2606:4700:4700::1111', '2a00:1450:4001:80b::200e', '2001:4860:4860::8888',
    '::ffff:8.8.8.8', '64:ff9b::808:808',
  ])('%s is global', (address) => {
    expect(classifyAddress(address)).toBeNull();
  });
});

describe('AddressPolicy: URLs at save time', () => {
  const strict = new AddressPolicy([]);
  const refused = (policy: AddressPolicy, url: string) => {
    try {
      policy.checkUrl(url, 'save');
    } catch (e) {
      expect(e).toBeInstanceOf(BlockedAddressError);
      return (e as Error).message;
    }
    return null;
  };

  test.each([
    ['http://127.1/', /127\.0\.0\.1 is not public \(loopback\)/],
    ['http://2130706433/', /127\.0\.0\.1 is not public/],
    ['http://0x7f.0.0.1/', /127\.0\.0\.1 is not public/],
    ['http://017700000001/', /127\.0\.0\.1 is not public/],
    ['http://[::1]:8080/', /::1 is not public \(loopback\)/],
    ['http://0.0.0.0/', /0\.0\.0\.0 is not public \(unspecified/],
    ['http://0/', /0\.0\.0\.0 is not public/],
    ['http://localhost/', /localhost is this machine \(loopback\)/],
    ['http://localhost./', /localhost is this machine/],
    ['http://LOCALHOST:3000/x', /localhost is this machine/],
    ['http://api.localhost/', /api\.localhost is this machine/],
    ['http://10.0.0.5/', /private, RFC 1918/],
    ['http://172.20.1.1/', /private/],
    ['http://192.168.0.1/', /private/],
    ['http://100.64.1.1/', /CGNAT/],
    ['http://169.254.169.254/latest/meta-data/', /cloud metadata/],
    ['http://0xA9FEA9FE/', /169\.254\.169\.254 is not public \(cloud metadata/],
    ['http://[fd00:ec2::254]/latest/meta-data/', /cloud metadata/],
    ['http://metadata.google.internal/computeMetadata/v1/', /metadata\.google\.internal is a cloud metadata service/],
    ['http://metadata.google.internal./computeMetadata/v1/', /metadata\.google\.internal is a cloud metadata service/],
    ['http://198.18.0.1/', /benchmarking/],
    ['http://240.0.0.1/', /reserved/],
    ['http://224.0.0.1/', /multicast/],
    ['http://255.255.255.255/', /broadcast/],
    ['http://[fc00::1]/', /unique local/],
    ['http://[fe80::1]/', /link-local/],
    ['http://[ff02::1]/', /multicast/],
    ['http://[::ffff:127.0.0.1]/', /IPv4-mapped form of 127\.0\.0\.1/],
    ['http://[::ffff:7f00:1]/', /IPv4-mapped form of 127\.0\.0\.1/],
    ['http://[::ffff:169.254.169.254]/', /IPv4-mapped form of 169\.254\.169\.254/],
    ['http://[64:ff9b::7f00:1]/', /NAT64 form of 127\.0\.0\.1/],
    ['http://[2002:a00:1::1]/', /6to4.*10\.0\.0\.1/],
    ['http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/', /Teredo/],
    ['http://user:pass@example.com/', /must not carry credentials/],
    ['https://token@example.com/', /must not carry credentials/],
    ['ftp://example.com/', /must use http or https, not ftp/],
    ['file:///etc/passwd', /must use http or https/],
    ['gopher://example.com/', /must use http or https/],
    ['javascript:alert(1)', /must use http or https/],
    ['not a url', /absolute http or https URL/],
  ])('%s is refused', (url, why) => {
    expect(refused(strict, url)).toMatch(why);
  });

  test.each(['https://example.com/hook', 'http://example.com:8080/x', 'https://93.184.216.34/', 'https://[2606:4700:4700::1111]/', 'https://hooks.internal.example/'])(
    '%s is accepted (names are judged at dial time)',
    (url) => {
      expect(refused(strict, url)).toBeNull();
    },
  );

  test('names are not judged by name at dial time, only by what they resolve to', () => {
    expect(() => strict.checkUrl('http://localhost/', 'dial')).not.toThrow();
    expect(() => strict.checkUrl('http://metadata.google.internal/', 'dial')).not.toThrow();
    expect(() => strict.checkUrl('http://127.1/', 'dial')).toThrow(/not public/);
  });

  test('allowed subnets open exactly their ranges, IPv4-mapped forms included', () => {
    const p = new AddressPolicy(['10.0.0.0/8', '127.0.0.0/8']);
    expect(refused(p, 'http://10.1.2.3/')).toBeNull();
    expect(refused(p, 'http://[::ffff:10.1.2.3]/')).toBeNull();
    expect(refused(p, 'http://127.1:9000/')).toBeNull();
    expect(refused(p, 'http://localhost:9000/')).toBeNull();
    expect(refused(p, 'http://172.16.0.1/')).toMatch(/private/);
    expect(refused(p, 'http://169.254.169.254/')).toMatch(/metadata/);
    expect(refused(p, 'http://metadata.google.internal/')).toMatch(/metadata/);
    // A NAT64 address goes to a translator, not to 10/8 on this network: not opened by 10.0.0.0/8.
    expect(refused(p, 'http://[64:ff9b::a00:1]/')).toMatch(/NAT64/);
    expect(p.isAllowed('8.8.8.8')).toBe(true);
  });

  test('HTTPS only refuses http: URLs', () => {
    const p = new AddressPolicy([], { httpsOnly: true });
    expect(refused(p, 'http://example.com/')).toMatch(/must use https: HOOKLANE_ENDPOINT_HTTPS_ONLY/);
    expect(refused(p, 'https://example.com/')).toBeNull();
  });

  test('Hooklane itself: its ports on a local address, and its public URL', () => {
    const p = new AddressPolicy(['127.0.0.0/8', '::1/128'], { selfPorts: () => [8071], publicUrl: 'https://hooks.example.com/' });
    for (const url of ['http://127.0.0.1:8071/api/v1/app', 'http://127.9.9.9:8071/', 'http://localhost:8071/', 'http://[::1]:8071/', 'http://[::ffff:127.0.0.1]:8071/']) {
      expect(refused(p, url), url).toMatch(/Hooklane itself \(port 8071/);
    }
    expect(refused(p, 'http://127.0.0.1:8072/')).toBeNull();
    for (const url of ['https://hooks.example.com/api/v1/app', 'https://HOOKS.example.com./x', 'https://hooks.example.com:443/']) {
      expect(refused(p, url), url).toMatch(/Hooklane itself \(HOOKLANE_PUBLIC_URL\)/);
    }
    expect(refused(p, 'https://hooks.example.com:8443/')).toBeNull();
    expect(refused(p, 'http://hooks.example.com/')).toBeNull();
    expect(refused(p, 'https://other.example.com/')).toBeNull();
  });

  test('fromConfig takes HOOKLANE_PORT, the listen port and the public URL', () => {
    const p = AddressPolicy.fromConfig({ allowedSubnets: ['127.0.0.0/8'], endpointHttpsOnly: false, publicUrl: 'http://hl.example.com:8080', port: 8071 }, () => [9999]);
    expect(refused(p, 'http://127.0.0.1:8071/')).toMatch(/itself/);
    expect(refused(p, 'http://127.0.0.1:9999/')).toMatch(/itself/);
    expect(refused(p, 'http://hl.example.com:8080/')).toMatch(/itself/);
    expect(refused(p, 'http://127.0.0.1:8080/')).toBeNull();
  });

  test('a connected peer on an interface address of this machine with a Hooklane port is Hooklane itself', () => {
    const p = new AddressPolicy(['0.0.0.0/0', '::/0'], { selfPorts: () => [8071] });
    const own = Object.values(networkInterfaces()).flat().find((a) => a && !a.internal)?.address;
    expect(p.checkPeer('127.0.0.1', 8071)?.message).toMatch(/Hooklane itself/);
    expect(p.checkPeer('0.0.0.0', 8071)?.message).toMatch(/Hooklane itself/);
    expect(p.checkPeer('127.0.0.1', 8072)).toBeNull();
    if (own) expect(p.checkPeer(own, 8071)?.message).toMatch(/Hooklane itself/);
    expect(p.checkPeer('8.8.8.8', 8071)).toBeNull();
    expect(new AddressPolicy([]).checkPeer('10.0.0.1', 443)?.message).toMatch(/connected address 10\.0\.0\.1 is not public/);
    expect(new AddressPolicy([]).checkPeer(undefined, undefined)).toBeInstanceOf(BlockedAddressError);
  });
});

describe('AddressPolicy.lookup: the dial-time resolution', () => {
  type Answer = LookupAddress[] | Error;
  /** A resolver answering from a script, one answer per call, recording what it was asked. */
  function scripted(...answers: Answer[]) {
    const calls: { host: string; options: object }[] = [];
    const resolve: Resolver = (host, options, cb) => {
      calls.push({ host, options });
      const a = answers[Math.min(calls.length - 1, answers.length - 1)]!;
      setImmediate(() => (a instanceof Error ? cb(a, []) : cb(null, a)));
    };
    return { resolve, calls };
  }
  const v4 = (address: string): LookupAddress => ({ address, family: 4 });
  const v6 = (address: string): LookupAddress => ({ address, family: 6 });
  const ask = (p: AddressPolicy, host: string, options: { all?: boolean; family?: number } = {}) =>
    new Promise<{ err: Error | null; address: unknown; family?: number }>((resolve) => p.lookup(host, options, (err, address, family) => resolve({ err, address, family })));

  test('a name whose records are all public resolves, in both answer shapes', async () => {
    const { resolve } = scripted([v4('93.184.216.34'), v6('2606:2800:220:1::1')]);
    const p = new AddressPolicy([], { resolve });
    expect(await ask(p, 'example.com')).toEqual({ err: null, address: '93.184.216.34', family: 4 });
    const all = await ask(p, 'example.com', { all: true });
    expect(all.err).toBeNull();
    expect(all.address).toEqual([v4('93.184.216.34'), v6('2606:2800:220:1::1')]);
  });

  test.each([
    ['public then private', [v4('93.184.216.34'), v4('10.0.0.1')], /10\.0\.0\.1, which is not public \(private/],
    ['private then public', [v4('127.0.0.1'), v4('93.184.216.34')], /127\.0\.0\.1, which is not public \(loopback/],
    ['a private AAAA beside a public A', [v4('93.184.216.34'), v6('fd00::1')], /fd00::1, which is not public/],
    ['metadata', [v4('169.254.169.254')], /169\.254\.169\.254, which is not public \(cloud metadata/],
    ['IPv4-mapped loopback', [v6('::ffff:127.0.0.1')], /IPv4-mapped form of 127\.0\.0\.1/],
    ['NAT64 of metadata', [v6('64:ff9b::a9fe:a9fe')], /NAT64 form of 169\.254\.169\.254/],
    ['6to4 of a private address', [v6('2002:c0a8:101::1')], /6to4/],
    ['link-local with a zone id', [v6('fe80::1%eth0')], /link-local/],
  ])('a name with %s records is refused, whether one address or all are asked for', async (_what, records, why) => {
    const { resolve } = scripted(records);
    const p = new AddressPolicy([], { resolve });
    for (const all of [false, true]) {
      const r = await ask(p, 'mixed.example', { all });
      expect(r.err).toBeInstanceOf(BlockedAddressError);
      expect(r.err!.message).toMatch(/^mixed\.example resolves to /);
      expect(r.err!.message).toMatch(why);
    }
  });

  test('metadata.google.internal is refused by what it resolves to', async () => {
    const { resolve } = scripted([v4('169.254.169.254')]);
    const r = await ask(new AddressPolicy([], { resolve }), 'metadata.google.internal');
    expect(r.err?.message).toMatch(/metadata\.google\.internal resolves to 169\.254\.169\.254, which is not public \(cloud metadata/);
  });

  test('rebinding: every resolution is judged on its own, and the answer handed to the socket is the answer checked', async () => {
    const { resolve, calls } = scripted([v4('93.184.216.34')], [v4('127.0.0.1')], [v4('93.184.216.34')]);
    const p = new AddressPolicy([], { resolve });
    expect((await ask(p, 'rebind.example')).address).toBe('93.184.216.34');
    expect((await ask(p, 'rebind.example')).err?.message).toMatch(/127\.0\.0\.1, which is not public/);
    expect((await ask(p, 'rebind.example', { all: true })).address).toEqual([v4('93.184.216.34')]);
    expect(calls).toHaveLength(3);
  });

  test('allowed subnets apply to resolved addresses', async () => {
    const { resolve } = scripted([v4('10.1.2.3'), v4('93.184.216.34')]);
    const r = await ask(new AddressPolicy(['10.0.0.0/8'], { resolve }), 'internal.example');
    expect(r).toEqual({ err: null, address: '10.1.2.3', family: 4 });
  });

  test('the family asked for is passed on, with all: true', async () => {
    const { resolve, calls } = scripted([v6('2606:4700:4700::1111')]);
    const p = new AddressPolicy([], { resolve });
    await ask(p, 'v6.example', { family: 6 });
    expect(calls[0]).toEqual({ host: 'v6.example', options: { all: true, family: 6 } });
  });

  test('resolver errors pass through; no records is ENOTFOUND', async () => {
    const failing = scripted(Object.assign(new Error('getaddrinfo ENOTFOUND nope.example'), { code: 'ENOTFOUND' }));
    expect((await ask(new AddressPolicy([], { resolve: failing.resolve }), 'nope.example')).err?.message).toMatch(/ENOTFOUND/);
    const empty = scripted([]);
    const r = await ask(new AddressPolicy([], { resolve: empty.resolve }), 'empty.example');
    expect((r.err as NodeJS.ErrnoException).code).toBe('ENOTFOUND');
  });

  test('real resolution: localhost is refused, and accepted when loopback is allowed', async () => {
    const refused = await ask(new AddressPolicy([]), 'localhost', { all: true });
    expect(refused.err?.message).toMatch(/^localhost resolves to (127\.\d+\.\d+\.\d+|::1), which is not public \(loopback\)/);
    const allowed = await ask(new AddressPolicy(['127.0.0.0/8', '::1/128']), 'localhost');
    expect(allowed.err).toBeNull();
    expect(String(allowed.address)).toMatch(/^(127\.|::1$)/);
  });
});

describe('settings', () => {
  test('HOOKLANE_ENDPOINT_HTTPS_ONLY and HOOKLANE_PUBLIC_URL: defaults and parsing', () => {
    const d = loadConfig({}, {});
    expect([d.endpointHttpsOnly, d.publicUrl]).toEqual([false, undefined]);
    const c = loadConfig({}, { HOOKLANE_ENDPOINT_HTTPS_ONLY: 'true', HOOKLANE_PUBLIC_URL: 'https://hooks.example.com' });
    expect([c.endpointHttpsOnly, c.publicUrl]).toEqual([true, 'https://hooks.example.com']);
    expect(loadConfig({}, { HOOKLANE_PUBLIC_URL: '' }).publicUrl).toBeUndefined();
  });

  test.each([
    ['HOOKLANE_ENDPOINT_HTTPS_ONLY', 'maybe'],
    ['HOOKLANE_PUBLIC_URL', 'hooks.example.com'],
    ['HOOKLANE_PUBLIC_URL', 'ftp://hooks.example.com'],
  ])('a bad %s=%s fails naming the setting', (name, value) => {
    expect(() => loadConfig({}, { [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({}, { [name]: value })).toThrow(name);
  });
});
