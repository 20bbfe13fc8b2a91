/**
 * The cluster's bridge in the root namespace and the root namespace's FORWARD rules for it.
 *
 * Once any dockerd has run in the root namespace, br_netfilter is on and FORWARD's policy is DROP, so frames between
 * two lab hosts would be dropped. We accept bridge-to-bridge traffic and drop anything routed between the bridge and
 * another interface: lab hosts reach each other and the root namespace (INPUT/OUTPUT, not FORWARD), nothing else,
 * even when the machine has ip_forward on for its own reasons.
 */
import { UsageError } from '../../base/errors.js';
import { gatewayOf, overlaps, parseIp, type Subnet } from './addresses.js';
import { promises as fs } from 'node:fs';
import { run } from './exec.js';

interface IpAddrInfo {
  family?: string;
  local?: string;
  prefixlen?: number;
}
interface IpLink {
  ifname: string;
  master?: string;
  link_netnsid?: number;
  addr_info?: IpAddrInfo[];
  linkinfo?: { info_kind?: string };
}

/** Links of the root namespace as `ip -j` reports them (with addresses when `addresses` is set). */
export async function listLinks(opts: { addresses?: boolean; type?: string } = {}): Promise<IpLink[]> {
  const args = opts.addresses ? ['-j', '-4', 'addr', 'show'] : ['-j', '-d', 'link', 'show'];
  if (opts.type) args.push('type', opts.type);
  const { stdout } = await run('ip', args, { timeoutMs: 15_000 });
  return stdout.trim() ? (JSON.parse(stdout) as IpLink[]) : [];
}

/** True when a link of that name exists in the root namespace. */
export async function linkExists(name: string): Promise<boolean> {
  const r = await run('ip', ['link', 'show', 'dev', name], { allowFail: true, timeoutMs: 15_000 });
  return r.code === 0;
}

/** Deletes a root-namespace link; a link already gone is fine. */
export async function deleteLink(name: string): Promise<void> {
  if (!(await linkExists(name))) return;
  const r = await run('ip', ['link', 'del', 'dev', name], { allowFail: true, timeoutMs: 15_000 });
  if (r.code !== 0 && (await linkExists(name))) {
    await run('ip', ['link', 'del', 'dev', name], { timeoutMs: 15_000 });
  }
}

/**
 * Creates the bridge with the subnet's .1 and brings it up; idempotent. Throws UsageError when another interface
 * already holds part of the subnet (another lab cluster on the default subnet, or a real network).
 */
export async function ensureBridge(bridge: string, subnet: Subnet): Promise<void> {
  const gateway = gatewayOf(subnet);
  const links = await listLinks({ addresses: true });
  for (const link of links) {
    for (const a of link.addr_info ?? []) {
      if (a.family !== 'inet' || !a.local || a.prefixlen === undefined) continue;
      const theirs = networkOf(a.local, a.prefixlen);
      if (!theirs || !overlaps(theirs, subnet)) continue;
      if (link.ifname === bridge && a.local === gateway && a.prefixlen === subnet.prefix) continue;
      if (link.ifname === bridge) {
        throw new UsageError(
          `bridge ${bridge} has address ${a.local}/${a.prefixlen}, not ${gateway}/${subnet.prefix}: ` +
            'tear the cluster down before changing providers.lab.subnet',
        );
      }
      throw new UsageError(
        `lab subnet ${subnet.cidr} overlaps ${a.local}/${a.prefixlen} on interface ${link.ifname}` +
          ' (another lab cluster?)',
        { hint: 'give this cluster its own subnet, e.g. providers.lab.subnet: 198.18.7.0/24' },
      );
    }
  }
  if (!(await linkExists(bridge))) {
    const r = await run('ip', ['link', 'add', 'name', bridge, 'type', 'bridge'], { allowFail: true, timeoutMs: 15_000 });
    // Two runs may race to create it; only a bridge that still does not exist is an error.
    if (r.code !== 0 && !(await linkExists(bridge))) {
      await run('ip', ['link', 'add', 'name', bridge, 'type', 'bridge'], { timeoutMs: 15_000 });
    }
  }
  const own = links.find((l) => l.ifname === bridge)?.addr_info ?? [];
  if (!own.some((a) => a.local === gateway && a.prefixlen === subnet.prefix)) {
    const r = await run('ip', ['addr', 'add', `${gateway}/${subnet.prefix}`, 'dev', bridge], {
      allowFail: true,
      timeoutMs: 15_000,
    });
    if (r.code !== 0 && !/File exists|Address already assigned/.test(r.stderr)) {
      await run('ip', ['addr', 'add', `${gateway}/${subnet.prefix}`, 'dev', bridge], { timeoutMs: 15_000 });
    }
  }
  await run('ip', ['link', 'set', 'dev', bridge, 'up'], { timeoutMs: 15_000 });
}

/** The FORWARD rules for a bridge, in the order they must appear (the accept first). */
function forwardRules(bridge: string, comment: string): string[][] {
  const tag = ['-m', 'comment', '--comment', comment];
  return [
    ['-i', bridge, '-o', bridge, ...tag, '-j', 'ACCEPT'],
    ['-i', bridge, '!', '-o', bridge, ...tag, '-j', 'DROP'],
    ['-o', bridge, '!', '-i', bridge, ...tag, '-j', 'DROP'],
  ];
}

/** Puts the cluster's FORWARD rules at the top of the root namespace's FORWARD chain; idempotent. */
export async function ensureForwardRules(bridge: string, comment: string): Promise<void> {
  const rules = forwardRules(bridge, comment);
  let present = 0;
  for (const rule of rules) {
    const r = await run('iptables', ['-w', '5', '-C', 'FORWARD', ...rule], { allowFail: true, timeoutMs: 30_000 });
    if (r.code === 0) present++;
  }
  if (present === rules.length) return;
  // Partly there (an interrupted run): start over so the accept surely precedes the drops.
  await removeForwardRules(comment);
  for (const rule of [...rules].reverse()) {
    await run('iptables', ['-w', '5', '-I', 'FORWARD', '1', ...rule], { timeoutMs: 30_000 });
  }
}

/** Deletes every FORWARD rule carrying exactly this comment; none left is fine. */
export async function removeForwardRules(comment: string): Promise<void> {
  const r = await run('iptables', ['-w', '5', '-S', 'FORWARD'], { allowFail: true, timeoutMs: 30_000 });
  if (r.code !== 0) return;
  for (const line of r.stdout.split('\n')) {
    const words = line.trim().split(/\s+/);
    const at = words.indexOf('--comment');
    // Compare the whole word: cluster "a" must not remove the rules of cluster "a-b".
    if (words[0] !== '-A' || at < 0 || unquote(words[at + 1] ?? '') !== comment) continue;
    const args = ['-w', '5', '-D', ...words.slice(1).map(unquote)];
    await run('iptables', args, { allowFail: true, timeoutMs: 30_000 });
  }
}

function unquote(word: string): string {
  return word.length >= 2 && word.startsWith('"') && word.endsWith('"') ? word.slice(1, -1) : word;
}

function networkOf(address: string, prefix: number): Subnet | undefined {
  const ip = parseIp(address);
  if (ip === undefined || prefix < 0 || prefix > 32) return undefined;
  const size = 2 ** (32 - prefix);
  const network = ip - (ip % size);
  return { cidr: `${address}/${prefix}`, network, prefix, broadcast: network + size - 1 };
}

/**
 * The kernel keeps ONE neighbour (ARP) table for all network namespaces, limited by the root namespace's
 * net.ipv4.neigh.default.gc_thresh3 (1024 by default). Swarm nodes gossip with every other node, so a lab cluster of
 * n hosts needs about n x n entries: past about 30 hosts the table overflows ("neighbor table overflow!" in the
 * kernel log), ARP fails, and joins and SSH fail with "No route to host" or time out; 3+117 lost its Raft leader.
 * Raises the limits (never lowers them) to room for four times n x n entries, which also leaves room for other
 * clusters. Returns a message when it changed something.
 */
export async function ensureNeighbourCapacity(hosts: number): Promise<string | undefined> {
  const want3 = Math.max(1024, 2 ** Math.ceil(Math.log2(Math.max(1, 4 * hosts * hosts))));
  const changed: string[] = [];
  for (const family of ['ipv4', 'ipv6']) {
    const want: Record<string, number> = { gc_thresh1: want3 / 8, gc_thresh2: want3 / 2, gc_thresh3: want3 };
    // Raise 3 before 2 before 1: the kernel wants thresh1 <= thresh2 <= thresh3.
    for (const key of ['gc_thresh3', 'gc_thresh2', 'gc_thresh1']) {
      const file = `/proc/sys/net/${family}/neigh/default/${key}`;
      let have: number;
      try {
        have = Number((await fs.readFile(file, 'utf8')).trim());
      } catch {
        continue; // No IPv6 on this machine.
      }
      if (have >= want[key]!) continue;
      await fs.writeFile(file, `${want[key]}\n`);
      changed.push(`net.${family}.neigh.default.${key} ${have} -> ${want[key]}`);
    }
  }
  return changed.length ? `raised the kernel's neighbour table limits for ${hosts} lab hosts: ${changed.join(', ')}` : undefined;
}
