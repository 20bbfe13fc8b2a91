/** Finds the existing swarm among the managers, or initialises it on the first manager. */
import { HostStepError, SwarmformError } from '../base/errors.js';
import type { EventBus } from '../base/events.js';
import { type JoinTokens, type Member } from './members.js';
import { type LocalSwarm, localSwarm } from './node-state.js';

export interface SwarmHandle {
  clusterId: string;
  /** A manager whose engine controls the swarm (the one initialised, or found active). */
  lead: Member;
  tokens: JoinTokens;
  created: boolean;
}

/**
 * Looks at every manager's engine: if some are active managers of one swarm, that swarm is ours (re-run);
 * managers of different swarms are an error naming them. Otherwise `swarm init` on the first manager.
 */
export async function initSwarm(
  managers: Member[],
  states: Map<string, LocalSwarm>,
  opts: { events: EventBus; knownClusterId?: string; force: boolean; spec?: Record<string, unknown> },
): Promise<SwarmHandle> {
  const active = managers.filter((m) => states.get(m.machine.name)?.state === 'active' && states.get(m.machine.name)?.isManager);
  const clusters = new Map<string, Member[]>();
  for (const m of active) {
    const id = states.get(m.machine.name)!.clusterId!;
    clusters.set(id, [...(clusters.get(id) ?? []), m]);
  }
  let clusterId: string | undefined;
  if (opts.knownClusterId && clusters.has(opts.knownClusterId)) clusterId = opts.knownClusterId;
  else if (clusters.size === 1) clusterId = [...clusters.keys()][0];
  else if (clusters.size > 1) {
    const list = [...clusters.entries()].map(([id, ms]) => `${id.slice(0, 12)}: ${ms.map((m) => m.machine.name).join(', ')}`).join('; ');
    throw new SwarmformError(`managers belong to ${clusters.size} different swarms (${list})`, {
      hint: 'make the others leave (`down` on their cluster, or `docker swarm leave --force` on them), or run `swarm --force` to make them leave',
    });
  }

  let lead: Member;
  let created = false;
  if (clusterId) {
    lead = clusters.get(clusterId)![0]!;
    opts.events.emit({ type: 'step', phase: 'swarm', host: lead.machine.name, step: 'init', status: 'skip', message: `swarm ${clusterId.slice(0, 12)} already formed` });
  } else {
    lead = managers[0]!;
    const st = states.get(lead.machine.name);
    if (st && st.state !== 'inactive') {
      if (!opts.force) {
        throw new HostStepError(lead.machine.name, 'swarm init', `the engine is in swarm state "${st.state}" and belongs to another swarm`, {
          hint: 'run again with --force to make it leave that swarm first',
        });
      }
      await lead.remote.engine().swarmLeave({ force: true });
    }
    opts.events.emit({ type: 'step', phase: 'swarm', host: lead.machine.name, step: 'init', status: 'start' });
    await lead.remote.engine().swarmInit({
      ListenAddr: '0.0.0.0:2377',
      AdvertiseAddr: `${lead.advertise}:2377`,
      // Keep the data path on the same private address so VXLAN never takes a public route.
      DataPathAddr: lead.advertise,
      // Autolock, Raft, dispatcher, CA and task history settings from the inventory (src/raft/settings.ts).
      ...(opts.spec ? { Spec: opts.spec } : {}),
    });
    created = true;
    const s = await localSwarm(lead.remote.engine());
    clusterId = s.clusterId!;
    states.set(lead.machine.name, s);
    opts.events.emit({ type: 'step', phase: 'swarm', host: lead.machine.name, step: 'init', status: 'ok', message: `swarm ${clusterId.slice(0, 12)} initialised, advertising ${lead.advertise}` });
  }
  const inspect = (await lead.remote.engine().swarmInspect()) as { JoinTokens: { Worker: string; Manager: string } };
  return { clusterId, lead, tokens: { worker: inspect.JoinTokens.Worker, manager: inspect.JoinTokens.Manager }, created };
}
