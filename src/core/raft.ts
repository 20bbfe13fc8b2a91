/**
 * `raft`: the managers' Raft group as an operator sees it. status (health, tolerance, settings, certificates),
 * replace (a dead manager), recover (a lost majority), backup and restore (the swarm state), unlock (autolock), and
 * the hooks `up` calls around swarm formation (unlock, manager reconcile, settings).
 * Every command connects to the managers in parallel with bounded timeouts and talks to the Engine API over SSH.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type Docker from 'dockerode';
import { engineInitOf, startEngine, stopEngine } from '../bootstrap/engine-service.js';
import { promoteMessage, promoteWorker } from '../raft/promote.js';
import { gatherFacts } from '../bootstrap/facts.js';
import type { Role } from '../inventory/types.js';
import type { Machine } from '../base/machine.js';
import { readArchive, sha256, writeArchive, ARCHIVE_FORMAT, type BackupManifest } from '../raft/archive.js';
import {
  confirmGroup,
  errorText,
  firstAnswering,
  hostOf,
  raftMembers,
  removeNode,
  setLabel,
  setRole,
  type SwarmNode,
} from '../raft/nodes.js';
import { withTimeout } from '../run/timeout.js';
import { planQuorum, quorumOf, zoneOf } from '../raft/quorum.js';
import { readdressRestored, splitAddr } from '../raft/readdress.js';
import { reconcileManagers, type ReconcileResult } from '../raft/reconcile.js';
import { effectiveRoles, readRaftFile, recordRoles } from '../cluster/roles.js';
import { effectiveSettings, settingsInForce, specFor, type SettingsInForce } from '../inventory/swarm-settings.js';
import { readUnlockKey, unlockEngine, updateSwarmSpec } from '../raft/settings.js';
import { pollUntil } from '../run/poll.js';
import { advertiseAddress } from '../swarm/advertise.js';
import { joinNode } from '../swarm/join-node.js';
import { managerEndpoint, type Member } from '../swarm/members.js';
import { localSwarm } from '../swarm/node-state.js';
import { HOST_LABEL } from '../swarm/node-settings.js';
import type { Context } from '../cluster/context.js';
import { HostStepError, SwarmformError, UsageError } from '../base/errors.js';
import { knownMachines } from '../cluster/machines.js';
import { Sessions } from '../cluster/sessions.js';

/** Seconds to wait for one manager's SSH and engine before counting it as down. */
const PROBE_S = 5;
/** How long `raft recover` waits for workers to reconnect to the rebuilt swarm before promoting some. */
const RECONNECT_WAIT_MS = 120_000;
const SWARM_DIR = '/var/lib/docker/swarm';
const NODE_CERT = `${SWARM_DIR}/certificates/swarm-node.crt`;

// ---------------------------------------------------------------------------------------------------------------
// Shared plumbing

/** The cluster's machines with the roles in force (inventory, with `raft replace`/`recover` moves applied). */
async function machinesWithRoles(ctx: Context): Promise<Machine[]> {
  const roles = await effectiveRoles(ctx.state, ctx.inventory.hosts);
  const order = new Map(ctx.inventory.hosts.map((h, i) => [h.name, i]));
  return (await knownMachines(ctx))
    .map((m) => ({ ...m, role: roles.get(m.name) ?? m.role }))
    .sort((a, b) => (order.get(a.name) ?? 1e9) - (order.get(b.name) ?? 1e9));
}

/** What one host's engine said about itself in a probe. */
interface Probe {
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

async function memberOf(ctx: Context, m: Machine, sessions: Sessions): Promise<Member | undefined> {
  const remote = sessions.get(m.name);
  if (!remote) return undefined;
  let addresses: string[] = [];
  if (ctx.inventory.swarm.advertise.kind === 'cidr') addresses = (await gatherFacts(remote)).addresses;
  return { machine: m, remote, advertise: advertiseAddress(m, ctx.inventory.swarm.advertise, addresses) };
}

/** Connects to `machines` in parallel and asks each engine about itself, every step bounded by PROBE_S. */
async function probeHosts(ctx: Context, machines: Machine[], sessions: Sessions, timeoutS = PROBE_S): Promise<Probe[]> {
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

function enginesOf(probes: Probe[]): { name: string; engine: Docker }[] {
  return probes.filter((p) => p.isManager && p.member).map((p) => ({ name: p.machine.name, engine: p.member!.remote.engine() }));
}

async function withSessions<T>(ctx: Context, fn: (s: Sessions) => Promise<T>): Promise<T> {
  const sessions = new Sessions(await ctx.state.knownHosts(), ctx.events);
  try {
    return await fn(sessions);
  } finally {
    sessions.closeAll();
  }
}

async function withLock<T>(ctx: Context, fn: () => Promise<T>): Promise<T> {
  const release = await ctx.state.lock();
  try {
    return await fn();
  } finally {
    await release();
  }
}

function step(ctx: Context, host: string, name: string, status: 'start' | 'ok' | 'skip' | 'fail', message?: string): void {
  ctx.events.emit({ type: 'step', phase: 'raft', host, step: name, status, message });
}

/** Runs one step with start/ok/fail events. */
async function stepDo<T>(ctx: Context, host: string, name: string, fn: () => Promise<T>, ok?: (v: T) => string): Promise<T> {
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

// ---------------------------------------------------------------------------------------------------------------
// status

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
  const machines = await machinesWithRoles(ctx);
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

function zoneFor(ctx: Context, host: string): string | undefined {
  const h = ctx.inventory.hosts.find((x) => x.name === host);
  return h ? zoneOf(h) : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// replace

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
    const machines = await machinesWithRoles(ctx);
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

/**
 * Makes sure a host that was a manager cannot come back with its old Raft state: with SSH, stops its engine, removes
 * /var/lib/docker/swarm, and starts the engine again only if it was running. Returns false when the host did not answer.
 */
async function clearStaleState(ctx: Context, machine: Machine | undefined, sessions: Sessions, opts: { start?: boolean } = {}): Promise<boolean> {
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

// ---------------------------------------------------------------------------------------------------------------
// recover

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
    const machines = await machinesWithRoles(ctx);
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
      const nodes = await engineNodes(engine);
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
            const members = raftMembers(await engineNodes(engine));
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
 * `swarm init --force-new-cluster` advertising the member's address. On an autolocked swarm the engine restarts its
 * node with the new-cluster flag and needs the key again ("Swarm is encrypted and needs to be unlocked"): the unlock
 * that follows carries the force-new-cluster start through.
 */
async function forceNewCluster(engine: Docker, m: Member, unlockKey: string | undefined): Promise<void> {
  try {
    await engine.swarmInit({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: `${m.advertise}:2377`, DataPathAddr: m.advertise, ForceNewCluster: true });
  } catch (err) {
    if (!/needs to be unlocked/i.test(errorText(err))) throw err;
    if (!unlockKey) throw new HostStepError(m.machine.name, 'force new cluster', 'the swarm is autolocked and no unlock key is known', { hint: 'run `docker swarm unlock` on the host with the key you kept, then `raft recover` again' });
    await unlockEngine(engine, unlockKey);
  }
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
      const candidates = (await engineNodes(engine)).filter((n) => !n.ManagerStatus && n.Spec.Role !== 'manager' && n.Spec.Availability === 'active' && known(n));
      last = candidates.filter((n) => n.Status?.State === 'ready');
      return last.length >= need || last.length === candidates.length ? true : undefined;
    }, { timeoutMs: RECONNECT_WAIT_MS, intervalMs: 1000, signal: ctx.signal, onTimeout: () => new Error('timed out') });
  } catch (err) {
    if (ctx.signal?.aborted) throw err;
  }
  step(ctx, survivor, 'wait for workers', 'ok', `${last.length} worker(s) Ready on the rebuilt swarm after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return last;
}

async function selfNode(engine: Docker): Promise<SwarmNode> {
  const info = (await engine.info()) as { Swarm?: { NodeID?: string } };
  return (await engine.getNode(info.Swarm!.NodeID!).inspect()) as SwarmNode;
}

async function engineNodes(engine: Docker): Promise<SwarmNode[]> {
  return (await engine.listNodes()) as SwarmNode[];
}

// ---------------------------------------------------------------------------------------------------------------
// unlock

async function unlockOne(ctx: Context, m: Member): Promise<void> {
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

export interface UnlockResult {
  unlocked: string[];
  alreadyActive: string[];
  failed: { host: string; message: string }[];
}

/** Unlocks every locked manager with the key kept in the state. */
export async function raftUnlock(ctx: Context): Promise<UnlockResult> {
  const machines = await machinesWithRoles(ctx);
  return withSessions(ctx, async (sessions) => {
    const probes = await probeHosts(ctx, machines.filter((m) => m.role === 'manager'), sessions);
    const out: UnlockResult = { unlocked: [], alreadyActive: [], failed: [] };
    for (const p of probes) {
      if (p.engine !== 'locked') {
        if (p.engine === 'active') out.alreadyActive.push(p.machine.name);
        else out.failed.push({ host: p.machine.name, message: `engine ${p.engine}${p.message ? `: ${p.message}` : ''}` });
        continue;
      }
      try {
        await unlockOne(ctx, p.member!);
        out.unlocked.push(p.machine.name);
      } catch (err) {
        out.failed.push({ host: p.machine.name, message: (err as Error).message });
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// backup and restore

export interface BackupResult {
  archive: string;
  from: string;
  bytes: number;
  sha256: string;
  autolock: boolean;
  contents: BackupManifest['contents'];
  /** Seconds the source manager's engine was stopped. */
  engineDownS: number;
}

/** Copies the swarm state from a manager that is not the leader (engine stopped meanwhile) into a local archive. */
export async function raftBackup(ctx: Context, opts: { from?: string; out?: string } = {}): Promise<BackupResult> {
  return withLock(ctx, async () => {
    const machines = await machinesWithRoles(ctx);
    return withSessions(ctx, async (sessions) => {
      const probes = await probeHosts(ctx, machines.filter((m) => m.role === 'manager' || m.name === opts.from), sessions);
      const listed = await firstAnswering(enginesOf(probes));
      const members = raftMembers(listed.nodes);
      const reachable = members.filter((m) => m.reachable || m.leader);
      let source = opts.from ? members.find((m) => m.host === opts.from) : reachable.find((m) => !m.leader);
      if (opts.from && !source) throw new UsageError(`--from ${opts.from}: not a manager of the swarm`);
      if (!source && members.length === 1) source = members[0];
      if (!source) throw new SwarmformError('no reachable manager other than the leader to take the backup from');
      if (members.length > 1 && reachable.length - 1 < quorumOf(members.length)) {
        throw new SwarmformError(`stopping ${source.host}'s engine would leave ${reachable.length - 1} of ${members.length} managers: below the quorum`, {
          hint: 'replace the dead managers first (`raft replace`)',
        });
      }
      if (members.length === 1) ctx.events.warn(`${source.host} is the only manager: the control plane is down while its engine is stopped`);
      const probe = probes.find((p) => p.machine.name === source!.host && p.member);
      if (!probe) throw new HostStepError(source.host, 'backup', 'not reachable over SSH');
      const m = probe.member!;
      const engine = listed.engine;
      const [sw, services, networks, secrets, configs] = await Promise.all([
        engine.swarmInspect() as Promise<{ ID: string; Spec: Record<string, any> }>,
        engine.listServices() as Promise<{ Spec: { Name: string } }[]>,
        engine.listNetworks({ filters: JSON.stringify({ scope: ['swarm'] }) } as object) as Promise<{ Name: string }[]>,
        engine.listSecrets() as Promise<{ Spec: { Name: string } }[]>,
        engine.listConfigs() as Promise<{ Spec: { Name: string } }[]>,
      ]);
      const autolock = Boolean(sw.Spec.EncryptionConfig?.AutoLockManagers);
      const unlockKey = autolock ? ((await readUnlockKey(engine)) ?? (await ctx.state.readSecrets()).unlockKey) : undefined;
      if (autolock && !unlockKey) throw new SwarmformError('the swarm is autolocked but its unlock key could not be read');
      const version = ((await m.remote.engine().version()) as { Version?: string }).Version ?? '';
      const init = await engineInitOf(m.remote, m.machine.init);
      const t0 = Date.now();
      let b64 = '';
      let engineDownS = 0;
      await stepDo(ctx, m.machine.name, 'stop engine', () => stopEngine(m.remote, init), () => 'engine stopped for a consistent copy');
      try {
        b64 = await stepDo(ctx, m.machine.name, 'archive swarm state', () =>
          m.remote.check(`f=$(mktemp) && tar -czf "$f" -C /var/lib/docker swarm && base64 -w0 "$f"; rc=$?; rm -f "$f"; exit $rc`, 'archive swarm state', { timeoutMs: 10 * 60_000 }),
        );
      } finally {
        await stepDo(ctx, m.machine.name, 'start engine', () => startEngine(m.remote, init, 'start'), (v) => `engine ${v} started`);
        engineDownS = (Date.now() - t0) / 1000;
      }
      if (autolock) {
        const st = await pollUntil(async () => {
          const s = await localSwarm(m.remote.engine());
          return s.state === 'locked' || s.state === 'active' ? s.state : undefined;
        }, { timeoutMs: 60_000, intervalMs: 300, onTimeout: () => new HostStepError(m.machine.name, 'unlock', 'engine state did not settle') });
        if (st === 'locked') {
          await stepDo(ctx, m.machine.name, 'unlock', () => unlockEngine(m.remote.engine(), unlockKey!), () => 'unlocked');
        }
      }
      await stepDo(ctx, m.machine.name, 'confirm rejoined', () =>
        confirmGroup(enginesOf(probes).filter((e) => e.name !== m.machine.name).concat([{ name: m.machine.name, engine: m.remote.engine() }]), {
          managers: new Set(members.map((x) => x.host)), host: m.machine.name, step: 'confirm rejoined',
        }, 120_000, ctx.signal), () => `reachable again; ${members.length} managers with a leader`);
      const data = Buffer.from(b64.trim(), 'base64');
      if (data.length < 100) throw new HostStepError(m.machine.name, 'archive swarm state', `the archive is only ${data.length} bytes`);
      const manifest: BackupManifest = {
        format: ARCHIVE_FORMAT,
        cluster: ctx.inventory.cluster,
        swarmId: sw.ID,
        source: { host: m.machine.name, nodeId: source.nodeId, engineVersion: version, addr: source.addr || undefined },
        createdAt: new Date().toISOString(),
        sha256: sha256(data),
        bytes: data.length,
        autolock,
        contents: {
          services: services.map((s) => s.Spec.Name).sort(),
          networks: networks.map((n) => n.Name).filter((n) => n !== 'ingress').sort(),
          secrets: secrets.map((s) => s.Spec.Name).sort(),
          configs: configs.map((c) => c.Spec.Name).sort(),
          managers: members.length,
          nodes: listed.nodes.length,
        },
      };
      const archive = resolve(opts.out ?? `${ctx.inventory.cluster}-raft-${manifest.createdAt.replace(/[:.]/g, '-')}.tar`);
      await writeArchive(archive, { manifest, swarmTarGz: data, unlockKey });
      return { archive, from: m.machine.name, bytes: data.length, sha256: manifest.sha256, autolock, contents: manifest.contents, engineDownS };
    });
  });
}

export interface RestoreResult {
  archive: string;
  to: string;
  swarmId: string;
  fromCluster: string;
  removedNodes: number;
  services: string[];
  /** Set when the restored state carried another host's Raft address and the target was moved to its own. */
  readdressed?: { from: string; to: string; via: string };
}

/** Builds a new one-manager swarm on a fresh host from a backup archive; `up` then joins the rest. */
export async function raftRestore(ctx: Context, archive: string, opts: { to: string; force?: boolean }): Promise<RestoreResult> {
  const path = resolve(archive);
  if (!existsSync(path)) throw new UsageError(`archive not found: ${path}`);
  const backup = await readArchive(path);
  if (backup.manifest.autolock) {
    // Measured on Engine 20.10: a restored autolocked state starts locked; `swarm init --force-new-cluster` refuses a
    // locked node ("not a swarm manager"), and unlocking first waits for a leader that the old peers cannot provide,
    // holding the engine's swarm lock for good. So refuse before touching the host.
    throw new UsageError(`${path} is a backup of an autolocked swarm: the engine cannot rebuild a cluster from it on a new host`, {
      hint: 'turn autolock off (swarm.autolock: false, then `up`), take a new `raft backup`, and restore that; turn autolock on again afterwards',
    });
  }
  return withLock(ctx, async () => {
    const machines = await machinesWithRoles(ctx);
    const machine = machines.find((m) => m.name === opts.to);
    if (!machine) throw new UsageError(`--to ${opts.to}: no such host in cluster ${ctx.inventory.cluster}`, { hint: 'create it first with `swarmform bootstrap`' });
    return withSessions(ctx, async (sessions) => {
      const [probe] = await probeHosts(ctx, [machine], sessions, 30);
      if (!probe?.member) throw new HostStepError(opts.to, 'restore', `not reachable over SSH${probe?.message ? `: ${probe.message}` : ''}`);
      if (probe.engine !== 'inactive' && !opts.force) {
        throw new HostStepError(opts.to, 'restore', `the host is in swarm state "${probe.engine}": restore needs a fresh host`, { hint: 'pass --force to replace its swarm state' });
      }
      if (probe.engine === 'down' || probe.engine === 'no ssh') throw new HostStepError(opts.to, 'restore', `the engine does not answer (${probe.message ?? probe.engine})`, { hint: 'run `swarmform bootstrap` first' });
      const m = probe.member;
      const remote = m.remote;
      // A state restored onto another address keeps the old one in Raft (see readdress.ts); moving it needs a helper
      // host, looked for before the target is touched when the archive says where the state came from.
      const stale = backup.manifest.source.addr;
      let helper = stale && stale !== managerEndpoint(m) ? await pickHelper(ctx, machines, m, stale, sessions) : undefined;
      const init = await engineInitOf(remote, machine.init);
      const tmp = '/var/lib/docker/.swarmform-restore.tar.gz';
      await stepDo(ctx, opts.to, 'upload swarm state', async () => {
        await remote.putContent(backup.swarmTarGz, tmp, 0o600);
        const sum = (await remote.check(`sha256sum ${tmp}`, 'upload swarm state')).split(/\s+/)[0];
        if (sum !== backup.manifest.sha256) throw new HostStepError(opts.to, 'upload swarm state', 'checksum differs after upload');
      }, () => `${backup.swarmTarGz.length} bytes, sha256 checked`);
      await stepDo(ctx, opts.to, 'stop engine', () => stopEngine(remote, init));
      await stepDo(ctx, opts.to, 'put swarm state', () => remote.check(`rm -rf ${SWARM_DIR} && tar -xzf ${tmp} -C /var/lib/docker && rm -f ${tmp}`, 'put swarm state'));
      await stepDo(ctx, opts.to, 'start engine', () => startEngine(remote, init, 'start'));
      const engine = remote.engine();
      // The restored node looks for its old peers (state pending, no leader) until the rebuild below.
      const st = await pollUntil(async () => (await localSwarm(engine)).state, {
        timeoutMs: 60_000, intervalMs: 300, onTimeout: () => new HostStepError(opts.to, 'restore', 'the engine did not answer'),
      });
      if (st === 'locked') throw new HostStepError(opts.to, 'restore', 'the restored state is locked (autolock)');
      await stepDo(ctx, opts.to, 'force new cluster', async () => {
        await forceNewCluster(engine, m, backup.unlockKey);
        await pollUntil(async () => ((await selfNode(engine)).ManagerStatus?.Leader ? true : undefined), {
          timeoutMs: 90_000, intervalMs: 500, signal: ctx.signal,
          onTimeout: () => new HostStepError(opts.to, 'force new cluster', 'did not become the leader within 90 s'),
        });
      }, () => `leader of the restored swarm, advertising ${m.advertise}`);
      const self = await selfNode(engine);
      await setLabel(engine, self.ID, HOST_LABEL, opts.to);
      // The old cluster's other nodes do not exist here: demote (managers) and remove them.
      const others = (await engineNodes(engine)).filter((n) => n.ID !== self.ID);
      for (const n of others) {
        if (n.Spec.Role === 'manager' || n.ManagerStatus) await setRole(engine, n.ID, 'worker').catch(() => undefined);
        await removeNode(engine, n.ID);
      }
      if (others.length) step(ctx, opts.to, 'remove old nodes', 'ok', `${others.length} node(s) of the old cluster removed`);
      const sw = (await engine.swarmInspect()) as { ID: string; JoinTokens: { Manager: string; Worker: string } };
      const carried = self.ManagerStatus?.Addr;
      let readdressed: RestoreResult['readdressed'];
      if (carried && carried !== managerEndpoint(m)) {
        helper ??= await pickHelper(ctx, machines, m, carried, sessions);
        await readdressRestored({
          target: m, targetNodeId: self.ID, helper, stale: carried, managerToken: sw.JoinTokens.Manager, signal: ctx.signal,
          step: (host, name, fn, ok) => stepDo(ctx, host, name, fn, ok),
        });
        readdressed = { from: carried, to: managerEndpoint(m), via: helper.machine.name };
      }
      const services = ((await engine.listServices()) as { Spec: { Name: string } }[]).map((s) => s.Spec.Name).sort();
      await ctx.state.writeSecrets({
        ...(await ctx.state.readSecrets()),
        workerToken: sw.JoinTokens.Worker,
        managerToken: sw.JoinTokens.Manager,
        ...(backup.unlockKey ? { unlockKey: backup.unlockKey } : {}),
      });
      await ctx.state.update((s) => ({ ...s, swarm: { clusterId: sw.ID, createdAt: new Date().toISOString() } }));
      if (machine.role !== 'manager') await recordRoles(ctx.state, { [opts.to]: 'manager' });
      const missing = backup.manifest.contents.services.filter((s) => !services.includes(s));
      if (missing.length) ctx.events.warn(`services in the backup but not in the restored swarm: ${missing.join(', ')}`);
      return { archive: path, to: opts.to, swarmId: sw.ID, fromCluster: backup.manifest.cluster, removedNodes: others.length, services, ...(readdressed ? { readdressed } : {}) };
    });
  });
}

/** How many hosts `pickHelper` asks at a time. */
const HELPER_PROBE_BATCH = 8;

/**
 * A host of the cluster that can hold the Raft group while a restored manager moves to its own address: reachable,
 * its engine up and in no swarm, and not itself at the stale address. Workers are asked first, a few at a time.
 */
async function pickHelper(ctx: Context, machines: Machine[], target: Member, stale: string, sessions: Sessions): Promise<Member> {
  const staleIp = splitAddr(stale).ip;
  const candidates = machines
    .filter((x) => x.name !== target.machine.name)
    .sort((a, b) => Number(a.role === 'manager') - Number(b.role === 'manager'));
  for (let i = 0; i < candidates.length; i += HELPER_PROBE_BATCH) {
    const probes = await probeHosts(ctx, candidates.slice(i, i + HELPER_PROBE_BATCH), sessions);
    const ok = probes.find((p) => p.member && p.engine === 'inactive' && p.member.advertise !== staleIp);
    if (ok) return ok.member!;
  }
  throw new UsageError(
    `restoring onto ${target.machine.name} (${managerEndpoint(target)}) moves the swarm from ${stale}, which the restored state keeps as its Raft address; ` +
      'moving it needs one more host of the cluster whose engine runs and is in no swarm, to hold the Raft group for a moment, and none answered',
    { hint: 'run `swarmform bootstrap` so the inventory\'s other hosts exist with a fresh engine, then restore again (add --force if the target already took the state)' },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// hooks for `up`

/** Roles in force for `up`: the inventory's, with recorded moves applied. */
export function rolesForUp(ctx: Context): Promise<Map<string, Role>> {
  return effectiveRoles(ctx.state, ctx.inventory.hosts);
}

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
