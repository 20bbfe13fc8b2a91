/**
 * A mid-size lab cluster, 3 managers + 20 workers, with the engine preinstalled from one shared layer and the worker
 * joins paced: every node Ready in `docker node ls`, the hosts really run the same engine files (one copy in memory),
 * a host-mode published port answers on its own host's address, and the kernel's neighbour table has room for the
 * swarm's full mesh. The 150-host runs belong to bench/scale-bench.ts, not here.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { cli, deriveInventory, isRoot, labLeftovers, machinesOf, onHost, testHome, type StateMachine } from '../support/lab.js';

const cluster = `t-scale-${process.pid % 1000}`;
const home = testHome();
const env = { SWARMFORM_HOME: home };
let inventory = '';
let machines: StateMachine[] = [];
const skip = isRoot ? false : 'lab tests need root';

before(() => {
  inventory = deriveInventory(home, 'inventories/lab-150.yml', cluster, '198.18.62.0/24', (t) =>
    t.replace(/name: worker-\[001:150\]/, 'name: worker-[01:20]').replace('joinConcurrency: 30', 'joinConcurrency: 9'),
  );
});

after(async () => {
  if (!isRoot) return;
  const r = await cli(['down', '--force', '-i', inventory], env);
  if (r.code !== 0) console.error(r.stderr);
  assert.deepEqual(await labLeftovers(cluster), []);
});

const manager = () => machines.find((m) => m.role === 'manager')!;

/** Pids of processes named `comm` in a named network namespace. */
function pidsIn(netns: string, comm: string): number[] {
  const ino = statSync(`/run/netns/${netns}`).ino;
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readlinkSync(`/proc/${d}/ns/net`) !== `net:[${ino}]`) continue;
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) out.push(Number(d));
    } catch {
      // ended while we looked
    }
  }
  return out;
}

test('up forms 3 managers + 20 workers, every node Ready, joins paced within the cap', { skip, timeout: 15 * 60_000 }, async () => {
  const r = await cli(['up', '--json', '-i', inventory], env);
  assert.equal(r.code, 0, `up failed:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  machines = machinesOf(home, cluster);
  assert.equal(machines.length, 23);

  const nodes = await onHost(manager(), "docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}'");
  assert.equal(nodes.code, 0, nodes.stderr);
  const lines = nodes.stdout.trim().split('\n');
  assert.equal(lines.length, 23, nodes.stdout);
  assert.ok(lines.every((l) => / Ready /.test(l)), nodes.stdout);
  assert.equal(lines.filter((l) => l.endsWith('Leader')).length, 1, nodes.stdout);
  // drainManagers: true in lab-150.yml.
  assert.equal(lines.filter((l) => l.startsWith('mgr-') && / Drain /.test(l)).length, 3, nodes.stdout);
  // ingress: false in lab-150.yml: Docker lists no ingress network, and no phantom node (no hostname) is left.
  const nets = await onHost(manager(), "docker network ls --filter driver=overlay --format '{{.Name}}'");
  assert.equal(nets.code, 0, nets.stderr);
  assert.doesNotMatch(nets.stdout, /^ingress$/m, nets.stdout);
  assert.ok(lines.every((l) => /^\S+ Ready /.test(l)), nodes.stdout);

  // Pacing: every worker joined once, and the pacer never had more than joinConcurrency (9) joins in flight. (Join
  // events start when the slot is granted but end after the engine's answer is read, so they overlap a little.)
  const events = r.stdout.split('\n').filter((l) => l.includes('"join worker"')).map((l) => JSON.parse(l) as { status: string });
  assert.equal(events.filter((e) => e.status === 'start').length, 20);
  assert.equal(events.filter((e) => e.status === 'fail').length, 0);
  const paced = /worker joins paced: peak (\d+) in flight/.exec(r.stdout);
  assert.ok(paced, 'the pacing summary is reported');
  const peak = Number(paced[1]);
  assert.ok(peak >= 2 && peak <= 9, `peak joins in flight ${peak}`);
});

test('every host runs the engine from the one shared layer, installed nowhere else', { skip }, async () => {
  // Each host's /usr/local is its own overlay mount (its own device number), but the file behind every host's dockerd
  // is the one in the shared layer (same inode): the kernel keeps one copy of its pages.
  const cache = join(process.env.SWARMFORM_LAB_ROOT ?? '/var/lib/swarmform/lab', 'cache');
  const layers = readdirSync(cache).filter((d) => d.endsWith('.layer'));
  assert.equal(layers.length >= 1, true, `no engine layer in ${cache}`);
  const layerInos = new Set(layers.map((d) => statSync(join(cache, d, 'bin', 'dockerd')).ino));
  for (const m of machines.slice(0, 6)) {
    const pids = pidsIn(`sf-${cluster}-${m.name}`, 'dockerd');
    assert.equal(pids.length, 1, `${m.name}: dockerd processes ${pids.length}`);
    const ino = statSync(`/proc/${pids[0]}/exe`).ino;
    assert.ok(layerInos.has(ino), `${m.name}: dockerd inode ${ino} is not the shared layer's (${[...layerInos].join(', ')})`);
  }
  const w = machines.find((m) => m.role === 'worker')!;
  const inside = await onHost(w, 'command -v dockerd; /usr/local/bin/dockerd --version; test -e /usr/local/lib/swarmform/dockerd-ctl && echo service');
  assert.match(inside.stdout, /^\/usr\/local\/bin\/dockerd\nDocker version 20\.10\.\d+.*\nservice$/m);
  // What a host writes under /usr/local stays its own.
  await onHost(w, 'echo mine > /usr/local/etc/scale-test');
  const other = await onHost(machines.find((m) => m.role === 'worker' && m.name !== w.name)!, 'cat /usr/local/etc/scale-test 2>/dev/null || echo absent');
  assert.equal(other.stdout.trim(), 'absent');
});

test("a host-mode published port answers on the host's own address", { skip }, async () => {
  const ps = await onHost(manager(), "docker service ps web --filter desired-state=running --format '{{.Node}}'");
  const hostsRunning = new Set(ps.stdout.trim().split('\n').filter(Boolean));
  assert.equal(hostsRunning.size > 0, true, ps.stdout);
  const on = machines.find((m) => hostsRunning.has(m.name))!;
  const off = machines.find((m) => m.role === 'worker' && !hostsRunning.has(m.name))!;
  const res = await fetch(`http://${on.privateAddress}:8080/`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  assert.match(await res.text(), /Hello from [0-9a-f]{12}/);
  // Host mode: a worker without a replica does not answer (no routing mesh), so the port is the host's own.
  await assert.rejects(fetch(`http://${off.privateAddress}:8080/`, { signal: AbortSignal.timeout(3_000) }));
});

test('the neighbour table has room for the full mesh; status answers in seconds', { skip }, async () => {
  const thresh3 = Number(readFileSync('/proc/sys/net/ipv4/neigh/default/gc_thresh3', 'utf8'));
  assert.ok(thresh3 >= 23 * 23, `gc_thresh3 ${thresh3}`);
  const t0 = performance.now();
  const s = await cli(['status', '-i', inventory], env);
  const secs = (performance.now() - t0) / 1000;
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /worker-20/);
  assert.ok(secs < 20, `status took ${secs.toFixed(1)} s`);
});
