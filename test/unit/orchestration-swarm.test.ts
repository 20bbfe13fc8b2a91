/**
 * `up` and forming the swarm, as the simulated engines saw it: one `swarm init` on a manager before any join, the
 * other managers joined one at a time with the manager token (each confirmed by the leader before the next), the
 * workers only then, with the worker token, through managers; the membership the simulated swarm ends with; the
 * drain of managers; and a second `up` that changes nothing on any host. The real CLI runs in this process on the sim
 * provider (test/support/orchestration.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seen, simCluster, steps, type Seen } from '../support/orchestration.js';

const MANAGERS = ['mgr-1', 'mgr-2', 'mgr-3'];
const WORKERS = ['wrk-1', 'wrk-2', 'wrk-3', 'wrk-4'];
const isSwarmWrite = (s: Seen) => s.kind === 'api' && /^POST \/swarm\/(init|join|leave)$/.test(s.what);

test('up on 3 managers + 4 workers: init once, managers one at a time, then workers; the swarm ends with 3 managers and 4 workers', async () => {
  const sim = simCluster({ managers: 3, workers: 4 });
  const mark = seen.length;
  const r = await sim.cli(['up']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  assert.match(r.stdout, /is up in/);
  const w = sim.world();
  const c = w.swarm!;
  const calls = seen.slice(mark);
  const writes = calls.filter(isSwarmWrite);

  // Exactly one init, on a manager, and it comes before every join.
  const inits = writes.filter((s) => s.what === 'POST /swarm/init');
  assert.equal(inits.length, 1, JSON.stringify(writes.map((s) => `${s.host} ${s.what}`)));
  const lead = inits[0]!.host;
  assert.ok(MANAGERS.includes(lead), `init on a manager, got ${lead}`);
  assert.equal(writes[0], inits[0], 'init is the first swarm change');
  const init = inits[0]!.body as { AdvertiseAddr: string; ListenAddr: string };
  assert.equal(init.AdvertiseAddr, `${w.host(lead)!.address}:2377`, 'advertises the lead host address');

  // Then the two other managers, each with the manager token, through the lead; then the workers.
  const joins = writes.filter((s) => s.what === 'POST /swarm/join');
  assert.equal(joins.length, 6);
  assert.deepEqual(joins.slice(0, 2).map((s) => s.host).sort(), MANAGERS.filter((m) => m !== lead).sort(), 'managers join before any worker');
  assert.deepEqual(joins.slice(2).map((s) => s.host).sort(), WORKERS);
  for (const j of joins.slice(0, 2)) {
    const b = j.body as { JoinToken: string; RemoteAddrs: string[] };
    assert.equal(b.JoinToken, c.tokens.manager, `${j.host} joins with the manager token`);
    assert.deepEqual(b.RemoteAddrs, [`${w.host(lead)!.address}:2377`], `${j.host} joins through the lead`);
  }
  const managerAddrs = new Set(MANAGERS.map((m) => `${w.host(m)!.address}:2377`));
  for (const j of joins.slice(2)) {
    const b = j.body as { JoinToken: string; RemoteAddrs: string[] };
    assert.equal(b.JoinToken, c.tokens.worker, `${j.host} joins with the worker token`);
    assert.ok(b.RemoteAddrs.length > 0 && b.RemoteAddrs.every((a) => managerAddrs.has(a)), `${j.host} joins through managers: ${b.RemoteAddrs}`);
  }
  // One at a time: the lead is asked about the first joined manager's node before the second manager joins.
  const [m1, m2] = joins;
  const i1 = calls.indexOf(m1!);
  const i2 = calls.indexOf(m2!);
  assert.ok(calls.slice(i1, i2).some((s) => s.host === lead && /^GET \/nodes\/[^/]+$/.test(s.what)), 'the first manager join is confirmed by the leader before the second starts');
  // Every host was bootstrapped (engine up) before the first swarm change reached any host.
  const firstWrite = calls.indexOf(writes[0]!);
  for (const h of [...MANAGERS, ...WORKERS]) assert.ok(calls.slice(0, firstWrite).some((s) => s.host === h && s.what === 'GET /version'), `${h} bootstrapped before init`);

  // What the swarm ends with: one node per host, 3 managers (one leader, all reachable), 4 workers, all Ready, labelled.
  const nodes = Object.values(c.nodes);
  assert.deepEqual(nodes.map((n) => n.host).sort(), [...MANAGERS, ...WORKERS].sort(), 'one node per host');
  assert.deepEqual(nodes.filter((n) => n.role === 'manager').map((n) => n.host).sort(), MANAGERS);
  assert.deepEqual(nodes.filter((n) => n.role === 'worker').map((n) => n.host).sort(), WORKERS);
  assert.ok(nodes.every((n) => n.state === 'ready' && n.availability === 'active'));
  assert.deepEqual(nodes.filter((n) => n.leader).map((n) => n.host), [lead]);
  for (const n of nodes) assert.equal(n.labels['swarmform.host'], n.host);
  for (const h of [...MANAGERS, ...WORKERS]) {
    const sw = w.host(h)!.swarm;
    assert.equal(sw.state, 'active', h);
    assert.equal(sw.clusterId, c.id, `${h} in the one swarm`);
    assert.equal(Boolean(sw.manager), MANAGERS.includes(h), `${h} role as its engine sees it`);
  }
});

test('a second up changes nothing on any host: no install, no file, no swarm or node write', async () => {
  const sim = simCluster({ managers: 3, workers: 2 });
  assert.equal((await sim.cli(['up'])).code, 0);
  const before = JSON.stringify(sim.world().swarm!.nodes);
  const mark = seen.length;
  const r = await sim.cli(['up']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  assert.match(r.stdout, /Nothing to change/);
  const calls = seen.slice(mark);
  assert.deepEqual(calls.filter((s) => s.kind === 'put' || (s.kind === 'api' && s.what.startsWith('POST '))).map((s) => `${s.host} ${s.what}`), []);
  assert.ok(!calls.some((s) => s.kind === 'run' && /apt-get|systemctl (start|restart|stop) docker/.test(s.what)));
  assert.equal(JSON.stringify(sim.world().swarm!.nodes), before, 'node records unchanged (versions included)');
});

test('swarm.drainManagers: the managers end drained, the workers active', async () => {
  const sim = simCluster({ managers: 3, workers: 2, swarm: 'drainManagers: true\njoinConcurrency: 4' });
  assert.equal((await sim.cli(['up'])).code, 0);
  const nodes = Object.values(sim.world().swarm!.nodes);
  assert.deepEqual(nodes.filter((n) => n.role === 'manager').map((n) => n.availability), ['drain', 'drain', 'drain']);
  assert.deepEqual(nodes.filter((n) => n.role === 'worker').map((n) => n.availability), ['active', 'active']);
});

test('the swarm phase on bootstrapped hosts: the same order (init, managers, workers), and no bootstrap change', async () => {
  const sim = simCluster({ managers: 3, workers: 2 });
  assert.equal((await sim.cli(['bootstrap'])).code, 0);
  assert.equal(sim.world().swarm, undefined);
  const mark = seen.length;
  assert.equal((await sim.cli(['swarm'])).code, 0);
  const calls = seen.slice(mark);
  const order = calls.filter(isSwarmWrite).map((s) => (s.what.endsWith('init') ? 'init' : MANAGERS.includes(s.host) ? 'manager' : 'worker'));
  assert.deepEqual(order, ['init', 'manager', 'manager', 'worker', 'worker']);
  assert.ok(!calls.some((s) => s.kind === 'put' || (s.kind === 'run' && /apt-get|systemctl (start|restart) docker/.test(s.what))));
  assert.equal(Object.values(sim.world().swarm!.nodes).filter((n) => n.role === 'manager').length, 3);
  // A worker saw its own join and the checks before it, nothing else of the swarm phase.
  assert.deepEqual(steps(sim.on('wrk-1', mark)).filter((l) => l.startsWith('POST')), ['POST /swarm/join']);
});
