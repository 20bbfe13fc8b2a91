/**
 * The main job end to end on real lab hosts: `up` on the default lab inventory (renamed so it cannot collide with a
 * user's cluster), checked with Docker itself on the hosts; a second `up` changes nothing; `down` leaves nothing.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cli, deriveInventory, isRoot, labLeftovers, lastJson, machinesOf, onHost, testHome, type StateMachine } from '../support/lab.js';

const cluster = `t-up-${process.pid % 10000}`;
const home = testHome();
const env = { SWARMFORM_HOME: home };
let inventory = '';
let machines: StateMachine[] = [];
const skip = isRoot ? false : 'lab tests need root';

before(() => {
  inventory = deriveInventory(home, 'inventories/lab.yml', cluster, '198.18.10.0/24');
});

after(async () => {
  if (!isRoot) return;
  // Always clean up, also when an assertion failed half way.
  const r = await cli(['down', '--force', '-i', inventory], env);
  if (r.code !== 0) console.error(r.stderr);
  assert.deepEqual(await labLeftovers(cluster), []);
});

const manager = () => machines.find((m) => m.role === 'manager')!;

test('up forms 3 managers and 3 workers and runs the demo service', { skip, timeout: 15 * 60_000 }, async () => {
  const r = await cli(['up', '-i', inventory], env);
  assert.equal(r.code, 0, `up failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /Reach the workload at:\n\s+web: http:\/\/198\.18\.10\.\d+:8080\//);
  machines = machinesOf(home, cluster);
  assert.equal(machines.length, 6);

  // Docker itself, on a manager: 6 nodes Ready, one Leader and two Reachable managers.
  const nodes = await onHost(manager(), "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'");
  assert.equal(nodes.code, 0, nodes.stderr);
  const lines = nodes.stdout.trim().split('\n').sort();
  assert.equal(lines.length, 6, nodes.stdout);
  assert.ok(lines.every((l) => / Ready/.test(l)), nodes.stdout);
  assert.equal(lines.filter((l) => l.endsWith('Leader')).length, 1, nodes.stdout);
  assert.equal(lines.filter((l) => l.endsWith('Reachable')).length, 2, nodes.stdout);
  assert.deepEqual(lines.map((l) => l.split(' ')[0]), ['mgr-1', 'mgr-2', 'mgr-3', 'worker-1', 'worker-2', 'worker-3']);

  // The demo service: every replica running, and it answers HTTP on a lab host's address.
  const ps = await onHost(manager(), "docker service ps web --filter desired-state=running --format '{{.CurrentState}} {{.Node}}'");
  const running = ps.stdout.trim().split('\n').filter((l) => l.startsWith('Running'));
  assert.equal(running.length, 3, ps.stdout);
  const url = /web: (http:\/\/[\d.]+:8080\/)/.exec(r.stdout)![1]!;
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  assert.match(await res.text(), /Hello from [0-9a-f]{12}/);
});

test('bootstrap installed the engine and opened the swarm ports to members only', { skip }, async () => {
  const worker = machines.find((m) => m.role === 'worker')!;
  const which = await onHost(worker, 'command -v dockerd; cat /usr/local/lib/swarmform/engine.sha256');
  assert.match(which.stdout, /^\/usr\/local\/bin\/dockerd\n[0-9a-f]{64}/);
  const rules = await onHost(worker, 'iptables -S SWARMFORM');
  assert.match(rules.stdout, /-A SWARMFORM -s 198\.18\.10\.\d+\/\d+ -p tcp -m multiport --dports 2377,7946 -j ACCEPT/);
  assert.match(rules.stdout, /-A SWARMFORM -p udp -m multiport --dports 7946,4789 -j DROP/);
  assert.doesNotMatch(rules.stdout, /0\.0\.0\.0\/0.*ACCEPT/);
});

test('a second up changes nothing and says so', { skip, timeout: 5 * 60_000 }, async () => {
  const before = await onHost(manager(), "docker node ls -q | sort; docker service inspect web --format '{{.Version.Index}}'");
  const text = await cli(['up', '-i', inventory], env);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /Nothing to change/);
  const json = await cli(['up', '--json', '-i', inventory], env);
  assert.equal(json.code, 0, json.stderr);
  const result = lastJson<{ changed: number }>(json.stdout, 'result');
  assert.equal(result?.changed, 0);
  for (const line of json.stdout.trim().split('\n')) JSON.parse(line); // every line is JSON
  const afterRun = await onHost(manager(), "docker node ls -q | sort; docker service inspect web --format '{{.Version.Index}}'");
  assert.equal(afterRun.stdout, before.stdout, 'node ids and service version unchanged');
});

test('status, ssh and exec', { skip }, async () => {
  const s = await cli(['status', '--json', '-i', inventory], env);
  assert.equal(s.code, 0, s.stderr);
  const st = JSON.parse(s.stdout) as {
    cluster: string;
    nodes: { name: string; role: string; state: string; availability: string; managerStatus: string; address: string }[];
    services: { name: string; mode: string; running: number; desired: number }[];
  };
  assert.equal(st.cluster, cluster);
  assert.equal(st.nodes.length, 6);
  assert.ok(st.nodes.every((n) => n.state === 'Ready' && /^198\.18\.10\./.test(n.address)));
  assert.deepEqual(st.services.map((x) => [x.name, x.mode, x.running, x.desired]), [['web', 'replicated', 3, 3]]);

  const table = await cli(['status', '-i', inventory], env);
  assert.match(table.stdout, /HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS/);

  const ssh = await cli(['ssh', 'mgr-1', '-i', inventory, '--', 'docker node ls --format "{{.Hostname}}" | wc -l; exit 7'], env);
  assert.equal(ssh.code, 7);
  assert.equal(ssh.stdout.trim(), '6');

  const ex = await cli(['exec', 'workers', '-i', inventory, '--', 'hostname'], env);
  assert.equal(ex.code, 0, ex.stderr);
  assert.deepEqual(ex.stdout.trim().split('\n').sort(), ['worker-1 | worker-1', 'worker-2 | worker-2', 'worker-3 | worker-3']);
  const bad = await cli(['exec', 'managers', '-i', inventory, '--', 'test $(hostname) = mgr-2'], env);
  assert.equal(bad.code, 1);
});

test('down removes hosts, rules and state', { skip, timeout: 5 * 60_000 }, async () => {
  const r = await cli(['down', '-i', inventory], env);
  assert.equal(r.code, 0, r.stderr);
  // No namespace, rule, directory or process of the cluster is left (hosts are not probed over the network:
  // with the bridge gone their addresses would route off this machine).
  assert.deepEqual(await labLeftovers(cluster), []);
  assert.deepEqual(machinesOf(home, cluster), []);
});
