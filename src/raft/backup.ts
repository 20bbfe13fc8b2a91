/**
 * `raft backup` (the swarm state of a manager that is not the leader, copied while its engine is stopped, into a
 * local archive) and `raft restore` (a new one-manager swarm on a fresh host from such an archive).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { engineInitOf, startEngine, stopEngine } from '../bootstrap/engine-service.js';
import type { Machine } from '../base/machine.js';
import { readArchive, sha256, writeArchive, ARCHIVE_FORMAT, type BackupManifest } from './archive.js';
import { confirmGroup, firstAnswering, listNodes, raftMembers, removeNode, selfNode, setLabel, setRole } from './nodes.js';
import { quorumOf } from './quorum.js';
import { readdressRestored, splitAddr } from './readdress.js';
import { recordRoles } from '../cluster/roles.js';
import { readUnlockKey, unlockEngine } from './settings.js';
import { pollUntil } from '../run/poll.js';
import { managerEndpoint, type Member } from '../swarm/members.js';
import { localSwarm } from '../swarm/node-state.js';
import { HOST_LABEL } from '../swarm/node-settings.js';
import type { Context } from '../cluster/context.js';
import { HostStepError, SwarmformError, UsageError } from '../base/errors.js';
import type { Sessions } from '../cluster/sessions.js';
import { forceNewCluster, step, stepDo, SWARM_DIR, withLock, withSessions } from './common.js';
import { resolveMembers } from '../cluster/machines.js';
import { enginesOf, probeHosts } from './probe.js';

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
    const machines = await resolveMembers(ctx);
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
    const machines = await resolveMembers(ctx);
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
      const others = (await listNodes(engine)).filter((n) => n.ID !== self.ID);
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
  const staleIp = splitAddr(stale, { host: target.machine.name, step: 'restore' }).ip;
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
