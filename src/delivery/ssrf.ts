import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Outbound address policy: only globally routable addresses may be dialled,
 * unless an address lies inside an explicitly allowed subnet. The check runs
 * inside the socket's own DNS lookup, so the address checked is the address
 * dialled (no rebinding window).
 */

const NON_GLOBAL_V4: [string, number][] = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
];
const NON_GLOBAL_V6: [string, number][] = [
  ['::', 128], ['::1', 128], ['::ffff:0:0', 96], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23],
  ['2001:db8::', 32], ['2002::', 16], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
];

const nonGlobal = new BlockList();
for (const [a, p] of NON_GLOBAL_V4) nonGlobal.addSubnet(a, p, 'ipv4');
for (const [a, p] of NON_GLOBAL_V6) nonGlobal.addSubnet(a, p, 'ipv6');

export class BlockedAddressError extends Error {
  readonly code = 'EHOOKLANEBLOCKED';
}

/** Unwraps `::ffff:a.b.c.d` to the IPv4 address it carries. */
function unmapped(ip: string): { ip: string; family: 'ipv4' | 'ipv6' } {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (m) return { ip: m[1]!, family: 'ipv4' };
  return { ip, family: isIP(ip) === 6 ? 'ipv6' : 'ipv4' };
}

export class AddressPolicy {
  private readonly allowed = new BlockList();

  constructor(allowedSubnets: readonly string[]) {
    for (const cidr of allowedSubnets) {
      const [addr, bits] = cidr.split('/');
      this.allowed.addSubnet(addr!, Number(bits), isIP(addr!) === 6 ? 'ipv6' : 'ipv4');
    }
  }

  isAllowed(address: string): boolean {
    const { ip, family } = unmapped(address);
    if (this.allowed.check(ip, family) || this.allowed.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4')) return true;
    return !nonGlobal.check(ip, family);
  }

  /** Throws when an IP literal host is refused; names are checked at dial time. */
  checkHost(hostname: string): void {
    const host = hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) && !this.isAllowed(host)) throw new BlockedAddressError(`destination address ${host} is not public and not in HOOKLANE_ALLOWED_SUBNETS`);
  }

  /**
   * A drop-in for dns.lookup that refuses the name when any of its addresses
   * is refused (a name with mixed public and private records is refused).
   */
  readonly lookup = (
    hostname: string,
    options: LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as LookupAddress[];
      const bad = list.find((a) => !this.isAllowed(a.address));
      if (bad) {
        return callback(new BlockedAddressError(`${hostname} resolves to ${bad.address}, which is not public and not in HOOKLANE_ALLOWED_SUBNETS`), []);
      }
      if (options.all) return callback(null, list);
      const first = list[0];
      if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}
