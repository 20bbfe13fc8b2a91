/** Applies inventory node labels (plus `swarmform.host`) and manager availability, only where they differ. */
import type { EventBus } from '../core/events.js';
import type { Member } from './members.js';

/** The label that ties a swarm node to its inventory host (hostnames can differ from inventory names). */
export const HOST_LABEL = 'swarmform.host';

interface NodeSpec {
  Labels?: Record<string, string>;
  Role?: string;
  Availability?: string;
  Name?: string;
}

/** Returns how many nodes were updated. Reads all nodes in one call. */
export async function applyNodeSettings(
  lead: Member,
  members: Member[],
  nodeIds: Map<string, string>,
  opts: { drainManagers: boolean; events: EventBus },
): Promise<number> {
  const engine = lead.remote.engine();
  const nodes = (await engine.listNodes()) as { ID: string; Version: { Index: number }; Spec: NodeSpec }[];
  const byId = new Map(nodes.map((n) => [n.ID, n]));
  let updated = 0;
  for (const m of members) {
    const id = nodeIds.get(m.machine.name);
    const node = id ? byId.get(id) : undefined;
    if (!node) continue;
    const labels = { ...(node.Spec.Labels ?? {}), ...m.machine.labels, [HOST_LABEL]: m.machine.name };
    const availability = m.machine.role === 'manager' && opts.drainManagers ? 'drain' : (node.Spec.Availability ?? 'active');
    if (sameLabels(labels, node.Spec.Labels ?? {}) && availability === node.Spec.Availability) continue;
    await engine.getNode(node.ID).update({ _query: { version: node.Version.Index }, _body: { ...node.Spec, Labels: labels, Availability: availability } });
    updated++;
    opts.events.emit({ type: 'step', phase: 'swarm', host: m.machine.name, step: 'node settings', status: 'ok', message: `labels ${Object.keys(labels).length}, availability ${availability}` });
  }
  return updated;
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
