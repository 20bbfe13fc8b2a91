/**
 * The real CLI on the simulated provider (no lab hosts, nothing sent anywhere): a first `up` with failures switched on
 * exits 3 naming the failed hosts grouped by cause, a second `up` finishes them, a third changes nothing, `status
 * --json` lists every node, `down` removes the simulated world. Results are checked against the simulated hosts'
 * own view (the world file: what each host has installed and the swarm's node records), not swarmform's state.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cli, ROOT, testHome } from '../support/lab.js';

const home = testHome();
const env = { SWARMFORM_HOME: home };
const inventory = join(ROOT, 'inventories/sim-small.yml');
const worldFile = join(home, 'simsmall', 'sim-world.json');

after(async () => {
  await cli(['down', '-i', inventory], env);
  rmSync(home, { recursive: true, force: true });
});

interface World {
  hosts: Record<string, { installed: boolean; running: boolean; firewall?: string; swarm: { state: string; nodeId?: string } }>;
  swarm: { nodes: Record<string, { host: string; role: string; state: string; availability: string; labels: Record<string, string> }> };
}
const world = (): World => JSON.parse(readFileSync(worldFile, 'utf8')) as World;

test('sim: failures are reported grouped by cause with exit 3, and a re-run finishes them', async () => {
  const first = await cli(['up', '-i', inventory], env);
  assert.equal(first.code, 3, first.stderr.slice(-3000));
  const lines = first.stderr.split('\n');
  const errorAt = lines.findIndex((l) => l.startsWith('error: '));
  assert.match(lines[errorAt]!, /^error: (\d+) host\(s\) failed; the rest are done and recorded\. Run `up` again to finish them\.$/);
  const failedCount = Number(/^error: (\d+)/.exec(lines[errorAt]!)![1]);
  const groups = lines.slice(errorAt + 1).filter((l) => /^ {2}\d+ hosts?: /.test(l));
  const causes = groups.map((g) => g.replace(/ \([^()]*\)$/, ''));
  assert.ok(causes.some((c) => /hosts?: create host: 422 Unprocessable Entity: no capacity/.test(c)), causes.join('\n'));
  assert.ok(causes.some((c) => /hosts?: install engine: command failed \(exit 100\): E: Failed to fetch .* 503 {2}Service Unavailable \| E: Unable to fetch/.test(c)), causes.join('\n'));
  // mgr-N when the failed joins went through different managers (which one is the pacer's choice), else its name.
  assert.ok(causes.some((c) => /hosts?: join worker: join via mgr-(N|\d+) failed: rpc error: code = Unavailable/.test(c)), causes.join('\n'));
  // Each failed host is listed once, under one cause, and the counts add up.
  const listed = groups.flatMap((g) => /\(([^()]*)\)$/.exec(g)![1]!.split(', '));
  assert.equal(new Set(listed).size, listed.length);
  assert.equal(groups.reduce((n, g) => n + Number(/^ {2}(\d+)/.exec(g)![1]), 0), failedCount);

  // The simulated hosts agree: the failed ones are missing, not installed, or not in the swarm; the rest are done.
  let w = world();
  const missing = ['mgr-1', 'mgr-2', 'mgr-3', ...Array.from({ length: 60 }, (_, i) => `worker-${String(i + 1).padStart(2, '0')}`)].filter((n) => !w.hosts[n]);
  const notInstalled = Object.entries(w.hosts).filter(([, h]) => !h.installed).map(([n]) => n);
  const notJoined = Object.entries(w.hosts).filter(([, h]) => h.installed && h.swarm.state !== 'active').map(([n]) => n);
  assert.ok(missing.length > 0 && notInstalled.length > 0 && notJoined.length > 0, JSON.stringify({ missing, notInstalled, notJoined }));
  assert.deepEqual([...missing, ...notInstalled, ...notJoined].sort(), [...listed].sort());

  // Second run: finishes them, with --json events one line each.
  const second = await cli(['up', '--json', '-i', inventory], env);
  assert.equal(second.code, 0, second.stderr.slice(-3000));
  const events = second.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; changed?: number });
  assert.ok(events.length > 63, 'an event per host step');
  assert.equal(events.at(-1)!.type, 'result');
  assert.ok(events.at(-1)!.changed! > 0);
  w = world();
  assert.equal(Object.keys(w.hosts).length, 63);
  for (const [name, h] of Object.entries(w.hosts)) {
    assert.ok(h.installed && h.running && h.firewall, `${name} bootstrapped`);
    assert.equal(h.swarm.state, 'active', `${name} in the swarm`);
  }
  const nodes = Object.values(w.swarm.nodes).filter((n) => n.state === 'ready');
  assert.equal(nodes.length, 63);
  assert.equal(new Set(nodes.map((n) => n.host)).size, 63, 'no duplicate node for a host');
  assert.deepEqual(nodes.filter((n) => n.role === 'manager').map((n) => n.availability), ['drain', 'drain', 'drain']);
  assert.ok(nodes.every((n) => n.labels['swarmform.host'] === n.host));

  // status --json is complete; plain status summarises.
  const status = await cli(['status', '--json', '-i', inventory], env);
  assert.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout) as { nodes: { state: string }[]; services: { running: number; desired: number }[] };
  assert.equal(s.nodes.length, 63);
  assert.ok(s.nodes.every((n) => n.state === 'Ready'));
  assert.deepEqual(s.services.map((x) => [x.running, x.desired]), [[20, 20]]);
  const plain = await cli(['status', '-i', inventory], env);
  assert.match(plain.stdout, /Nodes: 63 \(/);
  assert.match(plain.stdout, /60 Ready worker\(s\) not shown/);

  // Third run: nothing left to do.
  const third = await cli(['up', '-i', inventory], env);
  assert.equal(third.code, 0, third.stderr.slice(-2000));
  assert.match(third.stdout, /Nothing to change/);

  const down = await cli(['down', '-i', inventory], env);
  assert.equal(down.code, 0, down.stderr);
  assert.equal(existsSync(worldFile), false);
});
