import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Config } from '../config.js';

/**
 * Outbound destination policy (the SSRF guard). Only globally routable
 * addresses may be dialled, unless an address lies inside an explicitly
 * allowed subnet; Hooklane never calls itself.
 *
 * Checked at three points:
 * - save time (`checkUrl(url, 'save')`): scheme, credentials, HTTPS-only, IP
 *   literals in any spelling, names known to be loopback or cloud metadata,
 *   Hooklane's own address. No DNS here: it would be slow and flaky offline.
 * - before a request (`checkUrl(url, 'dial')`): the same, minus the name
 *   rules (names are judged by what they resolve to).
 * - inside the connection: `lookup` replaces dns.lookup for the socket, so
 *   the addresses checked are the addresses dialled (no rebinding window),
 *   and `checkPeer` checks the connected socket's remote address, which also
 *   covers IP literals (they skip lookup).
 */

// --- address parsing ---------------------------------------------------------

type Bytes = readonly number[];

/** 16 bytes of an IPv6 address that `isIP` accepted (zone id already removed). */
function ipv6Bytes(text: string): Bytes | null {
  let s = text;
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(2).map(Number) as [number, number, number, number];
    s = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const groups = halves.length === 2 ? [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail] : head;
  if (groups.length !== 8) return null;
  const out: number[] = [];
  for (const g of groups) {
    const n = parseInt(g, 16);
    if (!/^[0-9a-f]{1,4}$/i.test(g) || Number.isNaN(n)) return null;
    out.push(n >> 8, n & 0xff);
  }
  return out;
}

const v4Text = (b: Bytes) => b.join('.');

export interface ParsedIp {
  /** Canonical text: dotted quad, or the WHATWG-serialised IPv6 form. */
  ip: string;
  bytes: Bytes;
  v6: boolean;
}

/**
 * The IP address a host string denotes, in any spelling a URL parser or
 * inet_aton accepts (`127.1`, `2130706433`, `0x7f.0.0.1`, `017700000001`,
 * `[::ffff:7f00:1]`, `::ffff:127.0.0.1`, a trailing dot), or null for a name.
 */
export function parseIp(host: string): ParsedIp | null {
  let h = host.trim();
  if (/[/?#@\\\s]/.test(h)) return null; // not a bare host: never let URL parsing pick a part of it
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.includes(':')) {
    h = h.replace(/%.*$/, ''); // zone id (fe80::1%eth0), as DNS answers may carry
    if (isIP(h) !== 6) return null;
    const bytes = ipv6Bytes(h);
    if (!bytes) return null;
    return { ip: new URL(`http://[${h}]/`).hostname.slice(1, -1), bytes, v6: true };
  }
  let canonical: string;
  try {
    // The WHATWG host parser is what turns a URL's host into the address dialled.
    canonical = new URL(`http://${h}/`).hostname;
  } catch {
    return null;
  }
  if (isIP(canonical) !== 4) return null;
  return { ip: canonical, bytes: canonical.split('.').map(Number), v6: false };
}

// --- classification ----------------------------------------------------------

interface Rule {
  bytes: Bytes;
  bits: number;
  why: string;
}

function rule(cidr: string, why: string): Rule {
  const [addr, bits] = cidr.split('/') as [string, string];
  const p = parseIp(addr);
  if (!p) throw new Error(`bad rule ${cidr}`);
  return { bytes: p.bytes, bits: Number(bits), why };
}

function inPrefix(bytes: Bytes, r: Rule): boolean {
  for (let i = 0, left = r.bits; left > 0; i++, left -= 8) {
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if (((bytes[i] ?? 0) & mask) !== ((r.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

const CLOUD_METADATA = 'cloud metadata service';

/** IPv4 addresses that are not globally routable; the most specific first. */
const V4_RULES: Rule[] = [
  rule('169.254.169.254/32', CLOUD_METADATA),
  rule('169.254.170.2/32', CLOUD_METADATA), // AWS ECS task metadata
  rule('100.100.100.200/32', CLOUD_METADATA), // Alibaba Cloud
  rule('192.0.0.192/32', CLOUD_METADATA), // Oracle Cloud
  rule('255.255.255.255/32', 'broadcast'),
  rule('0.0.0.0/8', 'unspecified, "this network"'),
  rule('10.0.0.0/8', 'private, RFC 1918'),
  rule('100.64.0.0/10', 'shared address space, CGNAT'),
  rule('127.0.0.0/8', 'loopback'),
  rule('169.254.0.0/16', 'link-local'),
  rule('172.16.0.0/12', 'private, RFC 1918'),
  rule('192.0.0.0/24', 'IETF protocol assignments'),
  rule('192.0.2.0/24', 'documentation'),
  rule('192.88.99.0/24', '6to4 relay anycast'),
  rule('192.168.0.0/16', 'private, RFC 1918'),
  rule('198.18.0.0/15', 'benchmarking'),
  rule('198.51.100.0/24', 'documentation'),
  rule('203.0.113.0/24', 'documentation'),
  rule('224.0.0.0/4', 'multicast'),
  rule('240.0.0.0/4', 'reserved'),
];

const MAPPED = rule('::ffff:0:0/96', 'IPv4-mapped');
const NAT64 = rule('64:ff9b::/96', 'NAT64');
const SIX_TO_FOUR = rule('2002::/16', '6to4');
const GLOBAL_UNICAST = rule('2000::/3', 'global unicast');

/** IPv6 addresses that are not global; outside 2000::/3 nothing is. */
const V6_RULES: Rule[] = [
  rule('fd00:ec2::254/128', CLOUD_METADATA), // AWS IMDS over IPv6
  rule('::/128', 'unspecified'),
  rule('::1/128', 'loopback'),
  rule('::/96', 'IPv4-compatible (deprecated)'),
  rule('64:ff9b:1::/48', 'local-use NAT64'),
  rule('100::/64', 'discard-only'),
  rule('fc00::/7', 'unique local, ULA'),
  rule('fe80::/10', 'link-local'),
  rule('fec0::/10', 'site-local (deprecated)'),
  rule('ff00::/8', 'multicast'),
  // Inside 2000::/3:
  rule('2001::/32', 'Teredo'),
  rule('2001:db8::/32', 'documentation'),
  rule('2001::/23', 'IETF protocol assignments'),
  rule('3fff::/20', 'documentation'),
  rule('5f00::/16', 'segment routing (SRv6) SIDs'),
];

function classifyV4(bytes: Bytes): string | null {
  return V4_RULES.find((r) => inPrefix(bytes, r))?.why ?? null;
}

/**
 * Why an address is not globally routable, or null when it is. The IPv6
 * forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, NAT64
 * `64:ff9b::a.b.c.d`) are judged by the address they carry; 6to4 and Teredo
 * are refused outright (deprecated, and routed through third-party relays).
 */
export function classifyAddress(address: string): string | null {
  const p = parseIp(address);
  if (!p) return 'not an IP address';
  if (!p.v6) return classifyV4(p.bytes);
  const b = p.bytes;
  for (const [form, label] of [[MAPPED, 'IPv4-mapped'], [NAT64, 'NAT64']] as const) {
    if (inPrefix(b, form)) {
      const inner = b.slice(12);
      const why = classifyV4(inner);
      return why ? `${label} form of ${v4Text(inner)}, ${why}` : null;
    }
  }
  if (inPrefix(b, SIX_TO_FOUR)) {
    const inner = b.slice(2, 6);
    const why = classifyV4(inner);
    return `6to4, deprecated${why ? `, embedding ${v4Text(inner)}, ${why}` : ''}`;
  }
  const hit = V6_RULES.find((r) => inPrefix(b, r));
  if (hit) return hit.why;
  return inPrefix(b, GLOBAL_UNICAST) ? null : 'reserved, not global unicast';
}

/** The IPv4 address an IPv4-mapped IPv6 address stands for (the OS dials it as IPv4). */
function unmapped(p: ParsedIp): ParsedIp {
  if (!p.v6 || !inPrefix(p.bytes, MAPPED)) return p;
  const bytes = p.bytes.slice(12);
  return { ip: v4Text(bytes), bytes, v6: false };
}

// --- names -------------------------------------------------------------------

/** Names that mean this machine (RFC 6761 and common /etc/hosts entries). */
const LOOPBACK_NAME = /^(localhost|localhost\.localdomain|ip6-localhost|ip6-loopback)$|\.localhost$/;
/** Names of cloud metadata services. */
const METADATA_NAMES = new Set([
  'metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data', 'instance-data.ec2.internal', 'metadata.tencentyun.com',
]);

const normaliseName = (host: string) => host.toLowerCase().replace(/\.+$/, '');

// --- the policy --------------------------------------------------------------

export class BlockedAddressError extends Error {
  readonly code = 'EHOOKLANEBLOCKED';
}

/** dns.lookup with `all: true`, as a test may replace it. */
export type Resolver = (
  hostname: string,
  options: { all: true; family?: number; hints?: number },
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

const systemResolver: Resolver = (hostname, options, callback) =>
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => callback(err, addresses ?? []));

export interface AddressPolicyOptions {
  /** Refuse `http:` destinations (HOOKLANE_ENDPOINT_HTTPS_ONLY). */
  httpsOnly?: boolean;
  /** Ports Hooklane listens on; any local address with one of them is Hooklane itself. */
  selfPorts?: () => readonly number[];
  /** Hooklane's public URL (HOOKLANE_PUBLIC_URL); its origin is Hooklane itself. */
  publicUrl?: string;
  /** Resolves names (default: dns.lookup); tests inject a controlled one. */
  resolve?: Resolver;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

const HINT = 'an operator can open ranges with HOOKLANE_ALLOWED_SUBNETS';
const defaultPort = (u: URL) => Number(u.port || (u.protocol === 'https:' ? 443 : 80));

export class AddressPolicy {
  private readonly allowed = new BlockList();
  private readonly resolve: Resolver;
  private readonly publicOrigin: { host: string; port: number } | null;

  constructor(allowedSubnets: readonly string[], private readonly opts: AddressPolicyOptions = {}) {
    for (const cidr of allowedSubnets) {
      const [addr, bits] = cidr.split('/');
      this.allowed.addSubnet(addr!, Number(bits), isIP(addr!) === 6 ? 'ipv6' : 'ipv4');
    }
    this.resolve = opts.resolve ?? systemResolver;
    const pub = opts.publicUrl ? new URL(opts.publicUrl) : null;
    this.publicOrigin = pub ? { host: normaliseName(pub.hostname), port: defaultPort(pub) } : null;
  }

  /** The policy of a configuration; `selfPorts` adds ports known only once listening. */
  static fromConfig(
    config: Pick<Config, 'allowedSubnets' | 'endpointHttpsOnly' | 'publicUrl' | 'port'>,
    selfPorts: () => readonly number[] = () => [],
  ): AddressPolicy {
    return new AddressPolicy(config.allowedSubnets, {
      httpsOnly: config.endpointHttpsOnly,
      publicUrl: config.publicUrl,
      selfPorts: () => [config.port, ...selfPorts()].filter((p) => p > 0),
    });
  }

  /** The canonical address and why it may not be dialled, or null when it may. */
  private judge(address: string): { ip: string; why: string } | null {
    const p = parseIp(address);
    if (!p) return { ip: address, why: 'not an IP address' };
    const plain = unmapped(p);
    if (this.allowed.check(plain.ip, plain.v6 ? 'ipv6' : 'ipv4')) return null;
    const why = classifyAddress(p.ip);
    return why ? { ip: p.ip, why } : null;
  }

  /** Why an address may not be dialled, as a sentence, or null when it may. */
  refusal(address: string): string | null {
    const j = this.judge(address);
    return j && `${j.ip} is not public (${j.why}); ${HINT}`;
  }

  isAllowed(address: string): boolean {
    return this.refusal(address) === null;
  }

  /** True when `address:port` is Hooklane itself: one of its ports on a local address. */
  isSelf(address: string, port: number): boolean {
    const ports = this.opts.selfPorts?.() ?? [];
    if (!ports.includes(port)) return false;
    const p = parseIp(address);
    if (!p) return false;
    const plain = unmapped(p);
    const why = classifyAddress(plain.ip);
    if (why === 'loopback' || why?.startsWith('unspecified')) return true;
    return localAddresses().has(plain.ip);
  }

  /**
   * Throws BlockedAddressError when a host is refused without resolving it:
   * an IP literal that is not allowed, or (at save time) a name known to be
   * loopback or a cloud metadata service.
   */
  checkHost(hostname: string, stage: 'save' | 'dial' = 'save'): void {
    const ip = parseIp(hostname);
    if (ip) {
      const why = this.refusal(ip.ip);
      if (why) throw new BlockedAddressError(`destination ${why}`);
      return;
    }
    if (stage !== 'save') return;
    const name = normaliseName(hostname);
    if (LOOPBACK_NAME.test(name) && this.refusal('127.0.0.1') && this.refusal('::1')) {
      throw new BlockedAddressError(`destination ${name} is this machine (loopback), not public; ${HINT}`);
    }
    if (METADATA_NAMES.has(name) && this.refusal('169.254.169.254')) {
      throw new BlockedAddressError(`destination ${name} is a ${CLOUD_METADATA}, not public`);
    }
  }

  /**
   * Every check that needs no DNS, on a whole URL; returns the parsed URL.
   * `save` adds the name rules; at `dial` names are judged by resolution.
   */
  checkUrl(url: string | URL, stage: 'save' | 'dial'): URL {
    let u: URL;
    try {
      u = typeof url === 'string' ? new URL(url) : url;
    } catch {
      throw new BlockedAddressError('must be an absolute http or https URL');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new BlockedAddressError(`must use http or https, not ${u.protocol.slice(0, -1)}`);
    if (u.username || u.password) throw new BlockedAddressError('must not carry credentials (user:password@)');
    if (this.opts.httpsOnly && u.protocol !== 'https:') throw new BlockedAddressError('must use https: HOOKLANE_ENDPOINT_HTTPS_ONLY is on');
    const host = normaliseName(u.hostname);
    const port = defaultPort(u);
    if (this.publicOrigin && this.publicOrigin.host === host && this.publicOrigin.port === port) {
      throw new BlockedAddressError('must not point back at Hooklane itself (HOOKLANE_PUBLIC_URL)');
    }
    // Before the address rules: allowed subnets open ranges, never Hooklane itself.
    const ip = parseIp(u.hostname);
    const local = ip ? ip.ip : LOOPBACK_NAME.test(host) ? '127.0.0.1' : null;
    if (local && this.isSelf(local, port)) throw new BlockedAddressError(`must not point back at Hooklane itself (port ${port} of this machine)`);
    this.checkHost(u.hostname, stage);
    return u;
  }

  /** The check on a connected socket's peer: the address actually dialled. */
  checkPeer(address: string | undefined, port: number | undefined): BlockedAddressError | null {
    if (!address) return new BlockedAddressError('the connection closed before its address was known');
    const why = this.refusal(address);
    if (why) return new BlockedAddressError(`connected address ${why}`);
    if (port !== undefined && this.isSelf(address, port)) return new BlockedAddressError(`${address}:${port} is Hooklane itself`);
    return null;
  }

  /**
   * A drop-in for dns.lookup (undici's `connect.lookup`). Refuses the name
   * when any of its addresses is refused, so a name with mixed public and
   * private records is refused; answers in both shapes Node asks for (one
   * address, or `all: true` for autoSelectFamily).
   */
  readonly lookup = (hostname: string, options: { family?: number | string; hints?: number; all?: boolean }, callback: LookupCallback): void => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : typeof options.family === 'number' ? options.family : undefined;
    this.resolve(hostname, { all: true, ...(family ? { family } : {}), ...(options.hints ? { hints: options.hints } : {}) }, (err, addresses) => {
      if (err) return callback(err, options.all ? [] : '');
      for (const a of addresses) {
        const j = this.judge(a.address);
        if (j) return callback(new BlockedAddressError(`${hostname} resolves to ${j.ip}, which is not public (${j.why}); ${HINT}`), options.all ? [] : '');
      }
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), options.all ? [] : '');
      if (options.all) return callback(null, addresses);
      callback(null, first.address, first.family);
    });
  };
}

/** Addresses of this machine's interfaces, canonical text, IPv4-mapped unwrapped. */
function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const p = parseIp(a.address);
      if (p) out.add(unmapped(p).ip);
    }
  }
  return out;
}
