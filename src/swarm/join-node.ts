/** Joins one host to the swarm through a chosen manager; checks before acting and after a timeout. */
import { HostStepError } from '../base/errors.js';
import { pollUntil } from '../run/poll.js';
import { type Member, managerEndpoint } from './members.js';
import { localSwarm } from './node-state.js';
import { checkTcpReachable } from './port-check.js';

export interface JoinOutcome {
  nodeId: string;
  /** Set when nothing was done (already a member). */
  skipped?: string;
  /** Where the time went (ms): checks before the join, the engine's join call, waiting for the node to be active. */
  timing?: { prepMs: number; joinMs: number; activeMs: number };
  /** Set when the engine's join call timed out and the join finished in the background (an overload signal). */
  timedOut?: boolean;
}

/** How long a join may keep going in the background after the engine's own 20 s wait gave up. */
const JOIN_SETTLE_MS = 90_000;

/**
 * Makes `m` a member through manager `via`. A node already in this swarm is left alone; a node in another swarm is an
 * error unless `force` (then it leaves first, since re-joining a node that still holds old state duplicates it);
 * a join that timed out is checked, not retried blindly, since the engine keeps trying in the background.
 */
export async function joinNode(
  m: Member,
  via: Member,
  token: string,
  opts: { clusterNodeIds: ReadonlySet<string>; force: boolean; step: string },
): Promise<JoinOutcome> {
  const t0 = performance.now();
  const skip = await prepareJoin(m, via, opts);
  if (skip) return skip;
  return joinPrepared(m, via, token, opts.step, performance.now() - t0);
}

/**
 * The checks before a join, which cost the managers nothing (so a pacer can run them outside a join slot): returns
 * the outcome when there is nothing to join, else leaves a foreign swarm (with `force`) and checks that 2377/tcp of
 * `via` answers from the host.
 */
export async function prepareJoin(m: Member, via: Member, opts: { clusterNodeIds: ReadonlySet<string>; force: boolean; step: string }): Promise<JoinOutcome | undefined> {
  const engine = m.remote.engine();
  const before = await localSwarm(engine);
  if (before.state !== 'inactive') {
    if (before.nodeId && opts.clusterNodeIds.has(before.nodeId)) return { nodeId: before.nodeId, skipped: 'already a member of this swarm' };
    if (before.state === 'pending') {
      const nodeId = await waitActive(m, opts.step);
      if (opts.clusterNodeIds.size === 0 || opts.clusterNodeIds.has(nodeId)) return { nodeId, skipped: 'an earlier join finished in the background' };
    }
    if (!opts.force && before.state === 'error') {
      throw new HostStepError(m.machine.name, opts.step, `the engine's swarm node is in state error${before.error ? `: ${before.error}` : ''}`, {
        hint: 'run again with --force to make it leave and join afresh (see `swarmform raft status`)',
      });
    }
    if (!opts.force) {
      throw new HostStepError(m.machine.name, opts.step, `the host is already part of another swarm (node ${before.nodeId?.slice(0, 12) ?? '?'}, state ${before.state})`, {
        hint: 'run again with --force to make it leave that swarm first',
      });
    }
    await engine.swarmLeave({ force: true });
  }
  await checkTcpReachable(m.remote, { name: via.machine.name, address: via.advertise }, 2377, 'swarm management', opts.step);
  return undefined;
}

/** The join itself, after {@link prepareJoin}: the engine's join call through `via`, then the wait until active. */
export async function joinPrepared(m: Member, via: Member, token: string, step: string, prepMs = 0): Promise<JoinOutcome> {
  const engine = m.remote.engine();
  const opts = { step };
  const t1 = performance.now();
  let timedOut = false;
  try {
    await engine.swarmJoin({
      ListenAddr: '0.0.0.0:2377',
      AdvertiseAddr: `${m.advertise}:2377`,
      DataPathAddr: m.advertise,
      RemoteAddrs: [managerEndpoint(via)],
      JoinToken: token,
    });
  } catch (err) {
    const msg = (err as { json?: { message?: string } }).json?.message ?? (err as Error).message;
    if (!/Timeout was reached/i.test(msg)) throw new HostStepError(m.machine.name, opts.step, `join via ${via.machine.name} failed: ${msg}`, { cause: err });
    // The engine gave up waiting but keeps trying: watch it instead of joining again (which would duplicate the node).
    timedOut = true;
  }
  const t2 = performance.now();
  const nodeId = await waitActive(m, opts.step);
  const t3 = performance.now();
  return { nodeId, timedOut, timing: { prepMs: Math.round(prepMs), joinMs: Math.round(t2 - t1), activeMs: Math.round(t3 - t2) } };
}

async function waitActive(m: Member, step: string): Promise<string> {
  // pollUntil keeps going through probe errors (an engine busy joining may not answer), so a swarm error state is
  // returned as a value and thrown here, at once, rather than waited out.
  const r = await pollUntil<{ nodeId: string } | { error: string }>(
    async () => {
      const s = await localSwarm(m.remote.engine());
      if (s.state === 'active' && s.nodeId) return { nodeId: s.nodeId };
      if (s.state === 'error') return { error: s.error ?? 'unknown' };
      return undefined;
    },
    {
      timeoutMs: JOIN_SETTLE_MS,
      intervalMs: 500,
      onTimeout: (last) =>
        new HostStepError(m.machine.name, step, `the node did not become active within ${JOIN_SETTLE_MS / 1000} s${last instanceof Error ? `: ${last.message}` : ''}`, {
          hint: 'check that 2377/tcp and 7946/tcp+udp are open between the host and the managers, and the MTU of the path',
        }),
    },
  );
  if ('error' in r) throw new HostStepError(m.machine.name, step, `the engine reports a swarm error: ${r.error}`);
  return r.nodeId;
}
