/**
 * Can the cluster's advertise addresses reach each other? Offline, from the inventory alone: each provider's hosts
 * advertise addresses in some network (a VPC, a host-only net, the lab bridge, the internet), and cloud firewalls
 * admit the swarm ports from their own members only. Mixed inventories whose networks do not route to each other
 * (private addresses in two clouds) or whose firewalls shut the others out are reported before anything is created.
 */
import { isIP } from 'node:net';
import type { HostSpec, Inventory } from '../inventory/types.js';

/** Where one provider's hosts advertise, and who its cloud firewall lets in. */
export interface AddressSpace {
  provider: string;
  hosts: number;
  /** Hosts in two spaces with different `network` values cannot reach each other (except both `internet`). */
  network: string;
  /** Human text for the network. */
  label: string;
  /** A cloud firewall in front of these hosts admits swarm ports from its own members only (plus `extra`). */
  firewall?: { name: string; extra: string[] };
}

export interface Reachability {
  ok: boolean;
  spaces: AddressSpace[];
  lines: string[];
}

const PRIVATE = [/^10\./, /^192\.168\./, /^172\.(1[6-9]|2\d|3[01])\./, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./, /^127\./, /^169\.254\./, /^198\.1[89]\./, /^f[cd]/i, /^fe80/i];

function isPrivate(a: string): boolean {
  return PRIVATE.some((r) => r.test(a));
}

function setting(inv: Inventory, provider: string, key: string): unknown {
  return (inv.providers?.[provider] as Record<string, unknown> | undefined)?.[key];
}

/** The advertise address space of one provider's hosts under the inventory's `swarm.advertise`. */
export function addressSpace(inv: Inventory, provider: string, hosts: HostSpec[]): AddressSpace | undefined {
  const adv = inv.swarm.advertise;
  const n = hosts.length;
  if (adv.kind === 'cidr') return { provider, hosts: n, network: `cidr:${adv.cidr}`, label: `addresses in ${adv.cidr}` };
  const pub = adv.kind === 'public';
  const extra = (setting(inv, provider, 'swarmFrom') as string[] | undefined) ?? [];
  switch (provider) {
    case 'aws': {
      const region = String(setting(inv, 'aws', 'region') ?? '?');
      const vpc = String(setting(inv, 'aws', 'vpc') ?? setting(inv, 'aws', 'subnet') ?? 'default VPC');
      const firewall = { name: 'the aws security group', extra };
      return pub
        ? { provider, hosts: n, network: 'internet', label: 'aws public addresses', firewall }
        : { provider, hosts: n, network: `aws:${region}:${vpc}`, label: `aws ${region} ${vpc} private addresses`, firewall };
    }
    case 'digitalocean': {
      const region = String(setting(inv, 'digitalocean', 'region') ?? '?');
      const vpc = String(setting(inv, 'digitalocean', 'vpc') ?? 'default VPC');
      const firewall = { name: 'the digitalocean cloud firewall', extra };
      return pub
        ? { provider, hosts: n, network: 'internet', label: 'digitalocean public addresses', firewall }
        : { provider, hosts: n, network: `digitalocean:${region}:${vpc}`, label: `digitalocean ${region} ${vpc} private addresses`, firewall };
    }
    case 'virtualbox': {
      const adapter = String((setting(inv, 'virtualbox', 'hostOnly') as { adapter?: string } | undefined)?.adapter ?? 'vboxnet0');
      return { provider, hosts: n, network: `local:virtualbox:${adapter}`, label: `VirtualBox host-only ${adapter} on this machine (never public)` };
    }
    case 'lab': {
      const subnet = String(setting(inv, 'lab', 'subnet') ?? '198.18.0.0/24');
      return { provider, hosts: n, network: `local:lab`, label: `lab bridge ${subnet} on this machine` };
    }
    case 'ssh': {
      const addrs = hosts.map((h) => (pub ? h.address : (h.privateAddress ?? h.address)) ?? '');
      const ips = addrs.filter((a) => isIP(a));
      if (ips.length === 0 || ips.every((a) => !isPrivate(a))) return { provider, hosts: n, network: 'internet', label: 'ssh hosts\' public addresses' };
      return { provider, hosts: n, network: 'site:ssh', label: 'ssh hosts\' private addresses (their own site)' };
    }
    default:
      return undefined;
  }
}

/** Checks every pair of address spaces; lines for `plan`, problems first. */
export function checkReachability(inv: Inventory, byProvider: { name: string; hosts: HostSpec[] }[]): Reachability {
  const spaces = byProvider.map((p) => addressSpace(inv, p.name, p.hosts)).filter((s): s is AddressSpace => s !== undefined && s.hosts > 0);
  const problems: string[] = [];
  const roles = (name: string) => {
    const hosts = byProvider.find((p) => p.name === name)?.hosts ?? [];
    const m = hosts.filter((h) => h.role === 'manager').length;
    return [m ? `${m} manager(s)` : '', hosts.length - m ? `${hosts.length - m} worker(s)` : ''].filter(Boolean).join(' and ');
  };
  for (let i = 0; i < spaces.length; i++) {
    for (let j = i + 1; j < spaces.length; j++) {
      const a = spaces[i]!;
      const b = spaces[j]!;
      if (a.network !== b.network) {
        problems.push(
          `${a.provider} ${roles(a.provider)} advertise ${a.label}; ${b.provider} ${roles(b.provider)} advertise ${b.label}: these do not route to each other, ` +
            'so joins and gossip would fail. Connect the networks (VPN, peering) and set swarm.advertise to a CIDR they share, or advertise public addresses',
        );
        continue;
      }
      for (const [x, y] of [[a, b], [b, a]] as const) {
        if (x.firewall && x.firewall.extra.length === 0) {
          problems.push(
            `${x.firewall.name} admits the swarm ports (2377/tcp, 7946/tcp+udp, 4789/udp) only from its own members: the ${y.provider} hosts cannot reach the ${x.provider} hosts. ` +
              `List the ${y.provider} hosts' networks in providers.${x.provider}.swarmFrom`,
          );
        }
      }
    }
  }
  const aws = spaces.find((x) => x.provider === 'aws');
  if (aws && aws.network === 'internet' && aws.firewall?.extra.length === 0) {
    problems.push(
      'advertise: public with aws: security-group references match traffic on private addresses only, so aws instances could not reach each other ' +
        "on their public addresses; list the public networks in providers.aws.swarmFrom, or advertise private addresses",
    );
  }
  const lines = problems.length
    ? problems.map((p) => `problem: ${p}`)
    : [spaces.length <= 1 ? `all hosts advertise ${spaces[0]?.label ?? 'their addresses'}` : `advertise addresses reach each other: ${spaces.map((s) => `${s.provider}: ${s.label}`).join('; ')}`];
  return { ok: problems.length === 0, spaces, lines };
}
