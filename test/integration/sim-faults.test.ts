/**
 * Faults at scale by simulation (issue 14): the real CLI on 4,700 simulated hosts (nothing sent anywhere) with
 * 2 % of hosts unreachable over SSH for the whole run, 1 % of joins answered "Timeout was reached" that complete in
 * the background, a manager whose engine dies after 1,500 worker joins, and a provider that throttles (its token
 * bucket holds one call, so concurrent creates get HTTP 429). The run must end with exit 3, name the unreachable
 * hosts and the lost manager (and no other host), and leave every other host a Ready node; a plain re-run then
 * finishes: every host one Ready node, 3 managers. Checked in the simulated hosts' own records (the world file).
 * The time bound (1.5x the clean run) is a benchmark: `node --import tsx bench/sim-faults-bench.ts`.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cli, ROOT, testHome } from '../support/lab.js';
import { faultyInventory } from '../support/sim-faults.js';

const home = testHome();
const env = { SWARMFORM_HOME: home };
const cluster = 't-simfaults';
const inventory = join(home, `${cluster}.yml`);
writeFileSync(inventory, faultyInventory(readFileSync(join(ROOT, 'inventories/sim-swarm3k.yml'), 'utf8'), cluster));

after(async () => {
  await cli(['down', '-i', inventory], env);
});

interface World {
  hosts: Record<string, { running: boolean; faults: string[] }>;
  swarm: { nodes: Record<string, { host: string; state: string; role: string }> };
}
const world = () => JSON.parse(readFileSync(join(home, cluster, 'sim-world.json'), 'utf8')) as World;

test('sim 4,700 hosts with SSH failures, join timeouts, a lost manager and throttling: exit 3 naming the hosts; a re-run finishes', { timeout: 15 * 60_000 }, async (t) => {
  const first = await cli(['up', '-i', inventory, '--json'], env);
  const out = first.stdout + first.stderr;
  assert.equal(first.code, 3, first.stderr.slice(-3000));
  const w = world();
  const unreachable = Object.entries(w.hosts).filter(([, h]) => h.faults.includes('ssh-down')).map(([name]) => name);
  const lost = Object.values(w.swarm.nodes).filter((n) => n.role === 'manager' && n.state === 'down').map((n) => n.host);
  const timedOut = Object.values(w.hosts).filter((h) => h.faults.includes('join-timeout')).length;
  t.diagnostic(`unreachable ${unreachable.length}, lost managers ${lost.join(', ')}, join timeouts ${timedOut}`);
  assert.ok(unreachable.length >= 60 && unreachable.length <= 130, `about 2 % unreachable: ${unreachable.length}`);
  assert.equal(lost.length, 1, 'one manager lost its engine');
  assert.ok(timedOut >= 20, `about 1 % of joins timed out: ${timedOut}`);

  // The failures as the run reports them (the --json result) are exactly those hosts.
  const result = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type?: string; failures?: { host: string; step: string; message: string }[] }).find((r) => Array.isArray(r.failures));
  assert.ok(result, `a JSON result with failures: ${first.stdout.slice(-1500)}`);
  const failedHosts = new Set(result.failures!.map((f) => f.host));
  assert.deepEqual([...failedHosts].sort(), [...unreachable, ...lost].sort(), 'exactly the unreachable hosts and the lost manager failed');
  const lostFailure = result.failures!.find((f) => f.host === lost[0])!;
  assert.match(lostFailure.message, /engine does not answer/, lostFailure.message);
  // Every other host is a Ready node already.
  const readyHosts = new Set(Object.values(w.swarm.nodes).filter((n) => n.state === 'ready').map((n) => n.host));
  assert.equal(readyHosts.size, 4700 - unreachable.length - 1);

  const again = await cli(['up', '-i', inventory], env);
  assert.equal(again.code, 0, again.stderr.slice(-3000));
  const w2 = world();
  const nodes = Object.values(w2.swarm.nodes);
  assert.equal(Object.keys(w2.hosts).length, 4700, 'one machine per inventory host');
  assert.equal(nodes.length, 4700, 'one node per host');
  assert.equal(new Set(nodes.map((n) => n.host)).size, 4700, 'no duplicate node');
  assert.ok(nodes.every((n) => n.state === 'ready'), `every node Ready: ${nodes.filter((n) => n.state !== 'ready').map((n) => n.host).join(', ')}`);
  assert.equal(nodes.filter((n) => n.role === 'manager').length, 3, '3 managers');
});
