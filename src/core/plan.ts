/**
 * `plan`: what `up` would do, offline: the dry run of up's phase list (machines per provider, firewall rules, quorum,
 * swarm settings, join pacing, services), after the same reachability check `up` makes first.
 */
import type { Context } from '../cluster/context.js';
import type { EffectiveSettings } from '../inventory/swarm-settings.js';
import { checkReachability, type Reachability } from '../providers/reachability.js';
import type { QuorumPlan } from '../raft/quorum.js';
import { UP_PHASES } from './up.js';

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
  const out = {
    cluster: inv.cluster,
    hosts: { managers, workers: inv.hosts.length - managers, total: inv.hosts.length },
    reachability: checkReachability(inv, ctx.providers.map(({ provider, hosts }) => ({ name: provider.name, hosts }))),
    providers: [],
    firewall: [],
    services: [],
  } as unknown as PlanResult;
  for (const p of UP_PHASES) p.dryRun(ctx, out);
  // Key order as before the phases existed (scripts reading --json may diff it).
  const { cluster, hosts, quorum, settings, providers, reachability, firewall, joins, services } = out;
  return { cluster, hosts, quorum, settings, providers, reachability, firewall, joins, services };
}
