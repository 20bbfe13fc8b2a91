/** Asks hosts' engines about themselves (swarm state, node, certificate expiry), in parallel and each step bounded. */
import { X509Certificate } from 'node:crypto';
import type Docker from 'dockerode';
import { gatherFacts } from '../bootstrap/facts.js';
import type { Machine } from '../base/machine.js';
import { errorText } from './nodes.js';
import { withTimeout } from '../run/timeout.js';
import { advertiseAddress } from '../swarm/advertise.js';
import type { Member } from '../swarm/members.js';
import type { Context } from '../cluster/context.js';
import type { Sessions } from '../cluster/sessions.js';
import { PROBE_S, SWARM_DIR } from './common.js';

const NODE_CERT = `${SWARM_DIR}/certificates/swarm-node.crt`;

/** What one host's engine said about itself in a probe. */
export interface Probe {
  machine: Machine;
  member?: Member;
  /** `active`, `locked`, `inactive`, `pending`, `error`, or why it could not be asked. */
  engine: string;
  isManager: boolean;
  nodeId?: string;
  clusterId?: string;
  /** Managers the engine believes the Raft group has (`docker info` Swarm.Managers). */
  managers?: number;
  certExpires?: string;
  message?: string;
}

export async function memberOf(ctx: Context, m: Machine, sessions: Sessions): Promise<Member | undefined> {
  const remote = sessions.get(m.name);
  if (!remote) return undefined;
  let addresses: string[] = [];
  if (ctx.inventory.swarm.advertise.kind === 'cidr') addresses = (await gatherFacts(remote)).addresses;
  return { machine: m, remote, advertise: advertiseAddress(m, ctx.inventory.swarm.advertise, addresses) };
}

/** Connects to `machines` in parallel and asks each engine about itself, every step bounded by PROBE_S. */
export async function probeHosts(ctx: Context, machines: Machine[], sessions: Sessions, timeoutS = PROBE_S): Promise<Probe[]> {
  const conn = await sessions.connect(machines, { phase: 'raft', timeoutS, signal: ctx.signal });
  const failed = new Map(conn.failed.map((f) => [f.item.name, f.error.message]));
  return Promise.all(
    machines.map(async (machine): Promise<Probe> => {
      if (failed.has(machine.name) || !sessions.get(machine.name)) {
        return { machine, engine: 'no ssh', isManager: false, message: failed.get(machine.name) ?? 'not connected' };
      }
      const remote = sessions.get(machine.name)!;
      const member = await memberOf(ctx, machine, sessions).catch(() => undefined);
      const certP = remote
        .run(`cat ${NODE_CERT} 2>/dev/null`, { timeoutMs: timeoutS * 1000 })
        .then((r) => (r.code === 0 && r.stdout.includes('BEGIN CERTIFICATE') ? new Date(new X509Certificate(r.stdout).validTo).toISOString() : undefined))
        .catch(() => undefined);
      try {
        const info = (await withTimeout(remote.engine().info(), timeoutS * 1000, `the engine did not answer in ${timeoutS} s`)) as {
          Swarm?: { LocalNodeState?: string; NodeID?: string; ControlAvailable?: boolean; Cluster?: { ID?: string }; Managers?: number; Error?: string };
        };
        const s = info.Swarm ?? {};
        return {
          machine,
          member,
          engine: s.LocalNodeState ?? 'inactive',
          isManager: Boolean(s.ControlAvailable),
          nodeId: s.NodeID || undefined,
          clusterId: s.Cluster?.ID || undefined,
          managers: s.Managers || undefined,
          certExpires: await certP,
          message: s.Error || undefined,
        };
      } catch (err) {
        const msg = errorText(err);
        return { machine, member, engine: 'down', isManager: false, certExpires: await certP, message: /ECONNREFUSED|ENOENT|connect|socket/i.test(msg) ? 'engine not running' : msg };
      }
    }),
  );
}

export function enginesOf(probes: Probe[]): { name: string; engine: Docker }[] {
  return probes.filter((p) => p.isManager && p.member).map((p) => ({ name: p.machine.name, engine: p.member!.remote.engine() }));
}
