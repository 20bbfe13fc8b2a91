/** `status`: nodes and services read from the first manager that answers (bounded timeouts, in order). */
import { SwarmformError } from './errors.js';
import { readStatus, type ClusterStatus } from '../swarm/status.js';
import { localSwarm } from '../swarm/node-state.js';
import type { Context } from './context.js';
import { knownMachines } from './machines.js';
import { Sessions } from './sessions.js';

/** Reads status through a manager's engine; tries managers one after another until one controls the swarm. */
export async function status(ctx: Context): Promise<ClusterStatus> {
  const machines = await knownMachines(ctx);
  const managers = machines.filter((m) => m.role === 'manager');
  if (machines.length === 0) {
    throw new SwarmformError(`cluster ${ctx.inventory.cluster} has no machines`, { hint: 'run `swarmform up` first' });
  }
  const sessions = new Sessions(await ctx.state.knownHosts(), ctx.events);
  const errors: string[] = [];
  const hints = new Set<string>();
  try {
    for (const m of managers) {
      const conn = await sessions.connect([m], { phase: 'status', timeoutS: 5 });
      const remote = sessions.get(m.name);
      if (!remote) {
        const err = conn.failed[0]?.error as SwarmformError | undefined;
        errors.push(named(m.name, err?.message ?? 'unreachable'));
        if (err?.hint) hints.add(err.hint);
        continue;
      }
      try {
        const s = await localSwarm(remote.engine());
        if (!s.isManager) {
          errors.push(`${m.name}: not an active manager (swarm state ${s.state})`);
          continue;
        }
        return await readStatus(remote.engine(), ctx.inventory.cluster, m.name);
      } catch (err) {
        errors.push(named(m.name, (err as Error).message));
      }
    }
  } finally {
    sessions.closeAll();
  }
  throw new SwarmformError(`no manager of cluster ${ctx.inventory.cluster} answered:\n  ${errors.join('\n  ')}`, {
    hint: [...hints, 'run `swarmform up` to (re)form the cluster'].join('; '),
  });
}

/** Prefixes the host name unless the message already starts with it. */
function named(host: string, message: string): string {
  return message.startsWith(`${host}:`) ? message : `${host}: ${message}`;
}
