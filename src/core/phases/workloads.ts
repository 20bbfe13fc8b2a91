/** workloads: the inventory's services through the leader's Engine API, each waited for, then its compose stacks. */
import { applyServices, waitServicesConverged } from '../../swarm/services.js';
import { applyInventoryStacks } from '../stack.js';
import { reaches, type UpPhaseStep } from './phase.js';

export const workloadsPhase: UpPhaseStep = {
  name: 'workloads',
  title: 'apply the services and stacks and wait for their tasks',
  shouldRun: (run) => reaches(run.opts, 'workloads') && run.ctx.inventory.services.length + run.stacks.length > 0,
  total: (run) => run.ctx.inventory.services.length + run.stacks.length,
  run: async (run) => {
    const { ctx, result } = run;
    const { inventory, events } = ctx;
    const lead = run.lead!;
    // A provider whose hosts lack IPVS (the lab kernel) cannot answer ingress-mode ports.
    if (ctx.providers.some((p) => !p.provider.info().ingressMesh)) {
      for (const s of inventory.services) {
        if (s.ports.some((p) => p.mode === 'ingress')) {
          events.warn(`service ${s.name} publishes in ingress mode: the lab kernel has no IPVS, so the routing mesh does not answer there; use mode: host`);
        }
      }
    }
    const applied = await applyServices(lead, inventory.services, inventory.cluster, events);
    result.changes.workloads = applied.created.length + applied.updated.length;
    await waitServicesConverged(lead, inventory.services.map((s) => s.name), events);
    // Then the inventory's compose stacks (validated before anything was touched), each waited for.
    result.changes.workloads += await applyInventoryStacks(lead, run.stacks, events);
  },
  dryRun: (ctx, plan) => {
    plan.services = ctx.inventory.services.map((s) => ({ name: s.name, image: s.image, mode: s.mode, replicas: s.replicas }));
  },
};
