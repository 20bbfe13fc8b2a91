/**
 * The `ssh` provider on machines that already exist (lab hosts stand in for bare metal): `up` installs the engine from
 * the inventory's bundle, forms the swarm and runs a global service; `down` leaves the swarm and removes what
 * swarmform added, and the machines themselves stay. Checked with Docker and iptables on the hosts.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Machine } from '../../src/base/machine.js';
import { labProvider } from '../../src/providers/lab/index.js';
import { cleanupLabClusters, labHost, labTestContext } from '../support/lab-cleanup.js';
import { cli, isRoot, lastJson, onHost, testHome } from '../support/lab.js';

const skip = isRoot ? false : 'lab tests need root';
const ctx = labTestContext('198.18.12.0/24', 't-metal');
const home = testHome();
const env = { SWARMFORM_HOME: home };
const inventory = join(home, 'metal.yml');
let hosts: Machine[] = [];

before(async () => {
  if (!isRoot) return;
  await labProvider.preflight(ctx);
  const made = await labProvider.create([labHost('metal-1', 'manager'), labHost('metal-2', 'worker')], ctx);
  assert.deepEqual(made.failed, []);
  hosts = made.done.sort((a, b) => a.name.localeCompare(b.name));
  const { bundle, images } = await labProvider.artifacts(ctx);
  const entry = (m: Machine) => `{ name: ${m.name}, address: ${m.ssh.host}, ssh: { key: ${m.ssh.keyPath} } }`;
  writeFileSync(
    inventory,
    `cluster: ${ctx.inventory.cluster}-m
provider: ssh
swarm:
  install: bundle
  bundle: ${bundle}
groups:
  managers: { role: manager, hosts: [ ${entry(hosts[0]!)} ] }
  workers: { role: worker, hosts: [ ${entry(hosts[1]!)} ], labels: { disk: ssd } }
images:
  - { file: ${images![0]!.file}, import: true, tag: swarmform/busybox:latest }
workloads:
  services:
    - name: agent
      image: swarmform/busybox:latest
      mode: global
      command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
`,
  );
});

after(async () => {
  if (!isRoot) return;
  await cli(['down', '-i', inventory], env);
  await cleanupLabClusters();
});

const ssh = (m: Machine, cmd: string) => onHost({ name: m.name, role: m.role, privateAddress: m.privateAddress, ssh: m.ssh }, cmd);

test('up on existing machines installs the engine, forms the swarm and runs a global service', { skip, timeout: 10 * 60_000 }, async () => {
  const r = await cli(['up', '--json', '-i', inventory], env);
  assert.equal(r.code, 0, `${r.stdout.slice(-3000)}\n${r.stderr}`);
  assert.ok(lastJson(r.stdout, 'result'));
  const [mgr, worker] = hosts as [Machine, Machine];
  const nodes = await ssh(mgr, "docker node ls --format '{{.Hostname}} {{.Status}}'");
  assert.deepEqual(nodes.stdout.trim().split('\n').sort(), ['metal-1 Ready', 'metal-2 Ready']);
  const labels = await ssh(mgr, "docker node inspect metal-2 --format '{{index .Spec.Labels \"disk\"}}'");
  assert.equal(labels.stdout.trim(), 'ssd');
  const tasks = await ssh(mgr, "docker service ps agent --filter desired-state=running --format '{{.CurrentState}}'");
  assert.equal(tasks.stdout.trim().split('\n').filter((l) => l.startsWith('Running')).length, 2, tasks.stdout);
  assert.match((await ssh(worker, 'iptables -S SWARMFORM')).stdout, /--dports 2377,7946 -j ACCEPT/);
});

test('down leaves the swarm and removes what swarmform added, and the machines stay', { skip, timeout: 5 * 60_000 }, async () => {
  const r = await cli(['down', '-i', inventory], env);
  assert.equal(r.code, 0, r.stderr);
  for (const m of hosts) {
    const alive = await ssh(m, 'hostname');
    assert.equal(alive.stdout.trim(), m.name, 'the machine is still there');
    assert.notEqual((await ssh(m, 'iptables -S SWARMFORM')).code, 0, `${m.name}: SWARMFORM chain removed`);
    assert.equal((await ssh(m, 'command -v dockerd || echo none')).stdout.trim(), 'none', `${m.name}: bundle engine removed`);
    // The PID namespace is the machine's, so look at this host's own pid file (its /run is its own).
    const engine = await ssh(m, 'if [ -f /run/docker.pid ] && kill -0 "$(cat /run/docker.pid)" 2>/dev/null; then echo running; else echo stopped; fi');
    assert.equal(engine.stdout.trim(), 'stopped', `${m.name}: engine stopped`);
  }
});
