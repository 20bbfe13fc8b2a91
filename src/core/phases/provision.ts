/**
 * provision: every provider finds what exists (its own discovery, not only local state) and creates what is missing,
 * handing each machine on the moment it answers, so bootstrap (which runs beside it) starts on it at once.
 */
import type { Machine } from '../../base/machine.js';
import { collapseToCidrs } from '../../bootstrap/cidrs.js';
import { advertiseAddress } from '../../swarm/advertise.js';
import type { UpPhaseStep, UpRun } from './phase.js';

export const provisionPhase: UpPhaseStep = {
  name: 'provision',
  title: 'create the machines that are missing',
  shouldRun: () => true,
  total: (run) => run.ctx.inventory.hosts.length,
  overlapsNext: true,
  run: (run) => {
    run.provisioned = provisionAll(run);
    return run.provisioned.then(() => undefined);
  },
  dryRun: (ctx, plan) => {
    plan.providers = ctx.providers.map(({ provider, hosts }) => ({ name: provider.name, hosts: hosts.length, lines: provider.plan(hosts, ctx.providerContext) }));
  },
};

async function provisionAll(run: UpRun): Promise<Machine[]> {
  const { ctx, result, arrived } = run;
  const { inventory, events, state } = ctx;
  // Machines a provider handed over before a failure or a signal cut its batch short: saved on the way out, so the
  // state knows them even when the provider's own listing would not find them.
  const handedMachines: Machine[] = [];
  try {
    const all: Machine[] = [];
    const providerContext = { ...ctx.providerContext, signal: run.signal };
    for (const { provider, hosts } of ctx.providers) {
      await provider.network(providerContext);
      const existing = new Map((await provider.list(providerContext)).map((m) => [m.name, m]));
      // Stopped machines go to create too, which starts them (a provider that reports them: EC2).
      const missing = hosts.filter((h) => !existing.has(h.name) || existing.get(h.name)!.stopped);
      const wanted = new Set(hosts.map((h) => h.name));
      for (const m of existing.values()) {
        if (!wanted.has(m.name) || m.stopped) continue;
        all.push(m);
        arrived.push(m);
        events.emit({ type: 'step', phase: 'provision', host: m.name, step: 'machine', status: 'skip', message: 'exists' });
      }
      const handed = new Set<string>();
      const created = missing.length
        ? await provider.create(missing, providerContext, (m) => {
            handed.add(m.name);
            handedMachines.push(m);
            arrived.push(m);
          })
        : { done: [], failed: [] };
      if (provider.info().ownsMachines) result.changes.provision += created.done.length;
      for (const f of created.failed) run.fail(f.name, 'provision', f.error);
      // A provider that hands machines over only at the end (or skipped some) is caught up here.
      for (const m of created.done) if (!handed.has(m.name)) arrived.push(m);
      all.push(...created.done);
    }
    // The firewall admits the members' advertise addresses (with `advertise: <cidr>` the range was known at once).
    // A host without one is left out here and fails in the swarm phase, where the same function says why.
    run.memberCidrs ??= collapseToCidrs(all.flatMap((m) => {
      try {
        return [advertiseAddress(m, inventory.swarm.advertise)];
      } catch {
        return [];
      }
    }));
    await state.saveMachines(all);
    return all;
  } catch (err) {
    run.stop.abort(err);
    if (handedMachines.length) await state.saveMachines(handedMachines).catch(() => undefined);
    throw err;
  } finally {
    arrived.close();
  }
}
