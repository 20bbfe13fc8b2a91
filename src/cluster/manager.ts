/**
 * A manager to talk to for operational commands (service, stack, node, network, raft, status): the leader when it
 * answers, else any reachable manager. Managers are probed in parallel with bounded timeouts, so a few dead managers
 * cost one timeout, not one each.
 */
import type Docker from 'dockerode';
import type { Machine } from '../base/machine.js';
import type { Remote } from '../remote/remote.js';
import { localSwarm } from '../swarm/node-state.js';
import type { Context } from './context.js';
import { SwarmformError } from '../base/errors.js';
import { resolveMembers } from './machines.js';
import { Sessions } from './sessions.js';
import { withTimeout } from '../run/timeout.js';

/** What a command gets: the chosen manager's engine, its machine, and every probe's outcome. */
export interface ManagerHandle {
  machine: Machine;
  remote: Remote;
  engine: Docker;
  /** True when this manager is the Raft leader. */
  isLeader: boolean;
  /** All machines of the cluster (providers' discovery plus state), with the roles in force. */
  machines: Machine[];
  /** The open connections of this command (reuse them; closed when the callback returns). */
  sessions: Sessions;
  /** Managers that did not answer as active managers, with why. */
  unreachable: { host: string; message: string }[];
}

/** Seconds to wait for one manager's SSH and engine before moving on. */
const PROBE_TIMEOUT_S = 5;

/**
 * Connects to the cluster's managers in parallel, picks the leader (else the first active manager in inventory
 * order), runs `fn`, and closes every connection. Throws a SwarmformError naming each manager's problem when none
 * answers as an active manager.
 */
export async function withManager<T>(ctx: Context, fn: (h: ManagerHandle) => Promise<T>, opts: { timeoutS?: number } = {}): Promise<T> {
  const machines = await resolveMembers(ctx);
  if (machines.length === 0) {
    throw new SwarmformError(`cluster ${ctx.inventory.cluster} has no machines`, { hint: 'run `swarmform up` first' });
  }
  const managers = machines.filter((m) => m.role === 'manager');
  const sessions = new Sessions(await ctx.state.knownHosts(), ctx.events);
  try {
    const timeoutS = opts.timeoutS ?? PROBE_TIMEOUT_S;
    const conn = await sessions.connect(managers, { phase: 'status', timeoutS, signal: ctx.signal });
    const unreachable: { host: string; message: string }[] = conn.failed.map((f) => ({ host: f.item.name, message: named(f.item.name, f.error.message) }));
    const hints = new Set(conn.failed.map((f) => (f.error as SwarmformError).hint).filter((h): h is string => Boolean(h)));
    const probes = await Promise.all(
      managers.map(async (m) => {
        const remote = sessions.get(m.name);
        if (!remote) return undefined;
        try {
          const engine = remote.engine();
          const s = await withTimeout(localSwarm(engine), timeoutS * 1000, `${m.name}: engine did not answer in ${timeoutS} s`);
          if (!s.isManager) {
            unreachable.push({ host: m.name, message: `${m.name}: not an active manager (swarm state ${s.state}${s.error ? `: ${s.error}` : ''})` });
            return undefined;
          }
          const self = (await withTimeout(engine.getNode(s.nodeId!).inspect(), timeoutS * 1000, `${m.name}: engine did not answer in ${timeoutS} s`)) as {
            ManagerStatus?: { Leader?: boolean };
          };
          return { machine: m, remote, engine, isLeader: Boolean(self.ManagerStatus?.Leader) };
        } catch (err) {
          unreachable.push({ host: m.name, message: named(m.name, (err as Error).message) });
          return undefined;
        }
      }),
    );
    const answering = probes.filter((p): p is NonNullable<typeof p> => p !== undefined);
    const chosen = answering.find((p) => p.isLeader) ?? answering[0];
    if (!chosen) {
      throw new SwarmformError(`no manager of cluster ${ctx.inventory.cluster} answered:\n  ${unreachable.map((u) => u.message).join('\n  ')}`, {
        hint: [...hints, 'check `swarmform raft status`, or run `swarmform up` to (re)form the cluster'].join('; '),
      });
    }
    return await fn({ ...chosen, machines, sessions, unreachable });
  } finally {
    sessions.closeAll();
  }
}

/** Prefixes the host name unless the message already starts with it. */
function named(host: string, message: string): string {
  return message.startsWith(`${host}:`) ? message : `${host}: ${message}`;
}

