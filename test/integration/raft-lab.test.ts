/**
 * The manager quorum on real lab hosts, checked with Docker itself: 3 -> 5 -> 3 managers through the inventory while
 * a watcher on a manager records every manager set `docker node ls` shows (each must have a leader and a reachable
 * majority, and sets must change one manager at a time); one manager's engine stopped (degraded, tolerance 0,
 * services still running) and `raft replace`; autolock on, an engine restart locks the manager until `raft unlock`.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { cli, isRoot, labLeftovers, machinesOf, onHost, testHome, type StateMachine } from '../support/lab.js';

const cluster = 't-raft1';
const home = testHome();
const env = { SWARMFORM_HOME: home };
const inventory = join(home, `${cluster}.yml`);
const skip = isRoot ? false : 'lab tests need root';

/** node-1..node-5 take the roles given; node-6 is always a worker and runs the service. */
function writeInventory(roles: ('manager' | 'worker')[], opts: { autolock?: boolean } = {}): void {
  const groups = roles.map((r, i) => `  n${i + 1}: { role: ${r}, hosts: [{ name: node-${i + 1} }], labels: { zone: z${(i % 3) + 1} } }`).join('\n');
  writeFileSync(
    inventory,
    `cluster: ${cluster}
providers: { lab: { subnet: 198.18.40.0/24 } }
swarm: { autolock: ${opts.autolock ? 'true' : 'false'}, raft: { keepOldSnapshots: 2 }, dispatcher: { heartbeatPeriod: 4 }, taskHistoryLimit: 3 }
groups:
${groups}
  app: { role: worker, hosts: [{ name: node-6 }], labels: { tier: app } }
workloads:
  services:
    - name: web
      image: swarmform/busybox:latest
      replicas: 2
      command: ["sleep", "1000000"]
      constraints: ["node.labels.tier == app"]
`,
  );
}

let machines: StateMachine[] = [];
/** The managers Docker showed before one of them was stopped and replaced (the autolock test's inventory names them). */
let survivors: string[] = [];
/** The manager stopped and replaced, a manager to read Docker's view from, and the managers after the replace. */
let dead = '';
let deadId = '';
let obs = '';
let managersNow: string[] = [];
const host = (name: string) => machines.find((m) => m.name === name)!;

/** `docker node ls` on a host: hostname -> manager status ('' for workers). */
async function nodeLs(on: string): Promise<Map<string, string>> {
  const r = await onHost(host(on), "docker node ls --format '{{.Hostname}}|{{.ManagerStatus}}|{{.Status}}'");
  assert.equal(r.code, 0, r.stderr);
  return new Map(r.stdout.trim().split('\n').map((l) => l.split('|')).map(([h, s]) => [h!, s!]));
}
function managersOf(ls: Map<string, string>): string[] {
  return [...ls].filter(([, s]) => s).map(([h]) => h).sort();
}

/**
 * `up`, run again while it reports failed hosts (at most 3 runs): on a machine loaded by other lab clusters, a join
 * or an SSH connection can time out, and the documented answer is to run `up` again, which finishes what is missing.
 */
async function upFinished(extra: string[] = []): Promise<{ code: number; stdout: string; stderr: string; all: string }> {
  let r = await cli(['up', ...extra, '-i', inventory], env);
  /** Every run's output: what the first run did (a step it finished before failing elsewhere) is not repeated. */
  let all = r.stdout + r.stderr;
  for (let i = 0; i < 2 && r.code !== 0; i++) {
    console.log(`up exited ${r.code}, running it again: ${r.stderr.split('\n').slice(0, 4).join(' | ')}`);
    r = await cli(['up', ...extra, '-i', inventory], env);
    all += r.stdout + r.stderr;
  }
  return { ...r, all };
}

/** Why an `up` failed, its failure lines first (a CI log shows an assertion's first lines), then its whole output. */
function upFailure(r: { code: number; stdout: string; stderr: string }): string {
  const lines = (r.stdout + r.stderr).split('\n');
  const why = lines.filter((l) => /fail|error|timed out/i.test(l) && !/ 0 failed/.test(l)).slice(0, 5);
  return `up exited ${r.code}:\n${why.join('\n')}\n--- whole output:\n${r.stdout}\n${r.stderr}`;
}

/**
 * The managers Docker shows now, read on the first of node-1..node-5 that is a manager: the later tests start from
 * the swarm as it is, so one test failing midway does not make the next ones fail for a reason of its own.
 */
async function currentManagers(): Promise<string[]> {
  for (const h of ['node-1', 'node-2', 'node-3', 'node-4', 'node-5']) {
    // On a worker `docker node ls` fails, and nodeLs with it: the next host is asked.
    const ls = await nodeLs(h).catch(() => undefined);
    if (ls?.size) return managersOf(ls);
  }
  throw new Error('no host of node-1..node-5 answers docker node ls');
}

before(() => writeInventory(['manager', 'manager', 'manager', 'worker', 'worker']));

after(async () => {
  if (!isRoot) return;
  const r = await cli(['down', '--force', '-i', inventory], env);
  if (r.code !== 0) console.error(r.stderr);
  assert.deepEqual(await labLeftovers(cluster), []);
});

test('up forms 3 managers; plan and raft status report the quorum and the settings in force', { skip, timeout: 10 * 60_000 }, async () => {
  const plan = await cli(['plan', '-i', inventory], env);
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /Raft quorum: 2 of 3, tolerates 1/);
  assert.match(plan.stdout, /managers per zone: z1 1, z2 1, z3 1/);
  const r = await upFinished();
  assert.equal(r.code, 0, upFailure(r));
  machines = machinesOf(home, cluster);
  assert.deepEqual(managersOf(await nodeLs('node-1')), ['node-1', 'node-2', 'node-3']);
  // The settings reached the swarm spec (read with docker, not our status).
  const spec = await onHost(host('node-1'), "docker info --format '{{json .Swarm.Cluster.Spec}}'");
  const s = JSON.parse(spec.stdout) as { Raft: { KeepOldSnapshots: number }; Dispatcher: { HeartbeatPeriod: number }; Orchestration: { TaskHistoryRetentionLimit: number } };
  assert.equal(s.Raft.KeepOldSnapshots, 2);
  assert.equal(s.Dispatcher.HeartbeatPeriod, 4e9);
  assert.equal(s.Orchestration.TaskHistoryRetentionLimit, 3);

  const st = await cli(['raft', 'status', '--json', '-i', inventory], env);
  assert.equal(st.code, 0, st.stdout + st.stderr);
  const j = JSON.parse(st.stdout) as { health: string; count: number; quorum: number; tolerates: number; leader: string; managers: { host: string; raft: string; certExpires?: string; address?: string }[]; settings: { keepOldSnapshots: number } };
  assert.equal(j.health, 'healthy');
  assert.deepEqual([j.count, j.quorum, j.tolerates], [3, 2, 1]);
  assert.equal(j.managers.length, 3);
  assert.ok(j.managers.every((m) => m.certExpires && Date.parse(m.certExpires) > Date.now() && /^198\.18\.40\.\d+:2377$/.test(m.address ?? '')), st.stdout);
  assert.equal(j.settings.keepOldSnapshots, 2);
  const text = await cli(['status', '-i', inventory], env);
  assert.match(text.stdout, /Raft: 3 of 3 managers reachable, quorum 2, leader node-\d, tolerates 1/);
});

test('3 -> 5 -> 3 managers through the inventory: Docker shows a leader and a reachable majority at every step', { skip, timeout: 10 * 60_000 }, async () => {
  // The leader will be demoted on the way back to 3; a watcher on another manager that stays samples
  // `docker node ls` as fast as it can.
  const first = await nodeLs('node-1');
  const leader = [...first].find(([, s]) => s === 'Leader')![0];
  const watch = ['node-1', 'node-2', 'node-3'].find((h) => h !== leader)!;
  const finalSet = ['node-1', 'node-2', 'node-3', 'node-4'].filter((h) => h !== leader);
  const m = host(watch);
  const watcher: ChildProcess = spawn(
    'ssh',
    ['-i', m.ssh.keyPath!, '-p', String(m.ssh.port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', `${m.ssh.user}@${m.ssh.host}`,
      "while :; do echo \"@@ $(date +%s%N)\"; curl -sS --max-time 5 --unix-socket /var/run/docker.sock http://engine/nodes 2>&1; echo; sleep 0.02; done"],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let raw = '';
  watcher.stdout!.on('data', (d) => (raw += d));
  try {
    writeInventory(['manager', 'manager', 'manager', 'manager', 'manager']);
    const up5 = await upFinished(['--json']);
    assert.equal(up5.code, 0, upFailure(up5));
    const promoted = up5.all.split('\n').filter((l) => l.includes('"step":"promote manager"') && l.includes('"status":"ok"'));
    assert.equal(promoted.length, 2, 'two promotions, reported one at a time');
    assert.deepEqual(managersOf(await nodeLs(watch)), ['node-1', 'node-2', 'node-3', 'node-4', 'node-5']);

    // Back to 3, demoting the leader and node-5: leadership must move first.
    const before = await nodeLs(watch);
    assert.equal(before.get(leader), 'Leader', `${leader} should still lead: ${[...before]}`);
    writeInventory(['node-1', 'node-2', 'node-3', 'node-4', 'node-5'].map((h) => (finalSet.includes(h) ? 'manager' : 'worker')));
    const up3 = await upFinished();
    assert.equal(up3.code, 0, upFailure(up3));
    assert.match(up3.all, new RegExp(`${leader}: demote manager: ok: demoted \\(was the leader`));
    const ls = await nodeLs(watch);
    assert.deepEqual(managersOf(ls), finalSet);
    assert.equal([...ls.values()].filter((s) => s === 'Leader').length, 1);
    assert.ok(finalSet.some((h) => ls.get(h) === 'Leader'));
  } finally {
    watcher.kill();
  }
  // Every sample Docker gave: a leader and a reachable majority of the managers it listed.
  // Each sample starts with the time it was taken (ns): a sample saw the swarm at some instant between its start and the
  // next sample's start.
  const samples = raw.split('@@ ').slice(1).filter((s) => s.trim()).map((s) => {
    const [t, ...rest] = s.split('\n');
    return { at: Number(t) / 1e6, text: rest.join('\n') };
  })
    // The last sample may have been cut off when the watcher was stopped: only complete ones count.
    .slice(0, -1);
  const bad: string[] = [];
  const errors: string[] = [];
  /** Samples curl itself gave up on (its 5 s limit): the watcher did not see, which counts as time unobserved. */
  const stalls: string[] = [];
  const sets: string[] = [];
  /** When each distinct set was first seen, and the start of the sample before it. */
  const seenAt: { prev: number; next: number }[] = [];
  let prevAt = 0;
  for (const [i, { at, text: s }] of samples.entries()) {
    // The Engine API's node list (what `docker node ls` shows), read with curl: a sample takes milliseconds where the
    // docker CLI took hundreds, so a state that lasts a confirmation round is not missed.
    let nodes: { Description?: { Hostname?: string }; ManagerStatus?: { Leader?: boolean; Reachability?: string } }[];
    try {
      nodes = JSON.parse(s.trim());
      if (!Array.isArray(nodes)) throw new Error('not a node list');
    } catch {
      if (/^curl: \(\d+\)/.test(s.trim())) stalls.push(s.trim());
      else errors.push(s.trim());
      continue;
    }
    const status = (n: (typeof nodes)[number]) =>
      !n.ManagerStatus ? '' : n.ManagerStatus.Leader ? 'Leader' : n.ManagerStatus.Reachability === 'reachable' ? 'Reachable' : 'Unreachable';
    const mgrs = nodes.map((n) => [n.Description?.Hostname ?? '?', status(n)] as const).filter(([, st]) => st);
    const reachable = mgrs.filter(([, st]) => st === 'Leader' || st === 'Reachable').length;
    const leaders = mgrs.filter(([, st]) => st === 'Leader').length;
    if (leaders !== 1 || reachable < Math.floor(mgrs.length / 2) + 1) bad.push(s.trim());
    const set = mgrs.map(([h]) => h).sort().join(',');
    if (sets.at(-1) !== set) {
      sets.push(set);
      seenAt.push({ prev: prevAt, next: samples[i + 1]?.at ?? at + 1000 });
    }
    prevAt = at;
  }
  console.log(`watcher: ${samples.length} samples, ${errors.length} errors, ${stalls.length} stalls, manager sets seen: ${sets.join(' -> ')}`);
  for (const e of [...errors, ...stalls, ...bad].slice(0, 3)) console.log(`watcher: sample: ${e.replace(/\s+/g, ' ').slice(0, 200)}`);
  assert.ok(samples.length > 20, `too few samples: ${samples.length}`);
  assert.deepEqual(bad, [], 'a sample without a leader or a reachable majority');
  assert.deepEqual(errors, [], 'docker node ls failed during a change');
  assert.ok(stalls.length <= 1, `${stalls.length} samples timed out in curl: the watcher was too slow to judge`);
  // One membership change at a time. Each change takes a Raft round and a confirmation read, so two changes between
  // samples taken close together mean two at once; when a stalled sample (a busy machine) left more than 300 ms
  // unobserved, two confirmed changes can fall in the gap, and that pair is only reported.
  let gaps = 0;
  for (let i = 1; i < sets.length; i++) {
    const a = new Set(sets[i - 1]!.split(','));
    const b = new Set(sets[i]!.split(','));
    const diff = [...a].filter((x) => !b.has(x)).length + [...b].filter((x) => !a.has(x)).length;
    const unobserved = seenAt[i]!.next - seenAt[i]!.prev;
    if (diff > 1 && unobserved > 300) {
      gaps++;
      console.log(`watcher: ${sets[i - 1]} -> ${sets[i]} across ${Math.round(unobserved)} ms without a sample`);
      continue;
    }
    assert.equal(diff, 1, `manager set changed by more than one within ${Math.round(unobserved)} ms: ${sets[i - 1]} -> ${sets[i]}`);
  }
  assert.ok(gaps <= 1, `${gaps} changes fell between samples: the watcher was too slow to judge`);
  assert.equal(sets[0], 'node-1,node-2,node-3');
  assert.equal(sets.at(-1), finalSet.join(','));
  assert.ok(sets.includes('node-1,node-2,node-3,node-4,node-5'));
});

test('one manager engine of 3 stopped: degraded, tolerance 0, services run; raft replace restores 3', { skip, timeout: 10 * 60_000 }, async () => {
  survivors = await currentManagers();
  assert.equal(survivors.length, 3, `three managers to stop one of: ${survivors}`);
  const ls0 = await nodeLs(survivors[0]!);
  dead = survivors.find((h) => ls0.get(h) !== 'Leader')!;
  obs = survivors.find((h) => h !== dead)!;
  deadId = (await onHost(host(dead), "docker info --format '{{.Swarm.NodeID}}'")).stdout.trim();
  // Stopped, and its Raft state kept aside: the next test brings it back stale.
  const stop = await onHost(host(dead), '/usr/local/lib/swarmform/dockerd-ctl stop && cp -a /var/lib/docker/swarm /var/lib/docker/swarm-stale');
  assert.equal(stop.code, 0, stop.stderr);
  // Docker's own view first: the stopped manager is Unreachable.
  for (let i = 0; i < 60 && (await nodeLs(obs)).get(dead) !== 'Unreachable'; i++) await new Promise((r) => setTimeout(r, 500));
  assert.equal((await nodeLs(obs)).get(dead), 'Unreachable');

  const t0 = Date.now();
  const st = await cli(['raft', 'status', '--json', '-i', inventory], env);
  const ms = Date.now() - t0;
  assert.equal(st.code, 1, `degraded exits 1: ${st.stdout}${st.stderr}`);
  const j = JSON.parse(st.stdout) as { health: string; tolerates: number; reachable: number; managers: { host: string; raft: string; engine: string }[] };
  assert.equal(j.health, 'degraded');
  assert.equal(j.tolerates, 0);
  assert.equal(j.reachable, 2);
  const d = j.managers.find((m) => m.host === dead)!;
  assert.deepEqual([d.raft, d.engine], ['unreachable', 'down']);
  console.log(`raft status with ${dead} down: ${ms} ms`);
  assert.ok(ms < 20_000, `raft status took ${ms} ms`);
  const text = await cli(['raft', 'status', '-i', inventory], env);
  assert.match(text.stdout, /DEGRADED.*tolerates 0 more/);

  const ps = await onHost(host(obs), "docker service ps web --filter desired-state=running --format '{{.CurrentState}}'");
  assert.equal(ps.stdout.trim().split('\n').filter((l) => l.startsWith('Running')).length, 2, ps.stdout);

  const rep = await cli(['raft', 'replace', dead, '-i', inventory], env);
  assert.equal(rep.code, 0, rep.stdout + rep.stderr);
  const ls = await nodeLs(obs);
  const mgrs = managersOf(ls);
  assert.equal(mgrs.length, 3, [...ls].join(' '));
  assert.ok(!ls.has(dead), 'the dead manager node is removed');
  assert.ok(mgrs.every((h) => ls.get(h) === 'Leader' || ls.get(h) === 'Reachable'), [...ls].join(' '));
  managersNow = mgrs;
  // Its old Raft state cannot come back: the swarm directory is gone.
  const dir = await onHost(host(dead), 'test -e /var/lib/docker/swarm && echo present || echo absent');
  assert.equal(dir.stdout.trim(), 'absent');
  const after = await cli(['raft', 'status', '--json', '-i', inventory], env);
  assert.equal(after.code, 0, after.stdout);
  // The dead manager comes back with its old Raft state (put back while its engine is stopped).
  assert.equal((await onHost(host(dead), 'mv /var/lib/docker/swarm-stale /var/lib/docker/swarm && echo ok')).stdout.trim(), 'ok');
});

test('autolock: up locks the managers; a restarted engine stays locked until raft unlock', { skip, timeout: 10 * 60_000 }, async () => {
  writeInventory(['node-1', 'node-2', 'node-3', 'node-4', 'node-5'].map((h) => (survivors.includes(h) ? 'manager' : 'worker')), { autolock: true });
  const r = await upFinished();
  assert.equal(r.code, 0, upFailure(r));
  assert.doesNotMatch(r.all, /SWMKEY/);
  const secrets = join(home, cluster, 'secrets.json');
  assert.equal(statSync(secrets).mode & 0o777, 0o600);
  const key = (JSON.parse(readFileSync(secrets, 'utf8')) as { unlockKey?: string }).unlockKey;
  assert.match(key ?? '', /^SWMKEY-1-/);
  // Docker agrees the swarm is autolocked and has this key.
  const k = await onHost(host(obs), 'docker swarm unlock-key -q');
  assert.equal(k.stdout.trim(), key);
  // The replaced manager came back (its engine started by up) with its old Raft state: up cleared it and it joined
  // as a fresh worker under a new node id; the managers are those raft replace left, not the inventory's old list.
  assert.match(r.all, new RegExp(`${dead}: clear stale swarm state: ok`));
  const ls = await nodeLs(obs);
  assert.equal(ls.get(dead), '');
  const newId = (await onHost(host(dead), "docker info --format '{{.Swarm.NodeID}}'")).stdout.trim();
  assert.ok(newId && newId !== deadId, `${dead} has node id ${newId}, was ${deadId}`);
  assert.deepEqual(managersOf(ls), managersNow);

  const target = managersNow.find((h) => h !== obs && ls.get(h) !== 'Leader')!;
  const restart = await onHost(host(target), '/usr/local/lib/swarmform/dockerd-ctl restart');
  assert.equal(restart.code, 0, restart.stderr);
  let state = '';
  for (let i = 0; i < 60; i++) {
    state = (await onHost(host(target), "docker info --format '{{.Swarm.LocalNodeState}}'")).stdout.trim();
    if (state === 'locked') break;
    await new Promise((res) => setTimeout(res, 500));
  }
  assert.equal(state, 'locked');
  await new Promise((res) => setTimeout(res, 3000));
  assert.equal((await onHost(host(target), "docker info --format '{{.Swarm.LocalNodeState}}'")).stdout.trim(), 'locked', 'stays locked');
  const st = await cli(['raft', 'status', '--json', '-i', inventory], env);
  assert.deepEqual((JSON.parse(st.stdout) as { locked: string[] }).locked, [target]);

  const u = await cli(['raft', 'unlock', '-i', inventory], env);
  assert.equal(u.code, 0, u.stdout + u.stderr);
  assert.match(u.stdout, new RegExp(`Unlocked ${target}`));
  assert.doesNotMatch(u.stdout + u.stderr, /SWMKEY/);
  assert.equal((await onHost(host(target), "docker info --format '{{.Swarm.LocalNodeState}}'")).stdout.trim(), 'active');
  let seen = '';
  for (let i = 0; i < 60; i++) {
    seen = (await nodeLs(obs)).get(target) ?? '';
    if (/Reachable|Leader/.test(seen)) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  assert.match(seen, /Reachable|Leader/);
});
