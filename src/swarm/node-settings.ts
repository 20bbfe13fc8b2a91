/** Applies inventory node labels (plus `swarmform.host`) and manager availability, only where they differ. */
import type { EventBus } from '../core/events.js';
import { fanout } from '../run/fanout.js';
import type { Member } from './members.js';

/** The label that ties a swarm node to its inventory host (hostnames can differ from inventory names). */
export const HOST_LABEL = 'swarmform.host';

interface NodeSpec {
  Labels?: Record<string, string>;
  Role?: string;
  Availability?: string;
  Name?: string;
}

/**
 * Returns how many nodes were updated. Reads all nodes in one call, then updates only the nodes that differ, several at
 * once: each update is a Raft write, and one at a time they cost about 0.2 s each on a busy 3-manager lab.
 */
export async function applyNodeSettings(
  lead: Member,
  members: Member[],
  nodeIds: Map<string, string>,
  opts: { drainManagers: boolean; events: EventBus; signal?: AbortSignal },
): Promise<{ updated: number; failed: { host: string; error: Error }[] }> {
  const engine = lead.remote.engine();
  const nodes = (await engine.listNodes()) as { ID: string; Version: { Index: number }; Spec: NodeSpec }[];
  const byId = new Map(nodes.map((n) => [n.ID, n]));
  const todo: { m: Member; node: (typeof nodes)[number]; spec: NodeSpec }[] = [];
  for (const m of members) {
    const id = nodeIds.get(m.machine.name);
    const node = id ? byId.get(id) : undefined;
    if (!node) continue;
    const labels = { ...(node.Spec.Labels ?? {}), ...m.machine.labels, [HOST_LABEL]: m.machine.name };
    const availability = m.machine.role === 'manager' && opts.drainManagers ? 'drain' : (node.Spec.Availability ?? 'active');
    if (sameLabels(labels, node.Spec.Labels ?? {}) && availability === node.Spec.Availability) continue;
    todo.push({ m, node, spec: { ...node.Spec, Labels: labels, Availability: availability } });
  }
  const r = await fanout(
    todo,
    async ({ node, spec }) => {
      await engine.getNode(node.ID).update({ _query: { version: node.Version.Index }, _body: spec });
      return `labels ${Object.keys(spec.Labels ?? {}).length}, availability ${spec.Availability}`;
    },
    { phase: 'swarm', step: 'node settings', key: (t) => t.m.machine.name, concurrency: 8, events: opts.events, signal: opts.signal },
  );
  return { updated: r.done.length, failed: r.failed.map((f) => ({ host: f.item.m.machine.name, error: f.error })) };
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
