/**
 * What `up` calls around swarm formation: the roles in force; before it, unlocking locked managers, clearing stale
 * Raft state and promoting wanted managers; after it, demotions and the swarm settings; and the spec for `swarm init`.
 */
import type Docker from 'dockerode';
import { engineInitOf, startEngine, stopEngine } from '../bootstrap/engine-service.js';
import { firstAnswering } from './nodes.js';
import { withTimeout } from '../run/timeout.js';
import { reconcileManagers, type ReconcileResult } from './reconcile.js';
import { readRaftFile } from '../cluster/roles.js';
import { effectiveSettings, specFor } from '../inventory/swarm-settings.js';
import { readUnlockKey, unlockEngine, updateSwarmSpec } from './settings.js';
import { pollUntil } from '../run/poll.js';
import type { Member } from '../swarm/members.js';
import { localSwarm } from '../swarm/node-state.js';
import type { Context } from '../cluster/context.js';
import { HostStepError } from '../base/errors.js';
import { PROBE_S, SWARM_DIR } from './common.js';

/**
 * Before formation: unlock managers an engine restart locked (autolock), then promote the members the inventory
 * now wants as managers, so formation finds them managers already. Demotions wait until after formation.
 */
export async function beforeSwarm(ctx: Context, members: Member[]): Promise<ReconcileResult> {
  const key = (await ctx.state.readSecrets()).unlockKey;
  const locked = (
    await Promise.all(members.filter((m) => m.machine.role === 'manager').map(async (m) => ((await localSwarm(m.remote.engine()).catch(() => undefined))?.state === 'locked' ? m : undefined)))
  ).filter((m): m is Member => m !== undefined);
  for (const m of locked) {
    if (!key) throw new HostStepError(m.machine.name, 'unlock', 'the engine is locked (autolock) and the state has no unlock key', { hint: 'run `docker swarm unlock` on it' });
    await unlockEngine(m.remote.engine(), key);
    await pollUntil(async () => ((await localSwarm(m.remote.engine())).state === 'active' ? true : undefined), {
      timeoutMs: 60_000, intervalMs: 300, onTimeout: () => new HostStepError(m.machine.name, 'unlock', 'still not active 60 s after unlocking'),
    });
    ctx.events.emit({ type: 'step', phase: 'swarm', host: m.machine.name, step: 'unlock', status: 'ok', message: 'unlocked with the key in the state' });
  }
  await clearStaleManagers(ctx, members);
  const wanted = new Set(members.filter((m) => m.machine.role === 'manager').map((m) => m.machine.name));
  const knownSwarm = Boolean((await ctx.state.read()).swarm);
  return reconcileManagers(members, wanted, { events: ctx.events, mode: 'promote', signal: ctx.signal, knownSwarm });
}

/**
 * A manager that was removed from the swarm (by `raft replace` or `raft recover` while it was unreachable) and comes
 * back still holds the old Raft state; rejoining it as it is corrupts the cluster. Such a host (a wanted manager, or
 * one a raft command moved to worker) whose engine reports a node id the swarm no longer lists has its swarm state
 * cleared here, so formation joins it as a fresh node.
 */
async function clearStaleManagers(ctx: Context, members: Member[]): Promise<void> {
  const moved = (await readRaftFile(ctx.state)).roles;
  const suspects = members.filter((m) => m.machine.role === 'manager' || moved[m.machine.name] === 'worker');
  const states = await Promise.all(suspects.map(async (m) => ({ m, s: await withTimeout(localSwarm(m.remote.engine()), PROBE_S * 1000, 'no answer').catch(() => undefined) })));
  // The authority is a manager the swarm still has: a host a raft command moved to worker may still believe it is a
  // manager of the old group (cut off during `raft recover`, then back) and would list the old members.
  const authority = states.filter((x) => x.s?.state === 'active' && x.s.isManager && moved[x.m.machine.name] !== 'worker');
  const engines = authority.map((x) => ({ name: x.m.machine.name, engine: x.m.remote.engine() }));
  if (engines.length === 0) return;
  let ids: Set<string>;
  try {
    ids = new Set((await firstAnswering(engines)).nodes.map((n) => n.ID));
  } catch {
    return; // no manager can list the swarm: nothing can be judged stale now (`raft recover` handles that case)
  }
  const clusterId = authority[0]!.s!.clusterId;
  for (const { m, s } of states) {
    if (!s || s.state === 'inactive' || s.state === 'locked' || !s.nodeId || ids.has(s.nodeId)) continue;
    // Stale: a host a raft command removed from this swarm, or a manager of this swarm whose node is gone. A host of
    // another swarm needs `up --force`; a pending join of a wanted manager is left to finish.
    const removedByUs = moved[m.machine.name] === 'worker';
    if (!removedByUs && (s.state === 'pending' || !s.clusterId || s.clusterId !== clusterId)) continue;
    const remote = m.remote;
    const t0 = Date.now();
    ctx.events.emit({ type: 'step', phase: 'swarm', host: m.machine.name, step: 'clear stale swarm state', status: 'start' });
    const init = await engineInitOf(remote, m.machine.init);
    await stopEngine(remote, init);
    await remote.check(`rm -rf ${SWARM_DIR}`, 'clear stale swarm state');
    await startEngine(remote, init, 'start');
    ctx.events.emit({
      type: 'step', phase: 'swarm', host: m.machine.name, step: 'clear stale swarm state', status: 'ok', ms: Date.now() - t0,
      message: `node ${s.nodeId.slice(0, 12)} is no longer in the swarm: its old Raft state was removed, it joins as a fresh node`,
    });
  }
}

/**
 * After formation: demote managers the inventory no longer wants (one at a time), then apply the swarm settings.
 * Returns a member that is still a manager (formation's lead may just have been demoted) for the steps after.
 */
export async function afterSwarm(ctx: Context, members: Member[], lead: Member): Promise<{ reconcile: ReconcileResult; settings: string[]; lead: Member }> {
  const wanted = new Set(members.filter((m) => m.machine.role === 'manager').map((m) => m.machine.name));
  const reconcile = await reconcileManagers(members, wanted, { events: ctx.events, mode: 'all', signal: ctx.signal });
  const applied = await applySettings(ctx, members, lead);
  return { reconcile, settings: applied.changed, lead: applied.lead };
}

/** The swarm spec the inventory asks for (for `swarm init`). */
export function initSpec(ctx: Context): Record<string, unknown> {
  return specFor(effectiveSettings(ctx.inventory.swarm)) as Record<string, unknown>;
}

/** `swarm update` where the spec differs; keeps the unlock key in the 0600 secrets when autolock is on. */
async function applySettings(ctx: Context, members: Member[], lead: Member): Promise<{ changed: string[]; lead: Member }> {
  const want = specFor(effectiveSettings(ctx.inventory.swarm));
  // The lead of formation may have been demoted just now: use any member that is still a manager.
  const candidates = [lead, ...members.filter((m) => m !== lead && m.machine.role === 'manager')];
  let engine: Docker | undefined;
  let manager = lead;
  for (const c of candidates) {
    if ((await localSwarm(c.remote.engine()).catch(() => undefined))?.isManager) {
      engine = c.remote.engine();
      manager = c;
      break;
    }
  }
  if (!engine) return { changed: [], lead };
  const changed = await updateSwarmSpec(engine, want);
  if (changed.length) ctx.events.emit({ type: 'step', phase: 'swarm', host: lead.machine.name, step: 'swarm settings', status: 'ok', message: `updated ${changed.join(', ')}` });
  const secrets = await ctx.state.readSecrets();
  if (want.EncryptionConfig?.AutoLockManagers) {
    const key = await readUnlockKey(engine);
    if (key && key !== secrets.unlockKey) await ctx.state.writeSecrets({ ...secrets, unlockKey: key });
  } else if (secrets.unlockKey) {
    const { unlockKey: _, ...rest } = secrets;
    await ctx.state.writeSecrets(rest);
  }
  return { changed, lead: manager };
}
