/**
 * Forms the swarm: init (or find) it on a manager, join the other managers one at a time, each confirmed Reachable,
 * then the workers in parallel with bounded concurrency, spread over every manager; finally wait for all Ready.
 */
import pLimit from 'p-limit';
import { HostStepError, SwarmformError } from '../base/errors.js';
import type { EventBus } from '../base/events.js';
import { pollUntil } from '../run/poll.js';
import { fanout } from '../run/fanout.js';
import { CancelledError } from '../run/cancelled.js';
import { explainEngineLoss } from '../remote/remote.js';
import { JoinPacer, type Lease, type PacerStats } from './join-pacer.js';
import { initSwarm, type SwarmHandle } from './init-swarm.js';
import { joinNode, joinPrepared, prepareJoin } from './join-node.js';
import type { Member } from './members.js';
import { type LocalSwarm, localSwarm } from './node-state.js';
import { applyNodeSettings, type EngineNode } from './node-settings.js';

export interface FormOptions {
  events: EventBus;
  joinConcurrency: number;
  /** `fixed`: joinConcurrency joins in flight, spread over the managers, with no adaptation (for comparison). */
  joinPacing?: 'adaptive' | 'fixed';
  /** false: remove the `ingress` network before workers join (see removeIngress). */
  ingress?: boolean;
  drainManagers: boolean;
  /** Swarm spec for `swarm init` (autolock, Raft, dispatcher, CA, task history); see src/raft/settings.ts. */
  spec?: Record<string, unknown>;
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
  const phaseStart = Date.now();
  const managers = members.filter((m) => m.machine.role === 'manager');
  const workers = members.filter((m) => m.machine.role === 'worker');
  if (managers.length === 0) throw new SwarmformError('the inventory has no manager that could be reached');

  // One `docker info` per manager, in parallel: the observed state init and the manager joins read. Workers are
  // looked at by their own join's checks (prepareJoin), so at 4,700 hosts no round of 4,697 probes comes first.
  const states = new Map<string, LocalSwarm>();
  const probed = await fanout(managers, async (m) => localSwarm(m.remote.engine()), {
    phase: 'swarm', step: 'state', key: (m) => m.machine.name, concurrency: 64, events: opts.events, quiet: true,
  });
  for (const d of probed.done) states.set(d.item.machine.name, d.value);
  const failed: { host: string; error: Error }[] = probed.failed.map((f) => ({ host: f.item.machine.name, error: f.error }));
  const live = (ms: Member[]) => ms.filter((m) => states.has(m.machine.name));

  const swarm = await initSwarm(live(managers), states, { events: opts.events, knownClusterId: opts.knownClusterId, force: opts.force, spec: opts.spec });
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
      await failHost(failed, opts.events, m.machine.name, 'join manager', err, m.remote, Date.now() - t0);
    }
  }

  if (opts.ingress === false) await removeIngress(swarm.lead, opts.events);
  // Workers in parallel, paced: each join goes through the manager with the most room in its adaptive window.
  const joined = await joinWorkers(workers, joinedManagers, swarm.tokens.worker, clusterNodeIds, opts);
  changed += joined.changed;
  for (const [name, id] of joined.nodeIds) nodeIds.set(name, id);
  failed.push(...joined.failed);

  // The last node list of the Ready wait serves the phantom sweep and the node settings too (at 4,700 nodes a list
  // is megabytes of JSON; versions read a moment earlier are fine: an update "out of sequence" reads again).
  const nodes = await waitAllReady(swarm.lead, nodeIds, members, opts.readyTimeoutS ?? 180, opts.events, failed);
  if (joined.changed > 0) await removePhantoms(swarm.lead, nodes, new Set(nodeIds.values()), phaseStart, opts.events);
  const settings = await applyNodeSettings(swarm.lead, members, nodeIds, { drainManagers: opts.drainManagers, events: opts.events, signal: opts.signal, concurrency: Math.max(8, opts.joinConcurrency), nodes });
  changed += settings.updated;
  failed.push(...settings.failed);
  return { swarm, nodeIds, failed, changed };
}

/**
 * Removes the phantom nodes a loaded swarm leaves behind: when the engine gives up waiting on a join ("Timeout was
 * reached") it asks for a certificate again, and the managers may sign both requests, so the first node ID stays in
 * the list with no hostname and status unknown, never to connect (27 of them after 117 joins on the lab). Only nodes
 * created during this phase, with no description, not Ready, not managers, and not any host's node are removed.
 */
async function removePhantoms(lead: Member, nodes: ListedNode[], ours: Set<string>, since: number, events: EventBus): Promise<void> {
  const engine = lead.remote.engine();
  const phantoms = nodes.filter(
    (n) => !ours.has(n.ID) && !n.Description?.Hostname && !n.ManagerStatus && n.Spec?.Role !== 'manager' && n.Status?.State !== 'ready' && Date.parse(n.CreatedAt ?? '') >= since - 60_000,
  );
  let removed = 0;
  for (const n of phantoms) {
    try {
      await engine.getNode(n.ID).remove({ force: true });
      removed++;
    } catch {
      // Gone already, or the managers are busy: a later `up` finds it again.
    }
  }
  if (phantoms.length) events.info(`removed ${removed} of ${phantoms.length} phantom node(s) left by joins the engine gave up waiting for (no hostname, never connected)`);
}

/**
 * `swarm.ingress: false`: removes the swarm's `ingress` overlay network before the workers join, as
 * `docker network rm ingress` does. Every node then skips the ingress sandbox (a network namespace, VXLAN, IPVS and
 * a DNS resolver, set up at join) and the per-network gossip among all nodes; published ports must use mode host.
 * Done before the joins, so none of them pays for it. A network still used by a service is left, with a warning.
 */
async function removeIngress(lead: Member, events: EventBus): Promise<void> {
  const engine = lead.remote.engine();
  const nets = (await engine.listNetworks({ filters: JSON.stringify({ name: ['ingress'] }) })) as { Id: string; Name: string; Ingress?: boolean }[];
  for (const n of nets.filter((x) => x.Ingress)) {
    try {
      await engine.getNetwork(n.Id).remove();
      events.info(`swarm.ingress is false: removed the ingress network (no routing mesh; publish ports with mode host)`);
    } catch (err) {
      events.warn(`swarm.ingress is false, but the ingress network could not be removed: ${(err as Error).message}`);
    }
  }
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

/**
 * Records a host's failure at a swarm step and emits it; a failure on a lost SSH connection, or an engine that
 * dropped its API connection, says so (explainEngineLoss).
 */
async function failHost(failed: { host: string; error: Error }[], events: EventBus, host: string, step: string, err: unknown, remote: Member['remote'] | undefined, ms: number): Promise<void> {
  const e = await explainEngineLoss(err, remote);
  failed.push({ host, error: e });
  events.emit({ type: 'step', phase: 'swarm', host, step, status: 'fail', message: e.message, ms });
}

/** One node list per poll (not one call per node): O(N) per poll whatever the cluster size. */
async function waitAllReady(lead: Member, nodeIds: Map<string, string>, members: Member[], timeoutS: number, events: EventBus, failed: { host: string; error: Error }[]): Promise<ListedNode[]> {
  const want = new Set(nodeIds.values());
  const byName = new Map(members.map((m) => [m.machine.name, m]));
  const t0 = Date.now();
  let checkedAt = t0;
  let notReady: string[] = [];
  const nodes = await pollUntil(
    async () => {
      const nodes = (await lead.remote.engine().listNodes()) as ListedNode[];
      const ready = new Set(nodes.filter((n) => n.Status?.State === 'ready').map((n) => n.ID));
      notReady = [...nodeIds.entries()].filter(([, id]) => want.has(id) && !ready.has(id)).map(([name]) => name);
      // A node whose engine died meanwhile (a crashed manager, a host gone) will not turn Ready in this run: after a
      // grace, every few seconds, the engines of a few nodes still waited for are pinged; one that does not answer is
      // that host's failure, and the others need not wait out the timeout. Only hosts not Ready are asked.
      if (notReady.length > 0 && Date.now() - t0 >= READY_GRACE_MS && Date.now() - checkedAt >= READY_CHECK_MS) {
        checkedAt = Date.now();
        await Promise.all(notReady.slice(0, READY_CHECKS).map(async (name) => {
          const m = byName.get(name);
          const down = m ? await m.remote.engine().ping().then(() => undefined, (err: Error) => err.message) : 'not a member of this run';
          if (down === undefined) return;
          want.delete(nodeIds.get(name)!);
          const state = nodes.find((n) => n.ID === nodeIds.get(name))?.Status?.State ?? 'unknown';
          const message = `the node is ${state} and its engine does not answer: ${down}`;
          failed.push({ host: name, error: new HostStepError(name, 'ready', message, { hint: 'start the engine (a re-run of `up` does), then run `up` again' }) });
          events.emit({ type: 'step', phase: 'swarm', host: name, step: 'ready', status: 'fail', message, ms: Date.now() - t0 });
        }));
      }
      return [...want].every((id) => ready.has(id)) ? nodes : undefined;
    },
    {
      timeoutMs: timeoutS * 1000,
      intervalMs: 500,
      onTimeout: () => new SwarmformError(`${notReady.length} of ${members.length} nodes not Ready after ${timeoutS} s: ${notReady.slice(0, 10).join(', ')}`),
    },
  );
  events.info(`all ${want.size} nodes Ready${want.size < nodeIds.size ? ` (${nodeIds.size - want.size} with a dead engine left out)` : ''}`);
  return nodes;
}

/** How long the Ready wait trusts every node to come, before it asks the engines of those that have not. */
const READY_GRACE_MS = 10_000;
const READY_CHECK_MS = 5_000;
/** Engines pinged per check: the nodes still waited for at that point are few unless something is wrong. */
const READY_CHECKS = 32;

/** A node as the Engine API lists it (the fields the swarm phase reads). */
type ListedNode = EngineNode & { CreatedAt?: string; Description?: { Hostname?: string }; Status?: { State?: string }; ManagerStatus?: unknown };

/**
 * Joins the workers through the managers, paced by a {@link JoinPacer}: at most `joinConcurrency` in flight, at most
 * ceil(joinConcurrency / managers) per manager, each manager's window adapting to how fast its joins finish. Every
 * worker emits start (when its slot is granted, so a timeline shows real join time) and ok/skip/fail.
 */
/** Attempts per worker join; retries only after a transient failure (see TRANSIENT_JOIN_ERROR). */
const JOIN_ATTEMPTS = 3;
/** Failures that say nothing about the worker itself: a dropped connection, or managers too busy to answer in time. */
const TRANSIENT_JOIN_ERROR = /socket hang up|ECONNRESET|EPIPE|context deadline exceeded|DeadlineExceeded|does not have a leader|lost leader status/i;
/** The worker's engine could not reach the manager it was sent to (its engine died, or the path to it is closed). */
const MANAGER_UNREACHABLE = /Error while dialing|connect: connection refused|connect: no route to host/i;

async function joinWorkers(
  workers: Member[],
  managers: Member[],
  token: string,
  clusterNodeIds: ReadonlySet<string>,
  opts: FormOptions,
): Promise<{ nodeIds: Map<string, string>; failed: { host: string; error: Error }[]; changed: number; stats?: PacerStats }> {
  const nodeIds = new Map<string, string>();
  const failed: { host: string; error: Error }[] = [];
  let changed = 0;
  if (workers.length === 0) return { nodeIds, failed, changed };
  const byName = new Map(managers.map((m) => [m.machine.name, m]));
  const fixed = opts.joinPacing === 'fixed';
  const pacer = new JoinPacer({
    managers: managers.map((m) => m.machine.name),
    maxInFlight: opts.joinConcurrency,
    // Fixed: every window starts at the cap and stays there.
    ...(fixed ? { initialWindow: Infinity, adaptive: false } : {}),
  });
  // One abort listener for the whole pacer (closing it rejects every waiting join), not one per waiting worker.
  const onAbort = () => pacer.close(new CancelledError('cancelled', { cause: opts.signal?.reason }));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const step = 'join worker';
  const known = new Set(clusterNodeIds);
  // The checks run a few windows ahead of the joins, not all at once: 4,697 checks started together made the first
  // join wait for most of them (0.15 s at 4,700 simulated hosts), while a few windows ahead keep every slot fed.
  const preparing = pLimit(Math.max(64, 4 * opts.joinConcurrency));
  await Promise.all(
    workers.map(async (w, i) => {
      const host = w.machine.name;
      // The checks first, outside a join slot: the node's own state and 2377/tcp of a manager cost the managers
      // nothing, and on a busy machine they take seconds that would otherwise hold a manager's slot idle.
      const tp = performance.now();
      let prepMs = 0;
      let lease: Lease;
      try {
        const skipped = await preparing(() => prepareJoin(w, managers[i % managers.length]!, { clusterNodeIds: known, force: opts.force, step }));
        if (skipped) {
          nodeIds.set(host, skipped.nodeId);
          opts.events.emit({ type: 'step', phase: 'swarm', host, step, status: 'start' });
          opts.events.emit({ type: 'step', phase: 'swarm', host, step, status: 'skip', message: skipped.skipped, ms: Math.round(performance.now() - tp) });
          return;
        }
        prepMs = performance.now() - tp;
        lease = await pacer.acquire();
      } catch (err) {
        opts.events.emit({ type: 'step', phase: 'swarm', host, step, status: 'start' });
        await failHost(failed, opts.events, host, step, err, w.remote, Math.round(performance.now() - tp));
        return;
      }
      const t0 = Date.now();
      opts.events.emit({ type: 'step', phase: 'swarm', host, step, status: 'start' });
      try {
        // A transport or overload failure (connection reset, Raft deadline) is retried with a new slot, possibly
        // through another manager; joinNode looks at the node first, so a join that went through is not repeated.
        let r: Awaited<ReturnType<typeof joinNode>>;
        let via: Member;
        for (let attempt = 1; ; attempt++) {
          via = byName.get(lease.manager)!;
          const ta = Date.now();
          try {
            r = attempt === 1 ? await joinPrepared(w, via, token, step, prepMs) : await joinNode(w, via, token, { clusterNodeIds: known, force: opts.force, step });
            break;
          } catch (err) {
            const message = (err as Error).message;
            lease.done({ kind: 'error', ms: Date.now() - ta, message });
            // A manager lost mid-run (its engine died): it leaves the rotation at once, and the join goes on through
            // another; without that, every join sent to it failed (a fifth of 4,700 in the fault campaign).
            const unreachable = MANAGER_UNREACHABLE.test(message);
            if (unreachable && (await via.remote.engine().ping().then(() => false, () => true)) && pacer.retire(via.machine.name)) {
              opts.events.info(`${via.machine.name}: its engine does not answer; joins go through the other managers`);
            }
            if (attempt >= JOIN_ATTEMPTS || !(unreachable || TRANSIENT_JOIN_ERROR.test(message)) || opts.signal?.aborted) throw err;
            opts.events.emit({ type: 'step', phase: 'swarm', host, step, status: 'retry', attempt: attempt + 1, message });
            // Our own failed join can leave the engine in the swarm's error state: leave it so the retry starts clean.
            const state = await localSwarm(w.remote.engine()).catch(() => undefined);
            if (state?.state === 'error') await w.remote.engine().swarmLeave({ force: true }).catch(() => undefined);
            // A join that went through despite the error: the managers know the node, so the retry sees a member.
            if (state?.nodeId && state.state !== 'error' && (await via.remote.engine().getNode(state.nodeId).inspect().then(() => true, () => false))) {
              known.add(state.nodeId);
            }
            lease = await pacer.acquire();
          }
        }
        nodeIds.set(host, r.nodeId);
        if (r.skipped) {
          lease.done({ kind: 'skip' });
          opts.events.emit({ type: 'step', phase: 'swarm', host, step, status: 'skip', message: r.skipped, ms: Date.now() - t0 });
          return;
        }
        changed++;
        const t = r.timing!;
        // The manager's share of the join: the engine's join call and the wait until the node is active. Labels come
        // after every join, in one batch (applyNodeSettings): set per join, right after it, they were Raft writes the
        // pacer did not govern, racing the new node's own updates ("out of sequence"), and on 3+117 on the lab they
        // took a median 22 s per node while slowing the joins (docs/scale.md).
        lease.done(r.timedOut ? { kind: 'error', ms: t.joinMs + t.activeMs, message: 'Timeout was reached before node joined' } : { kind: 'ok', ms: t.joinMs + t.activeMs });
        const secs = (ms: number) => (ms / 1000).toFixed(1);
        opts.events.emit({
          type: 'step', phase: 'swarm', host, step, status: 'ok', ms: Date.now() - t0,
          message: `joined via ${via.machine.name} (checks ${secs(t.prepMs)} s, join ${secs(t.joinMs)} s` +
            `${r.timedOut ? ' (timed out, finished in the background)' : ''}, active ${secs(t.activeMs)} s)`,
        });
      } catch (err) {
        lease.done({ kind: 'error', ms: Date.now() - t0, message: (err as Error).message });
        await failHost(failed, opts.events, host, step, err, w.remote, Date.now() - t0);
      }
    }),
  );
  opts.signal?.removeEventListener('abort', onAbort);
  // Clears a pending wake-up timer (a cool-down) so nothing of the pacer outlives the joins.
  pacer.close(new Error('worker joins finished'));
  const stats = pacer.stats();
  opts.events.info(
    `worker joins paced${fixed ? ' (fixed window)' : ''}: peak ${stats.peakInFlight} in flight, ${stats.slowDowns} slow-downs, ${stats.overloads} overload signals; windows ` +
      Object.entries(stats.managers).map(([k, v]) => `${k} ${v.window}`).join(', '),
  );
  return { nodeIds, failed, changed, stats };
}
