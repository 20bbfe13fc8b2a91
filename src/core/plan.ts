/** `plan`: what `up` would do, offline: machines per provider, quorum, firewall rules, join pacing. */
import { SWARM_PORTS } from '../bootstrap/firewall.js';
import { planQuorum, type QuorumPlan } from '../raft/quorum.js';
import type { Context } from './context.js';

export interface PlanResult {
  cluster: string;
  hosts: { managers: number; workers: number; total: number };
  quorum: QuorumPlan;
  providers: { name: string; hosts: number; lines: string[] }[];
  firewall: { port: string; protocol: string; from: string; why: string }[];
  joins: { concurrency: number; perManager: number };
  services: { name: string; image: string; mode: string; replicas: number }[];
}

export function plan(ctx: Context): PlanResult {
  const inv = ctx.inventory;
  const managers = inv.hosts.filter((h) => h.role === 'manager').length;
  const q = planQuorum(managers);
  const from = inv.swarm.advertise.kind === 'cidr' ? inv.swarm.advertise.cidr : 'cluster members only';
  return {
    cluster: inv.cluster,
    hosts: { managers, workers: inv.hosts.length - managers, total: inv.hosts.length },
    quorum: q,
    providers: ctx.providers.map(({ provider, hosts }) => ({ name: provider.name, hosts: hosts.length, lines: provider.plan(hosts, ctx.providerContext) })),
    firewall: inv.swarm.firewall ? SWARM_PORTS.map((p) => ({ ...p, from })) : [],
    joins: { concurrency: inv.swarm.joinConcurrency, perManager: Math.max(1, Math.ceil(inv.swarm.joinConcurrency / Math.max(1, managers))) },
    services: inv.services.map((s) => ({ name: s.name, image: s.image, mode: s.mode, replicas: s.replicas })),
  };
}
