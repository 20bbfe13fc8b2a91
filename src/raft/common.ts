/**
 * What the raft commands share: the machines with their roles in force, sessions and the state lock around a
 * command, step events, and the moves more than one command makes (clearing a host's stale swarm state, forcing a
 * new cluster, unlocking a manager).
 */
import type Docker from 'dockerode';
import { engineInitOf, startEngine, stopEngine } from '../bootstrap/engine-service.js';
import type { Machine } from '../base/machine.js';
import { HostStepError } from '../base/errors.js';
import { errorText } from './nodes.js';
import { withTimeout } from '../run/timeout.js';
import { zoneOf } from './quorum.js';
import { unlockEngine } from './settings.js';
import { pollUntil } from '../run/poll.js';
import type { Member } from '../swarm/members.js';
import { localSwarm } from '../swarm/node-state.js';
import type { Context } from '../cluster/context.js';
import { Sessions } from '../cluster/sessions.js';

/** Seconds to wait for one manager's SSH and engine before counting it as down. */
export const PROBE_S = 5;
export const SWARM_DIR = '/var/lib/docker/swarm';

export async function withSessions<T>(ctx: Context, fn: (s: Sessions) => Promise<T>): Promise<T> {
  const sessions = new Sessions(await ctx.state.knownHosts(), ctx.events);
  try {
    return await fn(sessions);
  } finally {
    sessions.closeAll();
  }
}

export async function withLock<T>(ctx: Context, fn: () => Promise<T>): Promise<T> {
  const release = await ctx.state.lock();
  try {
    return await fn();
  } finally {
    await release();
  }
}

export function step(ctx: Context, host: string, name: string, status: 'start' | 'ok' | 'skip' | 'fail', message?: string): void {
  ctx.events.emit({ type: 'step', phase: 'raft', host, step: name, status, message });
}

/** Runs one step with start/ok/fail events. */
export async function stepDo<T>(ctx: Context, host: string, name: string, fn: () => Promise<T>, ok?: (v: T) => string): Promise<T> {
  const t0 = Date.now();
  step(ctx, host, name, 'start');
  try {
    const v = await fn();
    ctx.events.emit({ type: 'step', phase: 'raft', host, step: name, status: 'ok', message: ok?.(v), ms: Date.now() - t0 });
    return v;
  } catch (err) {
    ctx.events.emit({ type: 'step', phase: 'raft', host, step: name, status: 'fail', message: (err as Error).message, ms: Date.now() - t0 });
    throw err;
  }
}

export function zoneFor(ctx: Context, host: string): string | undefined {
  const h = ctx.inventory.hosts.find((x) => x.name === host);
  return h ? zoneOf(h) : undefined;
}

/**
 * Makes sure a host that was a manager cannot come back with its old Raft state: with SSH, stops its engine, removes
 * /var/lib/docker/swarm, and starts the engine again only if it was running. Returns false when the host did not answer.
 */
export async function clearStaleState(ctx: Context, machine: Machine | undefined, sessions: Sessions, opts: { start?: boolean } = {}): Promise<boolean> {
  if (!machine) return false;
  const conn = await sessions.connect([machine], { phase: 'raft', timeoutS: PROBE_S, signal: ctx.signal });
  const remote = sessions.get(machine.name);
  if (!remote || conn.failed.length) {
    ctx.events.warn(`${machine.name}: not reachable over SSH, so its old swarm state could not be cleared; clear ${SWARM_DIR} before it comes back (\`docker swarm leave --force\`)`, machine.name);
    return false;
  }
  return stepDo(ctx, machine.name, 'clear stale swarm state', async () => {
    const init = await engineInitOf(remote, machine.init);
    const running = await withTimeout(remote.engine().ping(), PROBE_S * 1000, 'no answer').then(() => true, () => false);
    if (running) await stopEngine(remote, init);
    await remote.check(`rm -rf ${SWARM_DIR}`, 'clear stale swarm state');
    if (running || opts.start) await startEngine(remote, init, 'start');
    return true;
  }, () => `${SWARM_DIR} removed${opts.start ? ', engine started' : ''}: it joins again only as a fresh node`);
}

/**
 * `swarm init --force-new-cluster` advertising the member's address. On an autolocked swarm the engine restarts its
 * node with the new-cluster flag and needs the key again ("Swarm is encrypted and needs to be unlocked"): the unlock
 * that follows carries the force-new-cluster start through.
 */
export async function forceNewCluster(engine: Docker, m: Member, unlockKey: string | undefined): Promise<void> {
  try {
    await engine.swarmInit({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: `${m.advertise}:2377`, DataPathAddr: m.advertise, ForceNewCluster: true });
  } catch (err) {
    if (!/needs to be unlocked/i.test(errorText(err))) throw err;
    if (!unlockKey) throw new HostStepError(m.machine.name, 'force new cluster', 'the swarm is autolocked and no unlock key is known', { hint: 'run `docker swarm unlock` on the host with the key you kept, then `raft recover` again' });
    await unlockEngine(engine, unlockKey);
  }
}

export async function unlockOne(ctx: Context, m: Member): Promise<void> {
  const key = (await ctx.state.readSecrets()).unlockKey;
  if (!key) throw new HostStepError(m.machine.name, 'unlock', 'the engine is locked and the state has no unlock key', { hint: 'run `docker swarm unlock` on the host with the key you kept' });
  await stepDo(ctx, m.machine.name, 'unlock', async () => {
    await unlockEngine(m.remote.engine(), key);
    await pollUntil(async () => ((await localSwarm(m.remote.engine())).state === 'active' ? true : undefined), {
      timeoutMs: 60_000, intervalMs: 300, signal: ctx.signal,
      onTimeout: () => new HostStepError(m.machine.name, 'unlock', 'still not active 60 s after unlocking'),
    });
  }, () => 'unlocked');
}
