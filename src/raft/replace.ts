/** `raft replace`: removes a dead manager and promotes (or joins) another host so the manager count is what it was. */
import type Docker from 'dockerode';
import { promoteMessage, promoteWorker } from './promote.js';
import type { Machine } from '../base/machine.js';
import { confirmGroup, firstAnswering, hostOf, raftMembers, removeNode, setLabel, setRole, type SwarmNode } from './nodes.js';
import { quorumOf } from './quorum.js';
import { recordRoles } from '../cluster/roles.js';
import { pollUntil } from '../run/poll.js';
import { joinNode } from '../swarm/join-node.js';
import type { Member } from '../swarm/members.js';
import { HOST_LABEL } from '../swarm/node-settings.js';
import type { Context } from '../cluster/context.js';
import { HostStepError, SwarmformError, UsageError } from '../base/errors.js';
import { clearStaleState, stepDo, withLock, withSessions, zoneFor } from './common.js';
import { resolveMembers } from '../cluster/machines.js';
import { enginesOf, memberOf, probeHosts, type Probe } from './probe.js';

export interface ReplaceResult {
  removed: string;
  replacement: string;
  how: 'promoted' | 'joined';
  /** Whether the dead host's stale swarm state was cleared (its SSH answered). */
  cleared: boolean;
  managers: string[];
}

/** Removes a dead manager and promotes (or joins) another host so the manager count is what it was. */
export async function raftReplace(ctx: Context, dead: string, opts: { with?: string; force?: boolean } = {}): Promise<ReplaceResult> {
  return withLock(ctx, async () => {
    const machines = await resolveMembers(ctx);
    const byName = new Map(machines.map((m) => [m.name, m]));
    if (opts.with && !byName.has(opts.with)) throw new UsageError(`--with ${opts.with}: no such host in cluster ${ctx.inventory.cluster}`, { hint: 'name a host of the inventory that `up` created' });
    if (opts.with === dead) throw new UsageError('--with names the host being replaced');
    return withSessions(ctx, async (sessions) => {
      const managerMachines = machines.filter((m) => m.role === 'manager' && m.name !== dead);
      const probes = await probeHosts(ctx, managerMachines, sessions);
      const listed = await firstAnswering(enginesOf(probes));
      const members = raftMembers(listed.nodes);
      const deadMember = members.find((m) => m.host === dead);
      if (!deadMember) {
        throw new UsageError(`${dead} is not a manager of the swarm (managers: ${members.map((m) => m.host).join(', ')})`, { hint: 'see `swarmform raft status`' });
      }
      if (deadMember.reachable || deadMember.leader) {
        if (!opts.force) {
          throw new UsageError(`${dead} is ${deadMember.leader ? 'the leader' : 'reachable'}: it is not dead`, {
            hint: 'change managers through the inventory and `up`, or pass --force to replace it anyway',
          });
        }
      }
      const others = members.filter((m) => m.host !== dead);
      const reachableOthers = others.filter((m) => m.reachable || m.leader).length;
      if (reachableOthers < quorumOf(members.length - 1)) {
        throw new SwarmformError(`only ${reachableOthers} of the other ${others.length} managers are reachable: removing ${dead} would lose the quorum`, {
          hint: 'the majority is lost: use `swarmform raft recover`',
        });
      }
      const engines = enginesOf(probes);
      const engine = listed.engine;

      // 1. The replacement: named, else a Ready, active worker, preferring a zone without a manager.
      let candidate: Machine | undefined;
      let candidateNode: SwarmNode | undefined;
      if (opts.with) {
        candidate = byName.get(opts.with)!;
        candidateNode = listed.nodes.find((n) => hostOf(n) === opts.with);
        if (candidateNode?.ManagerStatus) throw new UsageError(`--with ${opts.with}: it is a manager already`);
      } else {
        const managerZones = new Set(others.map((m) => zoneFor(ctx, m.host)).filter(Boolean));
        const workers = listed.nodes.filter((n) => !n.ManagerStatus && n.Spec.Role !== 'manager' && n.Status?.State === 'ready' && n.Spec.Availability === 'active' && byName.has(hostOf(n)) && hostOf(n) !== dead);
        // A zone without a manager first, then hosts of unknown zone, then zones that have managers already.
        const rank = (n: SwarmNode) => {
          const z = zoneFor(ctx, hostOf(n));
          return z === undefined ? 1 : managerZones.has(z) ? 2 : 0;
        };
        workers.sort((a, b) => rank(a) - rank(b));
        candidateNode = workers[0];
        if (!candidateNode) throw new SwarmformError('no Ready, active worker to promote', { hint: 'name a host with --with HOST' });
        candidate = byName.get(hostOf(candidateNode))!;
      }
      await sessions.connect([candidate], { phase: 'raft', timeoutS: 30, signal: ctx.signal });
      const candMember = await memberOf(ctx, candidate, sessions);
      if (!candMember) throw new HostStepError(candidate.name, 'replace', 'cannot connect over SSH');

      // 2. Remove the dead manager: demote (SwarmKit removes it from the Raft group), then remove its node.
      await stepDo(ctx, dead, 'demote dead manager', async () => {
        await setRole(engine, deadMember.nodeId, 'worker');
        await pollUntil(
          async () => {
            const n = (await engine.getNode(deadMember.nodeId).inspect()) as SwarmNode;
            return n.ManagerStatus ? undefined : true;
          },
          { timeoutMs: 60_000, intervalMs: 400, signal: ctx.signal, onTimeout: () => new HostStepError(dead, 'demote dead manager', 'still in the Raft group after 60 s') },
        );
      }, () => `left the Raft group: ${others.length} managers, quorum ${quorumOf(others.length)}`);
      await stepDo(ctx, dead, 'remove node', () => removeNode(engine, deadMember.nodeId), () => 'node removed (docker node rm --force)');

      // 3. Clear the dead host's stale swarm state if it answers, so it can never come back with the old Raft log.
      const cleared = await clearStaleState(ctx, byName.get(dead), sessions);

      // 4. Bring the count back: promote the worker, or join the host as a manager.
      const managerSet = new Set([...others.map((m) => m.host), candidate.name]);
      let how: ReplaceResult['how'];
      if (candidateNode) {
        how = 'promoted';
        const via = probes.find((p) => p.isManager && p.member && p.machine.name !== dead)?.member;
        if (!via) throw new SwarmformError('no manager answers over SSH to join the replacement through');
        await stepDo(ctx, candidate.name, 'promote manager', () =>
          promoteWorker({ candidate: candMember, node: candidateNode!, engine, via, members: others, engines, managers: managerSet, step: 'promote manager', signal: ctx.signal }),
        (r) => promoteMessage(r, managerSet.size));
      } else {
        how = 'joined';
        await joinAsManager(ctx, candMember, probes, listed.nodes, engine, engines, managerSet);
      }
      await recordRoles(ctx.state, { [dead]: 'worker', [candidate.name]: 'manager' });
      return { removed: dead, replacement: candidate.name, how, cleared, managers: [...managerSet].sort() };
    });
  });
}

/** Joins a host that is not in the swarm as a manager through the current leader, labels it and confirms the group. */
async function joinAsManager(ctx: Context, m: Member, probes: Probe[], nodes: SwarmNode[], engine: Docker, engines: { name: string; engine: Docker }[], managerSet: Set<string>): Promise<void> {
  const via = probes.find((p) => p.isManager && p.member)!.member!;
  const sw = (await engine.swarmInspect()) as { JoinTokens: { Manager: string } };
  await stepDo(ctx, m.machine.name, 'join manager', async () => {
    const r = await joinNode(m, via, sw.JoinTokens.Manager, { clusterNodeIds: new Set(nodes.map((n) => n.ID)), force: false, step: 'join manager' });
    await setLabel(engine, r.nodeId, HOST_LABEL, m.machine.name);
    await confirmGroup(engines, { managers: managerSet, host: m.machine.name, step: 'join manager' }, 90_000, ctx.signal);
  }, () => `joined as manager: ${managerSet.size} managers, all reachable`);
}
