/**
 * A backup restored onto a host other than its source, as issue 14 found it: `raft backup` (from mgr-2, the default
 * non-leader), `down`, `bootstrap`, `raft restore ARCHIVE --to mgr-1`, `up`. The restored state carries mgr-2's Raft
 * address; once that made mgr-3's manager join cut the leader's quorum and `up` fail with 0 of 6 nodes Ready. Now
 * the restore must end with mgr-1's own address in the Raft group and `up` must grow back to 3 managers and 3 workers
 * with the service and the secret intact. Checked with `docker node ls`/`node inspect` on the managers and
 * `iptables` on the hosts (the temporary redirect is gone).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cli, downAndCheck, isRoot, lastJson, machinesOf, onHost, type StateMachine, testHome, writeLabInventory } from '../support/lab.js';

const cluster = 't-rrestore';
const home = testHome();
const env = { SWARMFORM_HOME: home };
const inventory = join(home, `${cluster}.yml`);
const archive = join(home, 'backup.tar');
const skip = isRoot ? false : 'lab tests need root';

writeLabInventory(inventory, { cluster, subnet: '198.18.48.0/24' });

let machines: StateMachine[] = [];
const sh = async (on: string, cmd: string) => {
  const r = await onHost(machines.find((m) => m.name === on)!, cmd);
  return { ...r, out: r.stdout.trim() };
};
const ip = (name: string) => machines.find((m) => m.name === name)!.privateAddress;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** host -> Raft address, from the managers' own node list. */
const raftAddrs = async (on: string) =>
  new Map(
    (await sh(on, "docker node ls -q --filter role=manager | xargs docker node inspect --format '{{.Description.Hostname}} {{.ManagerStatus.Addr}}'")).out
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ') as [string, string]),
  );

after(() => downAndCheck(inventory, env, cluster));

test('backup from a non-leader restored onto another manager: it has its own Raft address, and up grows back to 3+3 with the service', { skip, timeout: 15 * 60_000 }, async () => {
  let up = await cli(['up', '-i', inventory], env);
  if (up.code !== 0) up = await cli(['up', '-i', inventory], env);
  assert.equal(up.code, 0, up.stdout + up.stderr);
  machines = machinesOf(home, cluster);
  const mk = await sh('mgr-1', 'printf s3cret | docker secret create restsecret - >/dev/null && echo ok');
  assert.equal(mk.out, 'ok', mk.stderr);
  const b = await cli(['raft', 'backup', '--out', archive, '--json', '-i', inventory], env);
  assert.equal(b.code, 0, b.stdout + b.stderr);
  const from = lastJson<{ from: string }>(b.stdout)!.from;
  // The default source is a manager that does not lead; restore onto another one (mgr-1 unless it was the source).
  const to = from === 'mgr-1' ? 'mgr-3' : 'mgr-1';
  const down = await cli(['down', '--force', '-i', inventory], env);
  assert.equal(down.code, 0, down.stderr);
  let boot = await cli(['bootstrap', '-i', inventory], env);
  if (boot.code !== 0) boot = await cli(['bootstrap', '-i', inventory], env);
  assert.equal(boot.code, 0, boot.stdout + boot.stderr);
  machines = machinesOf(home, cluster);
  assert.notEqual(ip(to), ip(from));

  const r = await cli(['raft', 'restore', archive, '--to', to, '-i', inventory], env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`Moved its Raft address from ${ip(from).replace(/\./g, '\\.')}:2377 to ${ip(to).replace(/\./g, '\\.')}:2377`));
  // One manager, at its own address, leading; the helper host left the swarm and kept no redirect.
  assert.deepEqual([...(await raftAddrs(to))], [[to, `${ip(to)}:2377`]]);
  assert.equal((await sh(to, "docker node ls --format '{{.Hostname}} {{.ManagerStatus}}'")).out, `${to} Leader`);
  for (const m of machines.filter((x) => x.name !== to)) {
    assert.equal((await sh(m.name, "docker info --format '{{.Swarm.LocalNodeState}}'")).out, 'inactive', `${m.name} is in no swarm`);
    assert.doesNotMatch((await sh(m.name, 'iptables -w -t nat -S OUTPUT')).out, /DNAT/, `${m.name} keeps no redirect`);
  }

  const again = await cli(['up', '-i', inventory], env);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  const nodes = (await sh(to, "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'")).out.split('\n');
  assert.equal(nodes.length, 6, nodes.join('\n'));
  assert.ok(nodes.every((l) => l.split(' ')[1] === 'Ready'), nodes.join('\n'));
  assert.equal(new Set(nodes.map((l) => l.split(' ')[0])).size, 6, `no duplicate nodes: ${nodes.join('\n')}`);
  const addrs = await raftAddrs(from);
  assert.deepEqual([...addrs.keys()].sort(), ['mgr-1', 'mgr-2', 'mgr-3']);
  for (const [h, a] of addrs) assert.equal(a, `${ip(h)}:2377`, `${h}'s Raft address is its own`);
  assert.ok(nodes.some((l) => l.endsWith('Leader')), nodes.join('\n'));
  assert.equal(nodes.filter((l) => / (Leader|Reachable)$/.test(l)).length, 3, nodes.join('\n'));
  assert.equal((await sh(from, "docker secret ls --format '{{.Name}}'")).out, 'restsecret');
  let running = 0;
  for (let i = 0; i < 60 && running < 2; i++) {
    running = (await sh(from, "docker service ps web --filter desired-state=running --format '{{.CurrentState}}'")).out.split('\n').filter((l) => l.startsWith('Running')).length;
    if (running < 2) await sleep(1000);
  }
  assert.equal(running, 2, 'web runs 2/2 on the grown cluster');
});
