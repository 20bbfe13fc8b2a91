/**
 * `node` verbs and `swarm join-token` through the leader's Engine API (else any active manager), over swarmform's
 * SSH connection. Join tokens are returned only by `joinToken`, whose caller prints them on request.
 */
import { findNode, type EngineNode, nodeName, nodeRows, type NodeRow, nodeUpdateSpec, type NodeUpdateOptions } from '../swarm/node-ops.js';
import type { Context } from '../cluster/context.js';
import { SwarmformError, UsageError } from '../base/errors.js';
import { withManager } from '../cluster/manager.js';
import { engineCall } from './service.js';
import { sleep } from '../run/retry.js';

async function listNodes(engine: import('dockerode'), filters?: Record<string, string[]>): Promise<EngineNode[]> {
  return engineCall('node ls', () => engine.listNodes(filters ? ({ filters: JSON.stringify(filters) } as object) : undefined) as Promise<EngineNode[]>);
}

/** `node ls`: docker's columns. */
export function nodeLs(ctx: Context, filters?: Record<string, string[]>): Promise<NodeRow[]> {
  return withManager(ctx, async (h) => nodeRows(await listNodes(h.engine, filters)));
}

/** `node inspect NODE...`: the engine's node objects. */
export function nodeInspect(ctx: Context, refs: string[]): Promise<EngineNode[]> {
  return withManager(ctx, async (h) => {
    const nodes = await listNodes(h.engine);
    return refs.map((r) => findNode(nodes, r));
  });
}

export interface NodeChange {
  node: string;
  id: string;
  /** False when the node already was as asked. */
  changed: boolean;
  message: string;
}

/** Applies a spec change to each node (read, change, write with its version). */
async function changeNodes(ctx: Context, refs: string[], o: NodeUpdateOptions, say: (n: EngineNode, changed: boolean) => string): Promise<NodeChange[]> {
  if (!refs.length) throw new UsageError('name at least one node');
  return withManager(ctx, async (h) => {
    const nodes = await listNodes(h.engine);
    const targets = refs.map((r) => findNode(nodes, r));
    const out: NodeChange[] = [];
    for (const n of targets) {
      // Re-read right before writing: a node's own status updates bump its version.
      for (let attempt = 1; ; attempt++) {
        const cur = (await engineCall(`node ${nodeName(n)}`, () => h.engine.getNode(n.ID).inspect() as Promise<EngineNode>)) as EngineNode;
        const spec = nodeUpdateSpec(cur.Spec, o);
        const changed = JSON.stringify(spec) !== JSON.stringify({ ...cur.Spec, Labels: { ...(cur.Spec.Labels ?? {}) } });
        try {
          if (changed) await h.engine.getNode(n.ID).update({ _query: { version: cur.Version.Index }, _body: spec } as never);
          out.push({ node: nodeName(cur), id: cur.ID, changed, message: say(cur, changed) });
          break;
        } catch (err) {
          const msg = (err as { json?: { message?: string } }).json?.message ?? (err as Error).message;
          if (/out of sequence/i.test(msg) && attempt < 5) continue;
          // A role change can time out in Raft (DeadlineExceeded) and still be applied: look before failing.
          if (await appliedSoon(h.engine, n.ID, o)) {
            out.push({ node: nodeName(cur), id: cur.ID, changed: true, message: say(cur, true) });
            break;
          }
          throw new SwarmformError(`node ${nodeName(cur)}: ${msg}`, { cause: err });
        }
      }
    }
    return out;
  });
}

/** Whether the node's spec shows the change within a few seconds (the engine may finish a call it reported failed). */
async function appliedSoon(engine: import('dockerode'), id: string, o: NodeUpdateOptions): Promise<boolean> {
  for (let i = 0; i < 10; i++) {
    const cur = (await engine.getNode(id).inspect().catch(() => undefined)) as EngineNode | undefined;
    if (cur) {
      let want: EngineNode['Spec'];
      try {
        want = nodeUpdateSpec(cur.Spec, o);
      } catch {
        return false;
      }
      if (JSON.stringify(want) === JSON.stringify({ ...cur.Spec, Labels: { ...(cur.Spec.Labels ?? {}) } })) return true;
    }
    await sleep(1000);
  }
  return false;
}

/** `node update`: availability and labels. */
export function nodeUpdate(ctx: Context, refs: string[], o: NodeUpdateOptions): Promise<NodeChange[]> {
  if (o.availability === undefined && !o.labelAdd.length && !o.labelRm.length && o.role === undefined) {
    throw new UsageError('node update: nothing to change (use --availability, --label-add, --label-rm or --role)');
  }
  return changeNodes(ctx, refs, o, (n) => nodeName(n));
}

/** `node promote`: makes workers managers. */
export function nodePromote(ctx: Context, refs: string[]): Promise<NodeChange[]> {
  return changeNodes(ctx, refs, { role: 'manager', labelAdd: [], labelRm: [] }, (n, changed) =>
    changed ? `Node ${nodeName(n)} promoted to a manager in the swarm.` : `Node ${nodeName(n)} is already a manager.`,
  );
}

/** `node demote`: makes managers workers (the engine refuses when that would lose the Raft quorum). */
export function nodeDemote(ctx: Context, refs: string[]): Promise<NodeChange[]> {
  return changeNodes(ctx, refs, { role: 'worker', labelAdd: [], labelRm: [] }, (n, changed) =>
    changed ? `Manager ${nodeName(n)} demoted in the swarm.` : `Node ${nodeName(n)} is already a worker.`,
  );
}

/**
 * `node rm`: removes nodes from the swarm. Like docker, a node that is not down is refused without `force`
 * (nothing is changed); a manager must be demoted first.
 */
export function nodeRm(ctx: Context, refs: string[], opts: { force?: boolean } = {}): Promise<string[]> {
  if (!refs.length) throw new UsageError('name at least one node');
  return withManager(ctx, async (h) => {
    const nodes = await listNodes(h.engine);
    const targets = refs.map((r) => findNode(nodes, r));
    const refused = targets.filter((n) => !opts.force && n.Status?.State !== 'down');
    if (refused.length) {
      throw new SwarmformError(refused.map((n) => `node ${nodeName(n)} (${n.ID.slice(0, 12)}) is not down and can't be removed`).join('\n'), {
        hint: 'stop its engine (or `swarmform down` the host) first, or use --force to remove it while it runs',
      });
    }
    const removed: string[] = [];
    for (const n of targets) {
      await engineCall(`node rm ${nodeName(n)}`, async () => { await h.engine.getNode(n.ID).remove({ force: Boolean(opts.force) } as never); }, 'a manager must be demoted first: `swarmform node demote NODE`');
      removed.push(nodeName(n));
    }
    return removed;
  });
}

/**
 * `swarm join-token worker|manager [--rotate]`: the token from the engine. Rotation replaces it in the swarm and in
 * the cluster's secrets file (under the cluster lock), so later joins use the new one.
 */
export async function joinToken(ctx: Context, role: 'worker' | 'manager', opts: { rotate?: boolean } = {}): Promise<{ token: string; rotated: boolean; manager: { address: string; port: number } }> {
  if (role !== 'worker' && role !== 'manager') throw new UsageError(`join-token: role must be worker or manager, not "${String(role)}"`);
  const release = opts.rotate ? await ctx.state.lock() : undefined;
  try {
    return await withManager(ctx, async (h) => {
      type SwarmInfo = { Version: { Index: number }; Spec: object; JoinTokens: { Worker: string; Manager: string } };
      let info = (await engineCall('swarm inspect', () => h.engine.swarmInspect() as Promise<SwarmInfo>)) as SwarmInfo;
      if (opts.rotate) {
        const q = role === 'worker' ? { rotateWorkerToken: true } : { rotateManagerToken: true };
        await engineCall('swarm update', () => h.engine.swarmUpdate({ _query: { version: info.Version.Index, ...q }, _body: info.Spec } as never));
        info = (await engineCall('swarm inspect', () => h.engine.swarmInspect() as Promise<SwarmInfo>)) as SwarmInfo;
        const secrets = await ctx.state.readSecrets();
        await ctx.state.writeSecrets({ ...secrets, workerToken: info.JoinTokens.Worker, managerToken: info.JoinTokens.Manager });
      }
      const self = (await h.engine.info()) as { Swarm?: { NodeAddr?: string } };
      return {
        token: role === 'worker' ? info.JoinTokens.Worker : info.JoinTokens.Manager,
        rotated: Boolean(opts.rotate),
        manager: { address: self.Swarm?.NodeAddr ?? h.machine.privateAddress, port: 2377 },
      };
    });
  } finally {
    await release?.();
  }
}
