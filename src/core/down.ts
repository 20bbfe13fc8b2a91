/**
 * `down`: runs the pipeline backwards. Hosts the provider owns are destroyed (their swarm goes with them); hosts it
 * does not own (ssh) leave the swarm and lose what swarmform added: its firewall rules and files, nothing else.
 */
import { closeSwarmPorts } from '../bootstrap/firewall.js';
import { engineCommand } from '../bootstrap/engine-service.js';
import { gatherFacts } from '../bootstrap/facts.js';
import { render } from '../bootstrap/templates.js';
import { fanout } from '../run/fanout.js';
import { phase } from '../run/phase.js';
import type { Machine } from '../base/machine.js';
import type { Context } from '../cluster/context.js';
import { PartialError } from '../base/errors.js';
import { resolveMembers } from '../cluster/machines.js';
import { Sessions } from '../cluster/sessions.js';

export interface DownResult {
  cluster: string;
  destroyed: string[];
  released: string[];
}

export async function down(ctx: Context, opts: { force: boolean }): Promise<DownResult> {
  const { events } = ctx;
  for (const { provider } of ctx.providers) await provider.preflight(ctx.providerContext);
  const release = await ctx.state.lock();
  const failures: { host: string; step: string; message: string }[] = [];
  const result: DownResult = { cluster: ctx.inventory.cluster, destroyed: [], released: [] };
  try {
    const machines = await resolveMembers(ctx);
    await phase(events, 'teardown', machines.length, () => teardownAll(machines));
    if (failures.length > 0) {
      throw new PartialError(`${failures.length} host(s) could not be torn down; the state is kept so \`down\` can be run again`, failures);
    }
  } finally {
    await release();
  }
  await ctx.state.remove();
  return result;

  async function teardownAll(machines: Machine[]): Promise<void> {
    const foreign = machines.filter((m) => !providerOwns(ctx, m.provider));
    if (foreign.length > 0) {
      const sessions = new Sessions(await ctx.state.knownHosts(), events);
      try {
        const conn = await sessions.connect(foreign, { phase: 'teardown', timeoutS: 20 });
        for (const f of conn.failed) failures.push({ host: f.item.name, step: 'ssh', message: f.error.message });
        const r = await fanout(
          conn.done.map((d) => d.item),
          async (m) => {
            const remote = sessions.get(m.name)!;
            await remote.engine().swarmLeave({ force: true }).catch((e: { statusCode?: number }) => {
              if (e.statusCode !== 503 && e.statusCode !== 406) throw e; // 503/406: not in a swarm
            });
            const facts = await gatherFacts(remote);
            await closeSwarmPorts(remote, facts.firewall);
            if (!facts.bundleSha) return 'left the swarm, swarm ports closed (the engine was not installed by swarmform: kept)';
            // The engine came from swarmform's bundle: stop it and remove what the bundle and bootstrap wrote.
            const init = m.init === 'detect' ? facts.init : m.init;
            await remote.run(`${engineCommand(init, 'stop')} >/dev/null 2>&1; true`);
            await remote.check(render('install/bundle-remove.sh.njk', {}), 'remove engine');
            return 'left the swarm, swarm ports closed, bundle engine stopped and removed';
          },
          { phase: 'teardown', step: 'leave', key: (m) => m.name, concurrency: 32, events },
        );
        for (const f of r.failed) failures.push({ host: f.item.name, step: 'leave', message: f.error.message });
        result.released = r.done.map((d) => d.item.name);
      } finally {
        sessions.closeAll();
      }
    }
    for (const { provider } of ctx.providers) {
      if (!provider.info().ownsMachines) continue;
      const mine = machines.filter((m) => m.provider === provider.name);
      const r = await provider.destroy(mine, ctx.providerContext);
      for (const f of r.failed) failures.push({ host: f.name, step: 'destroy', message: f.error.message });
      result.destroyed.push(...r.done);
      await provider.teardown(ctx.providerContext, { force: opts.force });
    }
  }
}

function providerOwns(ctx: Context, name: string): boolean {
  return ctx.providers.find((p) => p.provider.name === name)?.provider.info().ownsMachines ?? false;
}
