/** Applies inventory node labels (plus `swarmform.host`) and manager availability, only where they differ. */
import type { EventBus } from '../base/events.js';
import { fanout } from '../run/fanout.js';
import { sleep } from '../run/retry.js';
import type { Member } from './members.js';

/** The label that ties a swarm node to its inventory host (hostnames can differ from inventory names). */
export const HOST_LABEL = 'swarmform.host';

interface NodeSpec {
  Labels?: Record<string, string>;
  Role?: string;
  Availability?: string;
  Name?: string;
}

export interface EngineNode {
  ID: string;
  Version: { Index: number };
  Spec: NodeSpec;
}

/** The spec a member's node should have, or undefined when it already has it. */
function wantedSpec(m: Member, node: EngineNode, drainManagers: boolean): NodeSpec | undefined {
  const labels = { ...(node.Spec.Labels ?? {}), ...m.machine.labels, [HOST_LABEL]: m.machine.name };
  const availability = m.machine.role === 'manager' && drainManagers ? 'drain' : (node.Spec.Availability ?? 'active');
  if (sameLabels(labels, node.Spec.Labels ?? {}) && availability === node.Spec.Availability) return undefined;
  return { ...node.Spec, Labels: labels, Availability: availability };
}

/**
 * Sets one freshly joined node's labels and availability through `via` (a manager), right after its join, so these
 * Raft writes overlap the joins still in flight instead of queueing up after the last one. Returns true if it wrote.
 */
export async function settleJoinedNode(via: Member, m: Member, nodeId: string, drainManagers: boolean): Promise<boolean> {
  const engine = via.remote.engine();
  // A node that just joined still updates its own record (status, description), which bumps its version: an update
  // made with the version read a moment earlier can be "out of sequence". Read again and retry a few times.
  for (let attempt = 1; ; attempt++) {
    const node = (await engine.getNode(nodeId).inspect()) as EngineNode;
    const spec = wantedSpec(m, node, drainManagers);
    if (!spec) return false;
    try {
      await engine.getNode(nodeId).update({ _query: { version: node.Version.Index }, _body: spec });
      return true;
    } catch (err) {
      if (attempt >= 5 || !isOutOfSequence(err)) throw err;
      await sleep(200 * attempt);
    }
  }
}

/** The Engine API's answer to an update made with a stale version. */
export function isOutOfSequence(err: unknown): boolean {
  return /update out of sequence/i.test((err as Error)?.message ?? '');
}

/**
 * Returns how many nodes were updated. Reads all nodes in one call, then updates only the nodes that differ, several at
 * once: each update is a Raft write, and one at a time they cost about 0.2 s each on a busy 3-manager lab.
 */
export async function applyNodeSettings(
  lead: Member,
  members: Member[],
  nodeIds: Map<string, string>,
  opts: { drainManagers: boolean; events: EventBus; signal?: AbortSignal; concurrency?: number; nodes?: EngineNode[] },
): Promise<{ updated: number; failed: { host: string; error: Error }[] }> {
  const engine = lead.remote.engine();
  const nodes = opts.nodes ?? ((await engine.listNodes()) as EngineNode[]);
  const byId = new Map(nodes.map((n) => [n.ID, n]));
  const todo: { m: Member; node: EngineNode; spec: NodeSpec }[] = [];
  for (const m of members) {
    const id = nodeIds.get(m.machine.name);
    const node = id ? byId.get(id) : undefined;
    const spec = node ? wantedSpec(m, node, opts.drainManagers) : undefined;
    if (node && spec) todo.push({ m, node, spec });
  }
  const r = await fanout(
    todo,
    async (t) => {
      const { node, spec } = t;
      try {
        await engine.getNode(node.ID).update({ _query: { version: node.Version.Index }, _body: spec });
      } catch (err) {
        if (!isOutOfSequence(err)) throw err;
        // The node changed since the list was read: settle it from a fresh read instead.
        await settleJoinedNode(lead, t.m, node.ID, opts.drainManagers);
      }
      return `labels ${Object.keys(spec.Labels ?? {}).length}, availability ${spec.Availability}`;
    },
    { phase: 'swarm', step: 'node settings', key: (t) => t.m.machine.name, concurrency: opts.concurrency ?? 8, events: opts.events, signal: opts.signal },
  );
  return { updated: r.done.length, failed: r.failed.map((f) => ({ host: f.item.m.machine.name, error: f.error })) };
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
