import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { daemonConfigFor } from '../../src/bootstrap/daemon-config.js';
import { openContext } from '../../src/cluster/context.js';
import { EventBus } from '../../src/base/events.js';
import { plan } from '../../src/core/plan.js';
import { formatPlan } from '../../src/cli/format.js';
import { ARCHIVE_FORMAT, type BackupManifest, readArchive, sha256, writeArchive } from '../../src/raft/archive.js';
import { hostOf, raftMembers, type SwarmNode } from '../../src/raft/nodes.js';
import { bestSpread, marginNow, planQuorum, quorumOf, toleranceOf, zoneOf } from '../../src/raft/quorum.js';
import { hostPart, joinsThroughLiveManager } from '../../src/raft/promote.js';
import { planChanges } from '../../src/raft/reconcile.js';
import { effectiveRoles, recordRoles } from '../../src/cluster/roles.js';
import { effectiveSettings, LARGE_PROFILE, mergeSpec, settingsInForce, specFor, tickDaemonKeys } from '../../src/inventory/swarm-settings.js';
import type { SwarmSettings } from '../../src/inventory/types.js';
import { openState } from '../../src/state/store.js';
import { tempDir } from '../support/tmp.js';

process.env.SWARMFORM_HOME = tempDir('swarmform-raft-');

test('quorum arithmetic: floor(N/2)+1, tolerates (N-1)/2', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(quorumOf), [1, 2, 2, 3, 3, 4, 4]);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(toleranceOf), [0, 0, 1, 1, 2, 2, 3]);
  assert.equal(marginNow(3, 2), 0);
  assert.equal(marginNow(5, 2), -1);
  assert.match(planQuorum(4).warnings.join(), /odd count/);
  assert.match(planQuorum(9).warnings.join(), /more than 7/);
  assert.deepEqual(planQuorum(5).warnings, []);
});

test('zone spread: a zone whose loss breaks quorum is a warning with the spread that fixes it', () => {
  const bad = planQuorum([{ name: 'a', zone: 'x' }, { name: 'b', zone: 'x' }, { name: 'c', zone: 'y' }]);
  assert.match(bad.warnings.join('\n'), /losing zone x \(2 of 3 managers\) loses the quorum.*1-1-1/);
  const five = planQuorum(['x', 'x', 'x', 'y', 'y'].map((zone, i) => ({ name: `m${i}`, zone })));
  assert.match(five.warnings.join('\n'), /2-2-1/);
  const good = planQuorum(['x', 'x', 'y', 'y', 'z'].map((zone, i) => ({ name: `m${i}`, zone })));
  assert.deepEqual(good.warnings, []);
  assert.deepEqual(good.zones, [{ zone: 'x', managers: 2 }, { zone: 'y', managers: 2 }, { zone: 'z', managers: 1 }]);
  assert.equal(bestSpread(7), '3-2-2');
  assert.equal(bestSpread(3), '1-1-1');
  assert.equal(bestSpread(2), undefined);
  // No zones at all: no zone warnings (nothing is known).
  assert.deepEqual(planQuorum([{ name: 'a' }, { name: 'b' }, { name: 'c' }]).warnings, []);
  assert.equal(zoneOf({ labels: {}, options: { region: 'fra1' } }), 'fra1');
  assert.equal(zoneOf({ labels: { zone: 'a' }, options: { region: 'fra1' } }), 'a');
});

const base: SwarmSettings = {
  advertise: { kind: 'private' }, joinConcurrency: 12, bootstrapConcurrency: 32, joinPacing: 'adaptive', ingress: true, install: 'auto', firewall: true, drainManagers: false, daemon: {},
  autolock: false, profile: 'default',
};

test('settings: only what the inventory or profile sets reaches the spec; large profile; explicit values win', () => {
  assert.deepEqual(specFor(effectiveSettings(base)), { EncryptionConfig: { AutoLockManagers: false } });
  const e = effectiveSettings({ ...base, profile: 'large', autolock: true, taskHistoryLimit: 4, raft: { electionTick: 30, heartbeatTick: 3 } });
  assert.equal(e.drainManagers, true);
  assert.equal(e.taskHistoryLimit, 4, 'explicit wins over the preset');
  assert.equal(e.heartbeatPeriod, LARGE_PROFILE.heartbeatPeriod);
  const spec = specFor(e);
  assert.deepEqual(spec.Dispatcher, { HeartbeatPeriod: 20e9 });
  assert.deepEqual(spec.EncryptionConfig, { AutoLockManagers: true });
  assert.equal(spec.Raft?.KeepOldSnapshots, 2);
  assert.deepEqual(tickDaemonKeys(e), { 'swarm-raft-heartbeat-tick': 3, 'swarm-raft-election-tick': 30 });
  const daemon = daemonConfigFor({ ...base, raft: { electionTick: 15 }, daemon: { debug: true } });
  assert.equal(daemon['swarm-raft-election-tick'], 15);
  assert.equal(daemon.debug, true);
  assert.equal(specFor(effectiveSettings({ ...base, certExpiryHours: 48 })).CAConfig?.NodeCertExpiry, 48 * 3600e9);
});

test('mergeSpec changes only managed keys and reports what differs', () => {
  const current = { Name: 'default', Raft: { SnapshotInterval: 10000, KeepOldSnapshots: 0, LogEntriesForSlowFollowers: 500, ElectionTick: 10 }, Dispatcher: { HeartbeatPeriod: 5e9 } };
  const same = mergeSpec(current, { Raft: { SnapshotInterval: 10000 }, EncryptionConfig: { AutoLockManagers: false } });
  assert.deepEqual(same.changed, []);
  const m = mergeSpec(current, { Raft: { KeepOldSnapshots: 3 }, EncryptionConfig: { AutoLockManagers: true } });
  assert.deepEqual(m.changed, ['Raft.KeepOldSnapshots', 'EncryptionConfig.AutoLockManagers']);
  assert.equal((m.spec.Raft as { ElectionTick: number }).ElectionTick, 10, 'other keys kept');
  assert.equal((m.spec.Dispatcher as { HeartbeatPeriod: number }).HeartbeatPeriod, 5e9);
  const f = settingsInForce({ ...m.spec, CAConfig: { NodeCertExpiry: 7776000e9 } });
  assert.equal(f.certExpiryHours, 2160);
  assert.equal(f.heartbeatPeriodS, 5);
  assert.equal(f.autolock, true);
});

function node(host: string, role: 'manager' | 'worker', ms?: { leader?: boolean; reachable?: boolean }): SwarmNode {
  return {
    ID: `id-${host}`,
    Version: { Index: 1 },
    Spec: { Role: role, Availability: 'active', Labels: { 'swarmform.host': host } },
    Description: { Hostname: `h-${host}` },
    Status: { State: 'ready', Addr: '198.18.0.2' },
    ManagerStatus: ms ? { Leader: ms.leader, Reachability: ms.reachable === false ? 'unreachable' : 'reachable', Addr: '198.18.0.2:2377' } : undefined,
  };
}

test('planChanges: promotions before demotions, the leader demoted last, never down to zero managers', () => {
  const nodes = [node('a', 'manager', { leader: true }), node('b', 'manager', {}), node('c', 'manager', {}), node('d', 'worker'), node('e', 'worker')];
  assert.equal(hostOf(nodes[0]!), 'a');
  assert.deepEqual(raftMembers(nodes).map((m) => [m.host, m.leader, m.reachable]), [['a', true, true], ['b', false, true], ['c', false, true]]);
  const up5 = planChanges(nodes, new Set(['a', 'b', 'c', 'd', 'e']), 'all');
  assert.deepEqual(up5.promote.map(hostOf), ['d', 'e']);
  assert.deepEqual(up5.demote, []);
  const down = planChanges(nodes, new Set(['b', 'd', 'e']), 'all');
  assert.deepEqual(down.promote.map(hostOf), ['d', 'e']);
  assert.deepEqual(down.demote.map(hostOf), ['c', 'a'], 'the leader goes last');
  assert.deepEqual(planChanges(nodes, new Set(['b', 'd', 'e']), 'promote').demote, [], 'promote mode never demotes');
  assert.deepEqual(planChanges(nodes, new Set(['x']), 'all').demote, [], 'no wanted manager is a node yet: keep the current ones');
});

test('role moves from raft commands override the inventory until it agrees', async () => {
  const state = await openState('t-roles');
  const hosts = [
    { name: 'm1', role: 'manager' as const }, { name: 'm2', role: 'manager' as const }, { name: 'w1', role: 'worker' as const },
  ].map((h) => ({ ...h, group: 'g', provider: 'lab', labels: {}, ssh: { user: 'root', port: 22, connectTimeout: 5 }, options: {} }));
  await recordRoles(state, { m2: 'worker', w1: 'manager' });
  const r = await effectiveRoles(state, hosts);
  assert.deepEqual([...r], [['m1', 'manager'], ['m2', 'worker'], ['w1', 'manager']]);
  assert.equal(statSync(join(state.dir, 'raft.json')).mode & 0o777, 0o600);
  // The user edits the inventory to match: the moves are forgotten.
  const edited = hosts.map((h) => (h.name === 'm2' ? { ...h, role: 'worker' as const } : h.name === 'w1' ? { ...h, role: 'manager' as const } : h));
  await effectiveRoles(state, edited);
  const later = await effectiveRoles(state, hosts);
  assert.deepEqual([...later], [['m1', 'manager'], ['m2', 'manager'], ['w1', 'worker']]);
});

test('backup archive: 0600, checksum checked, unlock key carried, damage detected', async () => {
  const dir = tempDir('swarmform-archive-');
  const data = Buffer.from('pretend this is a tar.gz of /var/lib/docker/swarm '.repeat(20));
  const manifest: BackupManifest = {
    format: ARCHIVE_FORMAT, cluster: 'c', swarmId: 's', source: { host: 'm2', nodeId: 'n', engineVersion: '20.10' }, createdAt: new Date().toISOString(),
    sha256: sha256(data), bytes: data.length, autolock: true,
    contents: { services: ['web'], networks: [], secrets: [], configs: [], managers: 3, nodes: 5 },
  };
  const file = join(dir, 'b.tar');
  writeFileSync(file, 'old content'); // an existing, wider file is replaced by a 0600 one
  await writeArchive(file, { manifest, swarmTarGz: data, unlockKey: 'SWMKEY-1-abc' });
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const back = await readArchive(file);
  assert.equal(back.unlockKey, 'SWMKEY-1-abc');
  assert.deepEqual(back.swarmTarGz, data);
  await writeArchive(file, { manifest: { ...manifest, sha256: sha256(Buffer.from('other')) }, swarmTarGz: data });
  await assert.rejects(readArchive(file), /damaged/);
  writeFileSync(join(dir, 'x.tar'), 'not a tar');
  await assert.rejects(readArchive(join(dir, 'x.tar')), /not a swarmform raft backup/);
});

test('plan shows zones, zone warnings and the settings of profile large', async () => {
  const dir = tempDir('swarmform-raft-plan-');
  const file = join(dir, 'z.yml');
  writeFileSync(file, 'cluster: z\nproviders: { lab: { subnet: 198.18.40.0/24 } }\nswarm: { profile: large }\ngroups:\n  a: { role: manager, count: 2, labels: { zone: a } }\n  b: { role: manager, count: 1, labels: { zone: b } }\n');
  const p = plan(await openContext(file, new EventBus()));
  assert.match(p.quorum.warnings.join('\n'), /losing zone a/);
  const text = formatPlan(p);
  assert.match(text, /managers per zone: a 2, b 1/);
  assert.match(text, /profile large\): autolock off, managers drained, .*dispatcher heartbeat 20 s, task history 1/);
});

test('promotion: a worker whose join address is not a live manager must join again instead (moby#47854)', () => {
  const members = [
    { host: 'm-1', nodeId: 'a', leader: true, reachable: true, addr: '10.0.0.1:2377' },
    { host: 'm-2', nodeId: 'b', leader: false, reachable: true, addr: '10.0.0.2:2377' },
    { host: 'm-3', nodeId: 'c', leader: false, reachable: false, addr: '10.0.0.3:2377' },
  ];
  assert.equal(hostPart('10.0.0.2:2377'), '10.0.0.2');
  assert.equal(hostPart('[fd00::1]:2377'), 'fd00::1');
  assert.equal(hostPart('10.0.0.2'), '10.0.0.2');
  assert.equal(joinsThroughLiveManager('10.0.0.1:2377', members), true);
  assert.equal(joinsThroughLiveManager('10.0.0.2:2377', members), true);
  // The unreachable manager, and an address that is no manager at all (demoted since): join again.
  assert.equal(joinsThroughLiveManager('10.0.0.3:2377', members), false);
  assert.equal(joinsThroughLiveManager('10.0.0.9:2377', members), false);
  // Unknown (no docker-state.json): promote as docker does.
  assert.equal(joinsThroughLiveManager(undefined, members), true);
});

test('readdress: address parts and the temporary redirect rule (added and removed with the same spec)', async () => {
  const { splitAddr, redirectRule } = await import('../../src/raft/readdress.js');
  assert.deepEqual(splitAddr('198.18.0.3:2377'), { ip: '198.18.0.3', port: '2377' });
  assert.deepEqual(splitAddr('[fd00::3]:2377'), { ip: 'fd00::3', port: '2377' });
  assert.throws(() => splitAddr('198.18.0.3'), /not an address with a port/);
  assert.equal(
    redirectRule('-I', '198.18.0.3:2377', '198.18.0.2:2377'),
    "iptables -w -t nat -I OUTPUT -p tcp -d '198.18.0.3' --dport 2377 -j DNAT --to-destination '198.18.0.2:2377'",
  );
  assert.equal(redirectRule('-D', '[fd00::3]:2377', '[fd00::2]:2377'), "ip6tables -w -t nat -D OUTPUT -p tcp -d 'fd00::3' --dport 2377 -j DNAT --to-destination '[fd00::2]:2377'");
});
