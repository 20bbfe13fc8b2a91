/**
 * `raft replace` as the simulated engines saw it: a manager whose engine died (node Down, unreachable) is demoted and
 * removed through a live manager, its stale swarm state cleared over SSH, and a Ready worker promoted, so the swarm
 * ends with 3 reachable managers again; then `exec managers` and `status` go by the roles in force. The real CLI runs
 * in this process on the sim provider (test/support/orchestration.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seen, simCluster } from '../support/orchestration.js';

test('raft replace: the dead manager demoted and removed, its swarm state cleared, a worker promoted; 3 reachable managers', async () => {
  const sim = simCluster({ managers: 3, workers: 2 });
  const r = await sim.cli(['up']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const w = sim.world();
  const c = w.swarm!;
  // A manager that is not the leader loses its engine, as the simulation's managerLossAfter fault does.
  const dead = Object.values(c.nodes).find((n) => n.role === 'manager' && !n.leader)!;
  w.host(dead.host)!.running = false;
  dead.state = 'down';

  const mark = seen.length;
  const rep = await sim.cli(['raft', 'replace', dead.host, '--json']);
  assert.equal(rep.code, 0, rep.stdout.slice(-3000) + rep.stderr.slice(-2000));
  const calls = seen.slice(mark);
  const result = JSON.parse(rep.stdout.trim().split('\n').at(-1)!) as { data?: { replacement: string; how: string } } & { replacement?: string; how?: string };
  const out = result.data ?? result;
  assert.equal(out.how, 'promoted');
  assert.match(out.replacement!, /^wrk-/);

  // What the engines saw, in order: the dead node demoted, then removed, then the worker promoted.
  const writes = calls.filter((s) => s.kind === 'api' && (/^POST \/nodes\/[^/]+\/update$/.test(s.what) || /^DELETE \/nodes\//.test(s.what)));
  const demote = writes.findIndex((s) => s.what === `POST /nodes/${dead.id}/update` && (s.body as { Role?: string }).Role === 'worker');
  const remove = writes.findIndex((s) => s.what.startsWith(`DELETE /nodes/${dead.id}`));
  const promote = writes.findIndex((s) => (s.body as { Role?: string } | undefined)?.Role === 'manager');
  assert.ok(demote >= 0 && remove > demote && promote > remove, JSON.stringify(writes.map((s) => `${s.host} ${s.what} ${JSON.stringify(s.body ?? '')}`)));
  assert.ok(calls.some((s) => s.host === dead.host && s.kind === 'run' && s.what.includes('rm -rf /var/lib/docker/swarm')), 'the dead host\'s swarm state is cleared');

  // The swarm itself: the dead node gone, 3 managers, all ready, one leader, the replacement among them.
  assert.equal(c.nodes[dead.id], undefined);
  const managers = Object.values(c.nodes).filter((n) => n.role === 'manager');
  assert.deepEqual(managers.map((n) => n.state), ['ready', 'ready', 'ready']);
  assert.equal(managers.filter((n) => n.leader).length, 1);
  assert.ok(managers.some((n) => n.host === out.replacement));

  // Every command goes by the roles in force now: exec managers runs on the new set, not on the group `managers`.
  const ex = await sim.cli(['exec', 'managers', '--json', '--', 'hostname']);
  assert.equal(ex.code, 0, ex.stdout.slice(-2000) + ex.stderr.slice(-2000));
  const hosts = new Set([...ex.stdout.matchAll(/"host":"([^"]+)"/g)].map((m) => m[1]));
  assert.ok(hosts.has(out.replacement!), `exec managers reached ${[...hosts]}`);
  assert.ok(!hosts.has(dead.host), `exec managers skipped the replaced ${dead.host}: ${[...hosts]}`);
});
