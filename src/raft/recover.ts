/** `raft recover`: rebuilds a swarm that lost its majority from the surviving manager with the newest Raft log. */
import type Docker from 'dockerode';
import { promoteMessage, promoteWorker } from './promote.js';
import type { Role } from '../inventory/types.js';
import { confirmGroup, errorText, firstAnswering, hostOf, listNodes, raftMembers, removeNode, selfNode, setLabel, setRole, type SwarmNode } from './nodes.js';
import { quorumOf } from './quorum.js';
import { recordRoles } from '../cluster/roles.js';
import { pollUntil } from '../run/poll.js';
import { joinNode } from '../swarm/join-node.js';
import { HOST_LABEL } from '../swarm/node-settings.js';
import type { Context } from '../cluster/context.js';
import { HostStepError, SwarmformError, UsageError } from '../base/errors.js';
import { clearStaleState, forceNewCluster, PROBE_S, step, stepDo, SWARM_DIR, unlockOne, withLock, withSessions } from './common.js';
import { resolveMembers } from '../cluster/machines.js';
import { enginesOf, memberOf, probeHosts } from './probe.js';

/** How long `raft recover` waits for workers to reconnect to the rebuilt swarm before promoting some. */
const RECONNECT_WAIT_MS = 120_000;

export interface RecoverPlan {
  survivor: string;
  why: string;
  advertise: string;
  /** Old managers' nodes to demote and remove. */
  removeNodes: string[];
  /** Hosts whose stale Raft state is cleared, then rejoined as managers. */
  rejoin: string[];
  /** Workers promoted when old manager hosts cannot come back. */
  promote: string[];
  steps: string[];
}

export interface RecoverResult {
  plan: RecoverPlan;
  dryRun: boolean;
  managers: string[];
  leader?: string;
}

/** Rebuilds a swarm that lost its majority from the surviving manager with the newest Raft log. */
export async function raftRecover(ctx: Context, opts: { dryRun?: boolean; from?: string; force?: boolean } = {}): Promise<RecoverResult> {
  const body = async (): Promise<RecoverResult> => {
    const machines = await resolveMembers(ctx);
    const byName = new Map(machines.map((m) => [m.name, m]));
    if (opts.from && !byName.has(opts.from)) throw new UsageError(`--from ${opts.from}: no such host in cluster ${ctx.inventory.cluster}`);
    return withSessions(ctx, async (sessions) => {
      const managerMachines = machines.filter((m) => m.role === 'manager' || m.name === opts.from);
      const probes = await probeHosts(ctx, managerMachines, sessions);
      // Is the quorum really gone? A leader answering with a reachable majority means `raft replace` is the tool.
      try {
        const listed = await firstAnswering(enginesOf(probes));
        const members = raftMembers(listed.nodes);
        const reachable = members.filter((m) => m.reachable || m.leader).length;
        if (members.some((m) => m.leader) && reachable >= quorumOf(members.length) && !opts.force) {
          throw new UsageError(`the quorum is intact (${reachable} of ${members.length} managers reachable, leader ${members.find((m) => m.leader)!.host})`, {
            hint: members.length > reachable ? `replace the dead manager(s) with \`swarmform raft replace ${members.find((m) => !m.reachable && !m.leader)!.host}\`` : 'nothing to recover',
          });
        }
      } catch (err) {
        if (err instanceof UsageError) throw err;
      }
      // Survivors: engines that still hold Raft state. The newest Raft log wins (last WAL write), then inventory order.
      const fresh = await Promise.all(
        probes.map(async (p) => {
          if (!p.member) return { p, wal: -1 };
          const r = await p.member.remote.run(`stat -c %Y ${SWARM_DIR}/raft/wal-v3*/*.wal ${SWARM_DIR}/raft/snap-v3*/*.snap 2>/dev/null | sort -n | tail -1`, { timeoutMs: PROBE_S * 1000 }).catch(() => undefined);
          const wal = Number(r?.stdout.trim() || -1);
          return { p, wal };
        }),
      );
      const alive = fresh.filter((f) => (f.p.engine === 'active' || f.p.engine === 'locked' || f.p.engine === 'error') && f.wal > 0 && f.p.member);
      let chosen = opts.from ? alive.find((f) => f.p.machine.name === opts.from) : alive.sort((a, b) => b.wal - a.wal)[0];
      if (!chosen) {
        const why = probes.map((p) => `${p.machine.name}: ${p.engine}${p.message ? ` (${p.message})` : ''}`).join('; ');
        throw new SwarmformError(`no surviving manager with Raft state answers${opts.from ? ` as ${opts.from}` : ''} (${why})`, {
          hint: 'start a manager\'s engine again, or restore a backup onto a fresh host with `swarmform raft restore ARCHIVE --to HOST`',
        });
      }
      const survivor = chosen.p.member!;
      // Engine 20.10 cannot force a new cluster from autolocked state: `swarm init --force-new-cluster` restarts the
      // node without the key ("needs to be unlocked"), drops it, and `swarm unlock` then finds no swarm (measured).
      const encrypted = await survivor.remote.run(`grep -q ENCRYPTED ${SWARM_DIR}/certificates/swarm-node.key && echo yes`, { timeoutMs: PROBE_S * 1000 }).catch(() => undefined);
      if (encrypted?.stdout.includes('yes')) {
        throw new SwarmformError(`the swarm is autolocked: Docker Engine cannot force a new cluster from ${survivor.machine.name}'s locked Raft state`, {
          hint: 'bring enough managers back for a quorum (start their engines, then `swarmform raft unlock`), or restore a backup taken with autolock off onto a fresh host',
        });
      }
      const oldManagers = machines.filter((m) => m.role === 'manager' && m.name !== survivor.machine.name);
      const sshOk = new Set(probes.filter((p) => p.member).map((p) => p.machine.name));
      const rejoin = oldManagers.filter((m) => sshOk.has(m.name)).map((m) => m.name);
      const wantCount = machines.filter((m) => m.role === 'manager').length;
      const missing = Math.max(0, wantCount - 1 - rejoin.length);
      const promote: string[] = [];
      if (missing > 0) promote.push(...machines.filter((m) => m.role === 'worker').slice(0, missing).map((m) => m.name)); // refined after the rebuild
      const plan: RecoverPlan = {
        survivor: survivor.machine.name,
        why: opts.from ? 'chosen with --from' : `its Raft log was written last (${new Date(chosen.wal * 1000).toISOString()})`,
        advertise: survivor.advertise,
        removeNodes: oldManagers.map((m) => m.name),
        rejoin,
        promote,
        steps: [
          `${survivor.machine.name}: docker swarm init --force-new-cluster --advertise-addr ${survivor.advertise} (keeps services, networks, secrets and configs)`,
          ...(oldManagers.length ? [`demote and remove the old managers' nodes: ${oldManagers.map((m) => m.name).join(', ')}`] : []),
          ...rejoin.map((h) => `${h}: clear its stale Raft state (engine stopped, ${SWARM_DIR} removed), then join as a manager`),
          ...(promote.length ? [`promote worker(s) to restore ${wantCount} managers: ${promote.join(', ')} (or others Ready at the time)`] : []),
        ],
      };
      if (opts.dryRun) return { plan, dryRun: true, managers: [] };

      const engine = survivor.remote.engine();
      if (chosen.p.engine === 'locked') await unlockOne(ctx, survivor);
      await stepDo(ctx, survivor.machine.name, 'force new cluster', async () => {
        await forceNewCluster(engine, survivor, (await ctx.state.readSecrets()).unlockKey);
        await pollUntil(async () => ((await selfNode(engine)).ManagerStatus?.Leader ? true : undefined), {
          timeoutMs: 90_000, intervalMs: 500, signal: ctx.signal,
          onTimeout: () => new HostStepError(survivor.machine.name, 'force new cluster', 'did not become the leader within 90 s'),
        });
      }, () => 'a one-manager swarm with the old state; leader');
      const self = await selfNode(engine);
      await setLabel(engine, self.ID, HOST_LABEL, survivor.machine.name);
      const nodes = await listNodes(engine);
      for (const n of nodes.filter((x) => x.ID !== self.ID && (x.Spec.Role === 'manager' || x.ManagerStatus))) {
        await stepDo(ctx, hostOf(n), 'remove old manager node', async () => {
          // No longer in the Raft member list after the rebuild, so the demotion is refused ("can't find manager in
          // raft memberlist") and the removal needs none.
          await setRole(engine, n.ID, 'worker').catch((err) => {
            if (!/raft memberlist/i.test(errorText(err))) throw err;
          });
          await removeNode(engine, n.ID);
        }, () => 'demoted and removed');
      }
      const managerSet = new Set([survivor.machine.name]);
      const engines = [{ name: survivor.machine.name, engine }];
      const sw = (await engine.swarmInspect()) as { ID: string; JoinTokens: { Manager: string; Worker: string } };
      for (const host of rejoin) {
        const m = byName.get(host)!;
        await clearStaleState(ctx, m, sessions, { start: true });
        const member = (await memberOf(ctx, m, sessions))!;
        managerSet.add(host);
        await stepDo(ctx, host, 'join manager', async () => {
          const r = await joinNode(member, survivor, sw.JoinTokens.Manager, { clusterNodeIds: new Set(), force: false, step: 'join manager' });
          await setLabel(engine, r.nodeId, HOST_LABEL, host);
          await confirmGroup(engines, { managers: managerSet, host, step: 'join manager' }, 90_000, ctx.signal);
        }, () => `joined as a fresh manager: ${managerSet.size} managers`);
      }
      const moves: Record<string, Role> = {};
      if (managerSet.size < wantCount) {
        const need = wantCount - managerSet.size;
        const workers = await readyWorkers(ctx, engine, survivor.machine.name, need, (n) => byName.has(hostOf(n)));
        for (const w of workers.slice(0, need)) {
          const host = hostOf(w);
          managerSet.add(host);
          const m = byName.get(host)!;
          await sessions.connect([m], { phase: 'raft', timeoutS: PROBE_S, signal: ctx.signal });
          const member = await memberOf(ctx, m, sessions);
          await stepDo(ctx, host, 'promote manager', async () => {
            if (!member) {
              await setRole(engine, w.ID, 'manager');
              await confirmGroup(engines, { managers: managerSet, host, step: 'promote manager' }, 90_000, ctx.signal);
              return { how: 'promoted' as const };
            }
            // Its join address is most likely one of the lost managers: promoteWorker joins it again through the survivor.
            const members = raftMembers(await listNodes(engine));
            return promoteWorker({ candidate: member, node: w, engine, via: survivor, members, engines, managers: managerSet, step: 'promote manager', signal: ctx.signal });
          }, (r) => promoteMessage(r, managerSet.size));
          moves[host] = 'manager';
        }
        for (const m of oldManagers.filter((x) => !managerSet.has(x.name))) moves[m.name] = 'worker';
        if (managerSet.size < wantCount) ctx.events.warn(`only ${managerSet.size} of ${wantCount} managers could be restored: add hosts and run \`up\``);
      }
      if (Object.keys(moves).length) await recordRoles(ctx.state, moves);
      await ctx.state.writeSecrets({ ...(await ctx.state.readSecrets()), workerToken: sw.JoinTokens.Worker, managerToken: sw.JoinTokens.Manager });
      await ctx.state.update((st) => ({ ...st, swarm: { clusterId: sw.ID, createdAt: st.swarm?.createdAt ?? new Date().toISOString() } }));
      return { plan, dryRun: false, managers: [...managerSet].sort(), leader: survivor.machine.name };
    });
  };
  return opts.dryRun ? body() : withLock(ctx, body);
}

/**
 * Workers that can be promoted after a rebuild. Right after `--force-new-cluster` every worker shows `Unknown`: each
 * was talking to a manager that is gone and reconnects to the survivor only on its own backoff (measured on the lab:
 * 10 to 30 s after the rebuild). Waits until `need` of them are Ready (or all known workers are, or the time is up)
 * instead of reading the list once, which found none and restored one manager out of three.
 */
async function readyWorkers(ctx: Context, engine: Docker, survivor: string, need: number, known: (n: SwarmNode) => boolean): Promise<SwarmNode[]> {
  let last: SwarmNode[] = [];
  const t0 = Date.now();
  step(ctx, survivor, 'wait for workers', 'start');
  try {
    await pollUntil(async () => {
      const candidates = (await listNodes(engine)).filter((n) => !n.ManagerStatus && n.Spec.Role !== 'manager' && n.Spec.Availability === 'active' && known(n));
      last = candidates.filter((n) => n.Status?.State === 'ready');
      return last.length >= need || last.length === candidates.length ? true : undefined;
    }, { timeoutMs: RECONNECT_WAIT_MS, intervalMs: 1000, signal: ctx.signal, onTimeout: () => new Error('timed out') });
  } catch (err) {
    if (ctx.signal?.aborted) throw err;
  }
  step(ctx, survivor, 'wait for workers', 'ok', `${last.length} worker(s) Ready on the rebuilt swarm after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return last;
}
