/**
 * The firewall step is what lets hosts join: with it turned off, the lab's fresh hosts drop the swarm ports and a
 * worker's join fails naming the host and the blocked port. Then a crashed run's leftovers (state lost) are found and
 * removed by `down --force`.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cli, isRoot, labLeftovers, lastJson, machinesOf, onHost, testHome } from '../support/lab.js';
import { writeFileSync } from 'node:fs';

const cluster = `t-fw-${process.pid % 10000}`;
const home = testHome();
const env = { SWARMFORM_HOME: home };
const inventory = join(home, 'fw.yml');
writeFileSync(
  inventory,
  `cluster: ${cluster}
providers:
  lab: { subnet: 198.18.11.0/24 }
swarm:
  firewall: false
groups:
  managers: { role: manager, name: "mgr-[1:1]" }
  workers: { role: worker, name: "worker-[1:1]" }
`,
);
const skip = isRoot ? false : 'lab tests need root';

after(async () => {
  if (!isRoot) return;
  await cli(['down', '--force', '-i', inventory], env);
  assert.deepEqual(await labLeftovers(cluster), []);
});

test('without the firewall step a worker cannot join, and the error names the host and the port', { skip, timeout: 10 * 60_000 }, async () => {
  const r = await cli(['up', '--json', '-i', inventory], env);
  assert.equal(r.code, 3, `expected a partial failure:\n${r.stdout}\n${r.stderr}`);
  const err = lastJson<{ failures: { host: string; step: string; message: string }[] }>(r.stdout, 'error');
  const failure = err?.failures.find((f) => f.host === 'worker-1');
  assert.ok(failure, r.stdout);
  assert.match(failure.message, /worker-1: join worker: cannot reach mgr-1 \(198\.18\.11\.\d+\) on port 2377\/tcp/);
  assert.match(r.stderr, /worker-1: .*2377\/tcp/);

  // Docker itself agrees: the manager knows only itself, and the worker is in no swarm.
  const [mgr, worker] = ['mgr-1', 'worker-1'].map((n) => machinesOf(home, cluster).find((m) => m.name === n)!);
  const nodes = await onHost(mgr!, "docker node ls --format '{{.Hostname}}'");
  assert.equal(nodes.stdout.trim(), 'mgr-1');
  const info = await onHost(worker!, "docker info --format '{{.Swarm.LocalNodeState}}'");
  assert.equal(info.stdout.trim(), 'inactive');
});

test('down --force removes the hosts of a run whose state was lost', { skip, timeout: 5 * 60_000 }, async () => {
  assert.notDeepEqual(await labLeftovers(cluster), []);
  rmSync(join(home, cluster), { recursive: true, force: true });
  const r = await cli(['down', '--force', '-i', inventory], env);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await labLeftovers(cluster), []);
});
