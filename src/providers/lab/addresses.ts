/**
 * IPv4 arithmetic for the lab subnet and the cluster's persistent address map. Addresses are stable: a host keeps
 * its address across re-runs and when other hosts are added, because SSH known-hosts entries and swarm advertise
 * addresses are keyed by it.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { HostStepError } from '../../base/errors.js';
import { addressesFile } from './paths.js';

/** A parsed IPv4 CIDR. `network` and `broadcast` are unsigned 32-bit integers. */
export interface Subnet {
  cidr: string;
  network: number;
  prefix: number;
  broadcast: number;
}

/** Parses a dotted IPv4 address; undefined when malformed. */
export function parseIp(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

/** Formats an unsigned 32-bit integer as a dotted IPv4 address. */
export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses `a.b.c.d/p`; undefined when malformed or when host bits are set. */
export function parseCidr(cidr: string): Subnet | undefined {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
  if (!m) return undefined;
  const ip = parseIp(m[1]);
  const prefix = Number(m[2]);
  if (ip === undefined || prefix > 32) return undefined;
  const size = 2 ** (32 - prefix);
  if (ip % size !== 0) return undefined;
  return { cidr, network: ip, prefix, broadcast: ip + size - 1 };
}

/** True when `inner` lies wholly inside `outer`. */
export function contains(outer: Subnet, inner: Subnet): boolean {
  return inner.network >= outer.network && inner.broadcast <= outer.broadcast;
}

/** True when two subnets share any address. */
export function overlaps(a: Subnet, b: Subnet): boolean {
  return a.network <= b.broadcast && b.network <= a.broadcast;
}

/** The bridge's own address (.1): every host's default gateway. */
export function gatewayOf(subnet: Subnet): string {
  return formatIp(subnet.network + 1);
}

/** First address handed to a host (.2, after the bridge). */
function firstHost(subnet: Subnet): number {
  return subnet.network + 2;
}

/** How many hosts fit: everything but the network, the bridge and the broadcast address. */
export function capacity(subnet: Subnet): number {
  return Math.max(0, subnet.broadcast - subnet.network - 2);
}

/** True when `address` is a host address of `subnet`. */
export function isHostAddress(subnet: Subnet, address: string): boolean {
  const n = parseIp(address);
  return n !== undefined && n >= firstHost(subnet) && n < subnet.broadcast;
}

/** The first `count` host addresses, for planning a fresh cluster offline. */
export function firstAddresses(subnet: Subnet, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count && i < capacity(subnet); i++) out.push(formatIp(firstHost(subnet) + i));
  return out;
}

/** name -> address, as kept in addresses.json. */
export type AddressMap = Record<string, string>;

/** Reads the cluster's address map; empty when the cluster has none yet. */
export async function readAddresses(cluster: string): Promise<AddressMap> {
  try {
    const parsed: unknown = JSON.parse(await fs.readFile(addressesFile(cluster), 'utf8'));
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      const out: AddressMap = {};
      for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') out[k] = v;
      return out;
    }
    return {};
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
}

async function writeAddresses(cluster: string, map: AddressMap): Promise<void> {
  const file = addressesFile(cluster);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  const sorted = Object.fromEntries(Object.entries(map).sort(([a], [b]) => a.localeCompare(b)));
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.writeFile(tmp, `${JSON.stringify(sorted, null, 2)}\n`, { mode: 0o644 });
  await fs.rename(tmp, file);
}

// Read-modify-write of addresses.json is serialized per cluster within this process; across processes the
// caller's cluster lock keeps runs apart.
const queues = new Map<string, Promise<unknown>>();
function serialized<T>(cluster: string, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(cluster) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  queues.set(
    cluster,
    next.catch(() => undefined),
  );
  return next;
}

/** Addresses no host may take although addresses.json does not list them (e.g. read from machine.json files). */
export type Reserved = AddressMap;

/**
 * Gives every name an address, keeping existing ones and taking the lowest free address from .2 up for new ones.
 * `reserved` are name -> address pairs found elsewhere (machine.json) that must be honoured too.
 * Throws when the subnet is full; the map is saved before returning.
 */
export function allocateAddresses(
  cluster: string,
  subnet: Subnet,
  names: string[],
  reserved: Reserved = {},
): Promise<AddressMap> {
  return serialized(cluster, async () => {
    const map = await readAddresses(cluster);
    for (const [name, addr] of Object.entries(reserved)) if (!(name in map)) map[name] = addr;
    const used = new Set(Object.values(map).map((a) => parseIp(a)));
    let next = firstHost(subnet);
    for (const name of names) {
      if (name in map) continue;
      while (next < subnet.broadcast && used.has(next)) next++;
      if (next >= subnet.broadcast) {
        throw new HostStepError(name, 'create host', `subnet ${subnet.cidr} has no free address left`, {
          hint: 'tear the cluster down and set providers.lab.subnet to a larger subnet, or ask for fewer hosts',
        });
      }
      map[name] = formatIp(next);
      used.add(next);
    }
    await writeAddresses(cluster, map);
    const out: AddressMap = {};
    for (const name of names) out[name] = map[name];
    return out;
  });
}

/** Drops names from the cluster's address map (their addresses become free for new hosts). */
export function releaseAddresses(cluster: string, names: string[]): Promise<void> {
  return serialized(cluster, async () => {
    const map = await readAddresses(cluster);
    let changed = false;
    for (const n of names) {
      if (n in map) {
        delete map[n];
        changed = true;
      }
    }
    if (!changed) return;
    try {
      await fs.access(path.dirname(addressesFile(cluster)));
    } catch {
      return; // The cluster directory is already gone: nothing to keep.
    }
    await writeAddresses(cluster, map);
  });
}
