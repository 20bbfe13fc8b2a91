/**
 * Brings the swarm's manager set to the inventory's, one Raft membership change at a time, each confirmed (the
 * expected managers, a leader, all reachable) before the next. Promotions come before demotions so the group only
 * grows before it shrinks, and the leader, if it must go, is demoted last, through another manager, after checking
 * the others are reachable: SwarmKit then hands leadership over before removing it (moby#34384 was the old failure).
 * Changes are refused while any manager is unreachable, since a change then could cost the quorum.
 */
import type Docker from 'dockerode';
import { HostStepError, SwarmformError } from '../base/errors.js';
import type { EventBus } from '../base/events.js';
import type { Member } from '../swarm/members.js';
import { localSwarm } from '../swarm/node-state.js';
import { confirmGroup, firstAnswering, hostOf, listNodes, raftMembers, setRole, type SwarmNode } from './nodes.js';
import { withTimeout } from '../run/timeout.js';
import { promoteMessage, promoteWorker } from './promote.js';
import { quorumOf } from './quorum.js';

export interface ReconcileOptions {
  events: EventBus;
  /** `promote`: only add managers (before joins); `all`: add, then remove (after joins). */
  mode: 'promote' | 'all';
  signal?: AbortSignal;
  /**
   * False when the state records no swarm for this cluster: then a host the inventory does not call a manager is
   * not looked at as one (a manager of some other swarm is refused by its own join's checks), and a fresh `up` on
   * 4,700 hosts does not ask every engine first. Default true.
   */
  knownSwarm?: boolean;
}

export interface ReconcileResult {
  promoted: string[];
  demoted: string[];
  /** Why nothing was changed although something differed. */
  held?: string;
}

/** The Raft changes needed to go from the current managers to `wanted`, in a safe order. */
export function planChanges(nodes: SwarmNode[], wanted: Set<string>, mode: 'promote' | 'all'): { promote: SwarmNode[]; demote: SwarmNode[] } {
  const managers = nodes.filter((n) => n.Spec.Role === 'manager' || n.ManagerStatus);
  const order = new Map([...wanted].map((h, i) => [h, i]));
  const promote = nodes
    .filter((n) => wanted.has(hostOf(n)) && n.Spec.Role !== 'manager' && n.Status?.State === 'ready')
    .sort((a, b) => order.get(hostOf(a))! - order.get(hostOf(b))!);
  if (mode === 'promote') return { promote, demote: [] };
  const demote = managers.filter((n) => !wanted.has(hostOf(n)));
  // Never demote to zero: with no wanted host a manager yet, keep the managers until the new ones have joined.
  const staying = managers.length - demote.length + promote.length;
  if (staying < 1) return { promote, demote: [] };
  demote.sort((a, b) => Number(Boolean(a.ManagerStatus?.Leader)) - Number(Boolean(b.ManagerStatus?.Leader)));
  return { promote, demote };
}

/** Runs the changes; members are the hosts whose engines answer this run (any of them may be a manager). */
export async function reconcileManagers(members: Member[], wanted: Set<string>, opts: ReconcileOptions): Promise<ReconcileResult> {
  const result: ReconcileResult = { promoted: [], demoted: [] };
  const byName = new Map(members.map((m) => [m.machine.name, m]));
  // Managers that answer: wanted ones first, so confirmations read through a node that stays a manager.
  // Ask the wanted managers first (a handful); only when none of them is a manager of a swarm the state knows, every
  // member (O(N), rare: the inventory moved every manager elsewhere).
  const probe = async (ms: Member[]) =>
    (
      await Promise.all(
        ms.map(async (m) => {
          try {
            const s = await withTimeout(localSwarm(m.remote.engine()), 5000, 'no answer');
            return s.isManager ? m : undefined;
          } catch {
            return undefined;
          }
        }),
      )
    ).filter((m): m is Member => m !== undefined);
  let managerMembers = await probe(members.filter((m) => wanted.has(m.machine.name)));
  if (managerMembers.length === 0 && opts.knownSwarm !== false) managerMembers = await probe(members.filter((m) => !wanted.has(m.machine.name)));
  if (managerMembers.length === 0) return result; // no swarm yet: formation creates it with the right managers
  const enginesOf = (exclude?: string) =>
    managerMembers
      .filter((m) => m.machine.name !== exclude)
      .sort((a, b) => Number(!wanted.has(a.machine.name)) - Number(!wanted.has(b.machine.name)))
      .map((m) => ({ name: m.machine.name, engine: m.remote.engine() }));

  const first = await firstAnswering(enginesOf());
  const { promote, demote } = planChanges(first.nodes, wanted, opts.mode);
  if (promote.length === 0 && demote.length === 0) return result;
  const current = raftMembers(first.nodes);
  const unreachable = current.filter((m) => !m.reachable && !m.leader).map((m) => m.host);
  if (unreachable.length > 0) {
    result.held = `manager(s) ${unreachable.join(', ')} unreachable: not changing the manager set while the quorum is degraded`;
    opts.events.warn(`${result.held}; run \`swarmform raft replace ${unreachable[0]}\` first`);
    return result;
  }
  const managers = new Set(current.map((m) => m.host));
  if (opts.mode === 'all' && ![...managers].some((h) => wanted.has(h)) && promote.length === 0) {
    throw new SwarmformError('none of the managers the inventory wants is a manager of the swarm yet, so none could take over', {
      hint: 'add the new managers to the inventory while keeping at least one current manager, run `up`, then remove the old ones',
    });
  }

  for (const n of promote) {
    const host = hostOf(n);
    await change(host, 'promote manager', async () => {
      managers.add(host);
      const candidate = byName.get(host);
      if (!candidate) {
        await setRole(first.engine, n.ID, 'manager');
        await confirmGroup(enginesOf(), { managers, host, step: 'promote manager' }, 90_000, opts.signal);
        return `promoted: ${managers.size} managers, quorum ${quorumOf(managers.size)}`;
      }
      const members = raftMembers(await listNodes(first.engine));
      const r = await promoteWorker({ candidate, node: n, engine: first.engine, via: managerMembers[0]!, members, engines: enginesOf(), managers, step: 'promote manager', signal: opts.signal });
      return `${promoteMessage(r, managers.size)}, quorum ${quorumOf(managers.size)}`;
    });
    result.promoted.push(host);
  }
  for (const n of demote) {
    const host = hostOf(n);
    const leader = Boolean(n.ManagerStatus?.Leader);
    await change(host, 'demote manager', async () => {
      // Through another manager that stays: the leader's own API may drop mid-call while it hands leadership over.
      const via = enginesOf(host)[0];
      if (!via) throw new HostStepError(host, 'demote manager', 'no other manager answers to demote it through');
      await setRole(via.engine, n.ID, 'worker');
      managers.delete(host);
      await confirmGroup(enginesOf(host), { managers, host, step: 'demote manager' }, 90_000, opts.signal);
      return `demoted${leader ? ' (was the leader; leadership moved first)' : ''}: ${managers.size} managers, quorum ${quorumOf(managers.size)}`;
    });
    result.demoted.push(host);
    if (!byName.has(host)) opts.events.warn(`${host} was a manager but is not in the inventory: demoted, still a worker of the swarm`);
  }
  return result;

  async function change(host: string, step: string, fn: () => Promise<string>): Promise<void> {
    const t0 = Date.now();
    opts.events.emit({ type: 'step', phase: 'swarm', host, step, status: 'start' });
    try {
      const message = await fn();
      opts.events.emit({ type: 'step', phase: 'swarm', host, step, status: 'ok', message, ms: Date.now() - t0 });
    } catch (err) {
      opts.events.emit({ type: 'step', phase: 'swarm', host, step, status: 'fail', message: (err as Error).message, ms: Date.now() - t0 });
      throw err;
    }
  }
}

export type { Docker };
