/**
 * Forms the swarm: init (or find) it on a manager, join the other managers one at a time, each confirmed Reachable,
 * then the workers in parallel with bounded concurrency, spread over every manager; finally wait for all Ready.
 */
import { HostStepError, SwarmformError } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import { pollUntil } from '../run/poll.js';
import { fanout } from '../run/fanout.js';
import { initSwarm, type SwarmHandle } from './init-swarm.js';
import { joinNode } from './join-node.js';
import type { Member } from './members.js';
import { type LocalSwarm, localSwarm } from './node-state.js';
import { applyNodeSettings, settleJoinedNode } from './node-settings.js';

export interface FormOptions {
  events: EventBus;
  joinConcurrency: number;
  drainManagers: boolean;
  force: boolean;
  knownClusterId?: string;
  signal?: AbortSignal;
  /** Seconds to wait for every node to be Ready at the end. */
  readyTimeoutS?: number;
}

export interface FormResult {
  swarm: SwarmHandle;
  /** Inventory name -> swarm node id, for every member that joined (or was already in). */
  nodeIds: Map<string, string>;
  failed: { host: string; error: Error }[];
  /** Members whose state changed in this run. */
  changed: number;
}

/** Runs the whole swarm phase over members whose engines are up. */
export async function formSwarm(members: Member[], opts: FormOptions): Promise<FormResult> {
  const managers = members.filter((m) => m.machine.role === 'manager');
  const workers = members.filter((m) => m.machine.role === 'worker');
  if (managers.length === 0) throw new SwarmformError('the inventory has no manager that could be reached');

  // One `docker info` per host, in parallel: the observed state every later decision reads.
  const states = new Map<string, LocalSwarm>();
  const probed = await fanout(members, async (m) => localSwarm(m.remote.engine()), {
    phase: 'swarm', step: 'state', key: (m) => m.machine.name, concurrency: 64, events: opts.events, quiet: true,
  });
  for (const d of probed.done) states.set(d.item.machine.name, d.value);
  const failed: { host: string; error: Error }[] = probed.failed.map((f) => ({ host: f.item.machine.name, error: f.error }));
  const live = (ms: Member[]) => ms.filter((m) => states.has(m.machine.name));

  const swarm = await initSwarm(live(managers), states, { events: opts.events, knownClusterId: opts.knownClusterId, force: opts.force });
  let changed = swarm.created ? 1 : 0;
  const lead = swarm.lead.remote.engine();
  const nodeList = (await lead.listNodes()) as { ID: string }[];
  const clusterNodeIds = new Set(nodeList.map((n) => n.ID));
  const nodeIds = new Map<string, string>([[swarm.lead.machine.name, states.get(swarm.lead.machine.name)!.nodeId!]]);

  // Managers one at a time: each join changes the Raft group, and quorum must be confirmed before the next.
  const joinedManagers: Member[] = [swarm.lead];
  for (const m of live(managers)) {
    if (m === swarm.lead) continue;
    const t0 = Date.now();
    opts.events.emit({ type: 'step', phase: 'swarm', host: m.machine.name, step: 'join manager', status: 'start' });
    try {
      const r = await joinNode(m, swarm.lead, swarm.tokens.manager, { clusterNodeIds, force: opts.force, step: 'join manager' });
      await confirmReachable(swarm.lead, m, r.nodeId);
      nodeIds.set(m.machine.name, r.nodeId);
      joinedManagers.push(m);
      if (!r.skipped) changed++;
      opts.events.emit({
        type: 'step', phase: 'swarm', host: m.machine.name, step: 'join manager', status: r.skipped ? 'skip' : 'ok',
        message: r.skipped ?? `joined as manager, Reachable`, ms: Date.now() - t0,
      });
    } catch (err) {
      failed.push({ host: m.machine.name, error: err as Error });
      opts.events.emit({ type: 'step', phase: 'swarm', host: m.machine.name, step: 'join manager', status: 'fail', message: (err as Error).message, ms: Date.now() - t0 });
    }
  }

  // Workers in parallel; each is sent to one manager in turn so no single manager signs every certificate.
  const perManager = Math.max(1, Math.ceil(opts.joinConcurrency / joinedManagers.length));
  const assigned = new Map<Member, Member>();
  live(workers).forEach((w, i) => assigned.set(w, joinedManagers[i % joinedManagers.length]!));
  const joined = await fanout(
    live(workers),
    async (w) => {
      const via = assigned.get(w)!;
      const r = await joinNode(w, via, swarm.tokens.worker, { clusterNodeIds, force: opts.force, step: 'join worker' });
      nodeIds.set(w.machine.name, r.nodeId);
      if (r.skipped) return { skipped: true as const, message: r.skipped };
      changed++;
      const labelled = await settleJoinedNode(via, w, r.nodeId, opts.drainManagers);
      return `joined via ${via.machine.name}${labelled ? ', labels set' : ''}`;
    },
    {
      phase: 'swarm', step: 'join worker', key: (w) => w.machine.name, concurrency: opts.joinConcurrency, events: opts.events,
      keyLimit: { key: (w) => assigned.get(w)!.machine.name, limit: perManager }, signal: opts.signal,
    },
  );
  for (const f of joined.failed) failed.push({ host: f.item.machine.name, error: f.error });

  await waitAllReady(swarm.lead, nodeIds, members, opts.readyTimeoutS ?? 180, opts.events);
  const settings = await applyNodeSettings(swarm.lead, members, nodeIds, { drainManagers: opts.drainManagers, events: opts.events, signal: opts.signal });
  changed += settings.updated;
  failed.push(...settings.failed);
  return { swarm, nodeIds, failed, changed };
}

/** Waits until the leader lists the new manager as Reachable. */
async function confirmReachable(lead: Member, m: Member, nodeId: string): Promise<void> {
  await pollUntil(
    async () => {
      const node = (await lead.remote.engine().getNode(nodeId).inspect()) as { ManagerStatus?: { Reachability?: string } };
      return node.ManagerStatus?.Reachability === 'reachable' ? true : undefined;
    },
    {
      timeoutMs: 60_000,
      intervalMs: 300,
      onTimeout: () => new HostStepError(m.machine.name, 'join manager', 'joined but not Reachable from the leader within 60 s', {
        hint: 'check 2377/tcp between the managers',
      }),
    },
  );
}

/** One node list per poll (not one call per node): O(N) per poll whatever the cluster size. */
async function waitAllReady(lead: Member, nodeIds: Map<string, string>, members: Member[], timeoutS: number, events: EventBus): Promise<void> {
  const want = new Set(nodeIds.values());
  let notReady: string[] = [];
  await pollUntil(
    async () => {
      const nodes = (await lead.remote.engine().listNodes()) as { ID: string; Status?: { State?: string } }[];
      const ready = new Set(nodes.filter((n) => n.Status?.State === 'ready').map((n) => n.ID));
      notReady = [...nodeIds.entries()].filter(([, id]) => !ready.has(id)).map(([name]) => name);
      return [...want].every((id) => ready.has(id)) ? true : undefined;
    },
    {
      timeoutMs: timeoutS * 1000,
      intervalMs: 500,
      onTimeout: () => new SwarmformError(`${notReady.length} of ${members.length} nodes not Ready after ${timeoutS} s: ${notReady.slice(0, 10).join(', ')}`),
    },
  );
  events.info(`all ${want.size} nodes Ready`);
}
