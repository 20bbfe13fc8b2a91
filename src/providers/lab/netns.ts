/**
 * A host's network namespace: veth to the bridge (the host sees `eth0`), address, default route via the bridge,
 * and the firewall of a fresh server (INPUT drops everything but loopback, replies and SSH).
 *
 * Commands that must run inside the namespace use `nsenter --net=/run/netns/NAME`, never `ip netns exec`: the latter
 * remounts /sys, which hides the cgroup mounts from everything started below it.
 */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { deleteLink } from './bridge.js';
import { CommandError, run } from './exec.js';

const NETNS_DIR = '/run/netns';

/** Path of a named network namespace's bind mount. */
export function netnsPath(name: string): string {
  return path.join(NETNS_DIR, name);
}

/** True when the named network namespace exists. */
export function netnsExists(name: string): boolean {
  return existsSync(netnsPath(name));
}

/** Names of all named network namespaces. */
export async function listNetns(): Promise<string[]> {
  try {
    return await fs.readdir(NETNS_DIR);
  } catch {
    return [];
  }
}

/** Inode of the named namespace, the same number /proc/PID/ns/net shows for its processes; undefined if gone. */
export async function netnsInode(name: string): Promise<number | undefined> {
  try {
    return (await fs.stat(netnsPath(name))).ino;
  } catch {
    return undefined;
  }
}

/** Where a host plugs into the cluster network. */
export interface HostNetwork {
  netns: string;
  veth: string;
  bridge: string;
  address: string;
  /** Network address of the lab subnet (with `prefix`, the only destination the host may reach). */
  subnetNetwork: string;
  prefix: number;
  gateway: string;
  /**
   * Install the fresh-server firewall of a namespace host (default true). False for OS hosts: their own firewall
   * tooling (nftables, ufw, firewalld) owns the namespace's rules, as on a real server.
   */
  firewall?: boolean;
}

/**
 * The firewall of a fresh server: only SSH (and replies to the host's own traffic) come in.
 *
 * Outbound, anything not for the lab subnet is rejected at once (chain LAB-EGRESS, for the host's own traffic and
 * for its containers'). Lab hosts can reach nothing else anyway (the root namespace does not forward for them), but
 * without the reject every attempt waits for a timeout: dockerd tries a registry pull for each service task even
 * with the image present, and its DNS lookup then holds the task in "Preparing" for about 20 s.
 */
function freshFirewall(subnetCidr: string): string {
  return [
    '*filter',
    ':INPUT DROP [0:0]',
    ':FORWARD ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':LAB-EGRESS - [0:0]',
    ':DOCKER-USER - [0:0]',
    '-A INPUT -i lo -j ACCEPT',
    '-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT',
    '-A OUTPUT -o eth0 -j LAB-EGRESS',
    // Containers' traffic: dockerd puts its own FORWARD rules first but keeps DOCKER-USER, its hook for exactly this.
    '-A DOCKER-USER -o eth0 -j LAB-EGRESS',
    `-A LAB-EGRESS -d ${subnetCidr} -j RETURN`,
    '-A LAB-EGRESS -p tcp -j REJECT --reject-with tcp-reset',
    '-A LAB-EGRESS -j REJECT --reject-with icmp-port-unreachable',
    'COMMIT',
    '',
  ].join('\n');
}

/**
 * Inside the namespace, before any interface has an address: IPv6 off (the firewall only covers IPv4; link-local
 * IPv6 would reach dockerd's ports around it, and no lab traffic needs IPv6), then the firewall from stdin.
 * One process for both, because hosts are made by the dozen on a 2-core machine.
 */
const NS_INIT_SCRIPT = `if [ -d /proc/sys/net/ipv6 ]; then
  echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
  echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
fi
exec iptables-restore`;

/** Creates the namespace, its firewall, veth pair, address and route. Expects the netns not to exist. */
export async function createHostNetwork(net: HostNetwork): Promise<void> {
  const nsPath = netnsPath(net.netns);
  await run('ip', ['netns', 'add', net.netns], { timeoutMs: 15_000 });
  const subnetCidr = `${net.subnetNetwork}/${net.prefix}`;
  if (net.firewall === false) {
    // IPv6 off all the same (no lab traffic needs it); the rules are the booted OS's business.
    await run('nsenter', [`--net=${nsPath}`, '/bin/sh', '-c', NS_INIT_SCRIPT.replace('exec iptables-restore', 'exit 0')], { timeoutMs: 30_000 });
  } else {
    await run('nsenter', [`--net=${nsPath}`, '/bin/sh', '-c', NS_INIT_SCRIPT], {
      input: freshFirewall(subnetCidr),
      timeoutMs: 30_000,
    });
  }
  const rootBatch = [
    `link add ${net.veth} type veth peer name eth0 netns ${net.netns}`,
    `link set dev ${net.veth} master ${net.bridge} up`,
    '',
  ].join('\n');
  const first = await run('ip', ['-batch', '-'], { input: rootBatch, allowFail: true, timeoutMs: 15_000 });
  if (first.code !== 0) {
    // A veth of that name left by a crashed run: remove it and try once more.
    if (!/exists/i.test(first.stderr)) throw new CommandError('ip -batch -', first.code, first.stderr);
    await deleteLink(net.veth);
    await run('ip', ['-batch', '-'], { input: rootBatch, timeoutMs: 15_000 });
  }
  const nsBatch = [
    'link set dev lo up',
    `addr add ${net.address}/${net.prefix} dev eth0`,
    'link set dev eth0 up',
    `route add default via ${net.gateway} dev eth0`,
    '',
  ].join('\n');
  await run('ip', ['-n', net.netns, '-batch', '-'], { input: nsBatch, timeoutMs: 15_000 });
}

/** Deletes a named network namespace (its veth pair goes with it); a namespace already gone is fine. */
export async function deleteNetns(name: string): Promise<void> {
  if (!netnsExists(name)) return;
  const r = await run('ip', ['netns', 'del', name], { allowFail: true, timeoutMs: 15_000 });
  if (r.code !== 0 && netnsExists(name)) {
    await run('ip', ['netns', 'del', name], { timeoutMs: 15_000 });
  }
}
