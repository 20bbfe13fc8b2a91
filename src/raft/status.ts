/** `raft status`: the managers' health as the swarm and each host see it, quorum and tolerance, settings, certificates. */
import { firstAnswering, raftMembers } from './nodes.js';
import { withTimeout } from '../run/timeout.js';
import { planQuorum, quorumOf } from './quorum.js';
import { settingsInForce, type SettingsInForce } from '../inventory/swarm-settings.js';
import type { Context } from '../cluster/context.js';
import { SwarmformError } from '../base/errors.js';
import { PROBE_S, withSessions, zoneFor } from './common.js';
import { resolveMembers } from '../cluster/machines.js';
import { enginesOf, probeHosts } from './probe.js';

export interface ManagerHealth {
  host: string;
  nodeId?: string;
  /** Raft address (host:2377) as the swarm knows it. */
  address?: string;
  /** The swarm's view: leader, reachable, unreachable; `unknown` when no manager could be asked. */
  raft: 'leader' | 'reachable' | 'unreachable' | 'unknown' | 'not a manager';
  /** The host's own view of its engine: active, locked, down (engine not running), no ssh, ... */
  engine: string;
  message?: string;
  /** When the manager's node certificate expires (ISO time). */
  certExpires?: string;
}

export interface RaftStatus {
  cluster: string;
  swarmId?: string;
  /** Manager whose engine answered for the swarm. */
  readFrom?: string;
  health: 'healthy' | 'degraded' | 'lost';
  leader?: string;
  managers: ManagerHealth[];
  count: number;
  quorum: number;
  reachable: number;
  /** How many more managers may be lost right now while the swarm still takes changes. */
  tolerates: number;
  settings?: SettingsInForce;
  autolock?: boolean;
  /** Managers whose engine is locked (autolock) and waits for `raft unlock`. */
  locked: string[];
  warnings: string[];
  ms: number;
}

/** Exit codes of `raft status`: 0 healthy, 1 degraded (a minority down), 4 lost (no quorum). */
export const STATUS_EXIT = { healthy: 0, degraded: 1, lost: 4 } as const;

export async function raftStatus(ctx: Context): Promise<RaftStatus> {
  const t0 = Date.now();
  const machines = await resolveMembers(ctx);
  if (machines.length === 0) throw new SwarmformError(`cluster ${ctx.inventory.cluster} has no machines`, { hint: 'run `swarmform up` first' });
  return withSessions(ctx, async (sessions) => {
    let managerMachines = machines.filter((m) => m.role === 'manager');
    const probes = await probeHosts(ctx, managerMachines, sessions);
    const byHost = new Map(probes.map((p) => [p.machine.name, p]));
    const warnings: string[] = [];
    let listed: Awaited<ReturnType<typeof firstAnswering>> | undefined;
    let listError = '';
    try {
      listed = await firstAnswering(enginesOf(probes), PROBE_S * 1000);
    } catch (err) {
      listError = (err as Error).message;
    }
    // Managers the swarm has that the inventory does not name as managers (promoted by hand, or moved): probe them too.
    if (listed) {
      const extra = raftMembers(listed.nodes).map((m) => m.host).filter((h) => !byHost.has(h));
      const extraMachines = machines.filter((m) => extra.includes(m.name));
      for (const p of await probeHosts(ctx, extraMachines, sessions)) byHost.set(p.machine.name, p);
      managerMachines = [...managerMachines, ...extraMachines];
    }
    const managers: ManagerHealth[] = [];
    let swarmId: string | undefined;
    let settings: SettingsInForce | undefined;
    if (listed) {
      const members = raftMembers(listed.nodes);
      const memberHosts = new Set(members.map((m) => m.host));
      for (const m of members) {
        const p = byHost.get(m.host);
        managers.push({
          host: m.host,
          nodeId: m.nodeId,
          address: m.addr,
          raft: m.leader ? 'leader' : m.reachable ? 'reachable' : 'unreachable',
          engine: p?.engine ?? 'unknown host',
          message: p?.message,
          certExpires: p?.certExpires,
        });
      }
      for (const mm of managerMachines.filter((x) => !memberHosts.has(x.name))) {
        const p = byHost.get(mm.name)!;
        managers.push({ host: mm.name, raft: 'not a manager', engine: p.engine, message: p.message, certExpires: p.certExpires });
        warnings.push(`${mm.name} should be a manager but is not one of the swarm's managers (run \`up\`, or \`raft replace\`)`);
      }
      try {
        const sw = (await withTimeout(listed.engine.swarmInspect(), PROBE_S * 1000, 'no answer')) as { ID: string; Spec: Record<string, unknown> };
        swarmId = sw.ID;
        settings = settingsInForce(sw.Spec);
      } catch {
        // settings are extra: the health above is what matters
      }
    } else {
      for (const mm of managerMachines) {
        const p = byHost.get(mm.name)!;
        managers.push({ host: mm.name, nodeId: p.nodeId, raft: 'unknown', engine: p.engine, message: p.message, certExpires: p.certExpires });
      }
      swarmId = probes.find((p) => p.clusterId)?.clusterId;
    }
    managers.sort((a, b) => a.host.localeCompare(b.host, undefined, { numeric: true }));
    const inGroup = managers.filter((m) => m.raft !== 'not a manager');
    const count = listed ? inGroup.length : Math.max(inGroup.length, ...probes.map((p) => p.managers ?? 0));
    const quorum = quorumOf(count);
    const reachable = inGroup.filter((m) => m.raft === 'leader' || m.raft === 'reachable').length;
    const leader = inGroup.find((m) => m.raft === 'leader')?.host;
    const health: RaftStatus['health'] = !listed || !leader || reachable < quorum ? 'lost' : reachable < count ? 'degraded' : 'healthy';
    if (!listed) warnings.push(`no manager could answer for the swarm (${listError.split('\n').slice(1).map((l) => l.trim()).join('; ') || listError}): the quorum is lost; see \`swarmform raft recover --dry-run\``);
    const zones = planQuorum(inGroup.map((m) => ({ name: m.host, zone: zoneFor(ctx, m.host) }))).warnings.filter((w) => /zone/.test(w));
    warnings.push(...zones);
    const soon = managers.filter((m) => m.certExpires && Date.parse(m.certExpires) - Date.now() < 7 * 24 * 3600_000);
    for (const m of soon) warnings.push(`${m.host}: node certificate expires ${m.certExpires} (in less than 7 days)`);
    return {
      cluster: ctx.inventory.cluster,
      swarmId,
      readFrom: listed?.name,
      health,
      leader,
      managers,
      count,
      quorum,
      reachable,
      tolerates: Math.max(0, reachable - quorum),
      settings,
      autolock: settings?.autolock,
      locked: managers.filter((m) => m.engine === 'locked').map((m) => m.host),
      warnings,
      ms: Date.now() - t0,
    };
  });
}
