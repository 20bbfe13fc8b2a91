/**
 * Promoting a worker whose join address is a manager that is gone. Engine 20.10 makes a promoted node join the Raft
 * group through the address it first joined the swarm by (kept in docker-state.json); when that manager is dead the
 * node loops in state `error` for good (moby#47854, fixed in Engine 23). Here the workers join through m-3 with
 * docker's own CLI, m-3's engine is stopped, and `raft replace m-3` must still end with three reachable managers,
 * checked with `docker node ls` on a surviving manager.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cli, isRoot, labLeftovers, machinesOf, onHost, type StateMachine, testHome } from '../support/lab.js';

const cluster = 't-promote';
const home = testHome();
const env = { SWARMFORM_HOME: home };
const inventory = join(home, `${cluster}.yml`);
const skip = isRoot ? false : 'lab tests need root';

after(async () => {
  if (!isRoot) return;
  const r = await cli(['down', '--force', '-i', inventory], env);
  if (r.code !== 0) console.error(r.stderr);
  assert.deepEqual(await labLeftovers(cluster), []);
});

test('raft replace works when the worker it promotes joined through the dead manager', { skip, timeout: 10 * 60_000 }, async () => {
  writeFileSync(
    inventory,
    `cluster: ${cluster}
providers: { lab: { subnet: 198.18.43.0/24, engine: preinstalled } }
groups:
  managers: { role: manager, name: "m-[1:3]" }
  workers: { role: worker, name: "w-[1:2]", labels: { tier: app } }
`,
  );
  let r = await cli(['up', '-i', inventory], env);
  if (r.code !== 0) r = await cli(['up', '-i', inventory], env); // a busy machine can time a join out; up finishes it
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const machines = machinesOf(home, cluster);
  const host = (n: string): StateMachine => machines.find((m) => m.name === n)!;
  const ls = async (on: string) => {
    const x = await onHost(host(on), "docker node ls --format '{{.Hostname}}|{{.ManagerStatus}}|{{.Status}}'");
    assert.equal(x.code, 0, x.stderr);
    return x.stdout.trim().split('\n').map((l) => l.split('|'));
  };
  // The dead-to-be manager must not be the leader: pick a non-leader, and an observer that stays.
  const before = await ls('m-1');
  const dead = before.find(([h, s]) => h!.startsWith('m-') && s === 'Reachable')![0]!;
  const obs = ['m-1', 'm-2', 'm-3'].find((h) => h !== dead)!;
  const token = (await onHost(host(obs), 'docker swarm join-token -q worker')).stdout.trim();
  const deadAddr = (await onHost(host(dead), "docker info --format '{{.Swarm.NodeAddr}}'")).stdout.trim();
  for (const w of ['w-1', 'w-2']) {
    const j = await onHost(host(w), `docker swarm leave --force && docker swarm join --token ${token} ${deadAddr}:2377`);
    assert.equal(j.code, 0, j.stderr);
    const st = await onHost(host(w), 'cat /var/lib/docker/swarm/docker-state.json');
    assert.match(st.stdout, new RegExp(`"RemoteAddr":"${deadAddr.replace(/\./g, '\\.')}:2377"`));
  }
  // The nodes the workers left behind go Down; remove them so each worker has one node.
  for (let i = 0; i < 60; i++) {
    const down = (await ls(obs)).filter(([, , st]) => st === 'Down');
    if (down.length === 2) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  const rm = await onHost(host(obs), "docker node ls --format '{{.ID}} {{.Status}}' | awk '$2==\"Down\"{print $1}' | xargs -r docker node rm");
  assert.equal(rm.code, 0, rm.stderr);
  // A node that joins again starts without labels: give the new ones theirs, as up would.
  for (const w of ['w-1', 'w-2']) {
    const l = await onHost(host(obs), `docker node update --label-add tier=app --label-add swarmform.host=${w} ${w}`);
    assert.equal(l.code, 0, l.stderr);
  }

  assert.equal((await onHost(host(dead), '/usr/local/lib/swarmform/dockerd-ctl stop')).code, 0);
  for (let i = 0; i < 60 && !(await ls(obs)).some(([h, s]) => h === dead && s === 'Unreachable'); i++) await new Promise((res) => setTimeout(res, 500));

  const rep = await cli(['raft', 'replace', dead, '-i', inventory], env);
  assert.equal(rep.code, 0, rep.stdout + rep.stderr);
  assert.match(rep.stdout + rep.stderr, /rejoined as a manager/);
  const after = await ls(obs);
  const managers = after.filter(([, s]) => s).map(([h, s]) => `${h}:${s}`);
  assert.equal(managers.length, 3, managers.join(' '));
  assert.ok(after.every(([h]) => h !== dead), `${dead} still listed`);
  assert.ok(managers.every((m) => /:(Leader|Reachable)$/.test(m)), managers.join(' '));
  const promoted = after.find(([h, s]) => h!.startsWith('w-') && s)![0]!;
  // Its labels came along to the new node.
  const labels = await onHost(host(obs), `docker node inspect ${promoted} --format '{{json .Spec.Labels}}'`);
  assert.match(labels.stdout, /"tier":"app"/);
  assert.match(labels.stdout, new RegExp(`"swarmform.host":"${promoted}"`));
});
