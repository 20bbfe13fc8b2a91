/**
 * swarm: init or find the swarm, managers one at a time, workers in parallel spread over the managers; managers the
 * inventory now wants promoted first, those it no longer wants demoted after, and the swarm settings applied.
 */
import type { Context } from '../../cluster/context.js';
import { effectiveSettings } from '../../inventory/swarm-settings.js';
import { planQuorum, zoneOf } from '../../raft/quorum.js';
import { advertiseAddress } from '../../swarm/advertise.js';
import { formSwarm } from '../../swarm/form-swarm.js';
import type { Member } from '../../swarm/members.js';
import type { PlanResult } from '../plan.js';
import { afterSwarm, beforeSwarm, initSpec } from '../../raft/formation.js';
import { rolesInForce } from '../../cluster/machines.js';
import { reaches, type UpPhaseStep, type UpRun } from './phase.js';

export const swarmPhase: UpPhaseStep = {
  name: 'swarm',
  title: 'form the swarm: managers one at a time, workers in parallel',
  shouldRun: (run) => reaches(run.opts, 'swarm'),
  total: (run) => run.ready.length,
  run: async (run) => {
    run.lead = await formAll(run);
  },
  dryRun: (ctx: Context, plan: PlanResult) => {
    const inv = ctx.inventory;
    const managers = inv.hosts.filter((h) => h.role === 'manager');
    plan.quorum = planQuorum(managers.map((h) => ({ name: h.name, zone: zoneOf(h) })));
    plan.settings = { ...effectiveSettings(inv.swarm), profile: inv.swarm.profile };
    plan.joins = { concurrency: inv.swarm.joinConcurrency, perManager: Math.max(1, Math.ceil(inv.swarm.joinConcurrency / Math.max(1, managers.length))) };
  },
};

async function formAll(run: UpRun): Promise<Member> {
  const { ctx, sessions, result } = run;
  const { inventory, events, state } = ctx;
  // Roles in force: the inventory's, with moves made by `raft replace`/`recover` (provider records may be older).
  const roles = await rolesInForce(ctx);
  const members: Member[] = run.ready.map((m) => ({
    machine: { ...m, role: roles.get(m.name) ?? m.role },
    remote: sessions.get(m.name)!,
    advertise: advertiseAddress(m, inventory.swarm.advertise, run.facts.get(m.name)?.addresses),
  }));
  const saved = await state.read();
  // Managers the inventory now wants are promoted first (one at a time, confirmed); locked managers unlocked.
  const before = await beforeSwarm(ctx, members);
  const f = await formSwarm(members, {
    events,
    joinConcurrency: inventory.swarm.joinConcurrency,
    joinPacing: inventory.swarm.joinPacing,
    ingress: inventory.swarm.ingress,
    drainManagers: inventory.swarm.drainManagers || inventory.swarm.profile === 'large',
    spec: initSpec(ctx),
    force: Boolean(run.opts.force),
    knownClusterId: saved.swarm?.clusterId,
    signal: ctx.signal,
  });
  for (const x of f.failed) run.fail(x.host, 'swarm', x.error);
  // Then managers it no longer wants are demoted (the leader last), and the swarm settings applied.
  const after = await afterSwarm(ctx, members, f.swarm.lead);
  f.swarm.lead = after.lead;
  result.changes.swarm = f.changed + before.promoted.length + after.reconcile.promoted.length + after.reconcile.demoted.length + (after.settings.length ? 1 : 0);
  await state.writeSecrets({ ...(await state.readSecrets()), workerToken: f.swarm.tokens.worker, managerToken: f.swarm.tokens.manager });
  await state.update((st) => ({ ...st, swarm: { clusterId: f.swarm.clusterId, createdAt: saved.swarm?.createdAt ?? new Date().toISOString() } }));
  return f.swarm.lead;
}
