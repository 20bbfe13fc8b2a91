/** `plan`: what `up` would do, offline: machines per provider, quorum, firewall rules, join pacing. */
import { SWARM_PORTS } from '../bootstrap/firewall.js';
import { planQuorum, type QuorumPlan, zoneOf } from '../raft/quorum.js';
import { effectiveSettings, type EffectiveSettings } from '../inventory/swarm-settings.js';
import { checkReachability, type Reachability } from '../providers/reachability.js';
import type { Context } from '../cluster/context.js';

export interface PlanResult {
  cluster: string;
  hosts: { managers: number; workers: number; total: number };
  quorum: QuorumPlan;
  /** Swarm settings in force after `up`: the inventory's over the profile's preset (undefined keys are left as they are). */
  settings: EffectiveSettings & { profile: string };
  providers: { name: string; hosts: number; lines: string[] }[];
  /** Whether the providers' advertise addresses can reach each other (mixed inventories), checked offline. */
  reachability: Reachability;
  firewall: { port: string; protocol: string; from: string; why: string }[];
  joins: { concurrency: number; perManager: number };
  services: { name: string; image: string; mode: string; replicas: number }[];
}

export function plan(ctx: Context): PlanResult {
  const inv = ctx.inventory;
  const managers = inv.hosts.filter((h) => h.role === 'manager').length;
  const q = planQuorum(inv.hosts.filter((h) => h.role === 'manager').map((h) => ({ name: h.name, zone: zoneOf(h) })));
  const from = inv.swarm.advertise.kind === 'cidr' ? inv.swarm.advertise.cidr : 'cluster members only';
  return {
    cluster: inv.cluster,
    hosts: { managers, workers: inv.hosts.length - managers, total: inv.hosts.length },
    quorum: q,
    settings: { ...effectiveSettings(inv.swarm), profile: inv.swarm.profile },
    providers: ctx.providers.map(({ provider, hosts }) => ({ name: provider.name, hosts: hosts.length, lines: provider.plan(hosts, ctx.providerContext) })),
    reachability: checkReachability(inv, ctx.providers.map(({ provider, hosts }) => ({ name: provider.name, hosts }))),
    firewall: inv.swarm.firewall ? SWARM_PORTS.map((p) => ({ ...p, from })) : [],
    joins: { concurrency: inv.swarm.joinConcurrency, perManager: Math.max(1, Math.ceil(inv.swarm.joinConcurrency / Math.max(1, managers))) },
    services: inv.services.map((s) => ({ name: s.name, image: s.image, mode: s.mode, replicas: s.replicas })),
  };
}
