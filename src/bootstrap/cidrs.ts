/**
 * Collapses a set of IPv4 addresses into the fewest CIDR blocks that cover exactly those addresses, so firewall rules
 * stay few when members are contiguous (a lab subnet, a cloud's sequential private addresses). Written by hand: the
 * npm CIDR libraries either merge ranges (covering addresses that are not members) or pull in large dependencies.
 */
import { SwarmformError } from '../base/errors.js';

/** Parses dotted IPv4 to an unsigned 32-bit integer; throws on anything else. */
export function ipv4ToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw notIpv4(ip);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw notIpv4(ip);
    n = n * 256 + Number(p);
  }
  return n >>> 0;
}

function notIpv4(ip: string): SwarmformError {
  return new SwarmformError(`not an IPv4 address: ${ip}`, { hint: 'the firewall rules between members take dotted IPv4 addresses: give the host an IPv4 address in the inventory (not a name or an IPv6 address)' });
}

/** Formats an unsigned 32-bit integer as dotted IPv4. */
export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** True when `ip` lies inside `cidr` (a.b.c.d/len). */
export function inCidr(ip: string, cidr: string): boolean {
  const [base, lenText] = cidr.split('/');
  const len = Number(lenText ?? 32);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return ((ipv4ToInt(ip) & mask) >>> 0) === ((ipv4ToInt(base!) & mask) >>> 0);
}

/** Exact cover of the addresses by aligned blocks, largest first; O(n log n). */
export function collapseToCidrs(addresses: Iterable<string>): string[] {
  const ints = [...new Set([...addresses].map(ipv4ToInt))].sort((a, b) => a - b);
  const out: string[] = [];
  let i = 0;
  while (i < ints.length) {
    // Extend a run of consecutive addresses, then cut it into aligned power-of-two blocks.
    let j = i;
    while (j + 1 < ints.length && ints[j + 1] === ints[j]! + 1) j++;
    let start = ints[i]!;
    const end = ints[j]!;
    while (start <= end) {
      let size = 1;
      while (size < 2 ** 32 && start % (size * 2) === 0 && start + size * 2 - 1 <= end) size *= 2;
      out.push(`${intToIpv4(start)}/${32 - Math.log2(size)}`);
      start += size;
    }
    i = j + 1;
  }
  return out;
}
