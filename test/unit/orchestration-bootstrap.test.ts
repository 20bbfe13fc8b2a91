/**
 * Bootstrapping hosts, as the simulated hosts saw it: the scripts, files and Engine API calls each host gets, in order,
 * on a fresh host (facts, engine install, daemon.json, firewall, engine start), on a re-run (observe only), after a
 * daemon.json change (rewritten, engine restarted, nothing reinstalled) and with a stopped engine (started again). The
 * real CLI runs in this process on the sim provider (test/support/orchestration.ts); a run takes a fraction of a second.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { seen, simCluster, steps, type Seen } from '../support/orchestration.js';

const HOSTS = ['mgr-1', 'wrk-1', 'wrk-2'];
/** What a host saw before the swarm phase's first look at it (`GET /info`): the bootstrap. */
const bootstrapPart = (list: Seen[]): Seen[] => list.slice(0, list.findIndex((s) => s.what === 'GET /info'));

/** A fresh host, every step of its bootstrap, in this order. */
const FRESH = [
  'facts',
  'install engine',
  'which dockerd',
  'read /etc/docker/daemon.json',
  'mkdir',
  'put /etc/docker/daemon.json',
  'firewall read',
  'read /etc/swarmform/firewall.sh',
  'mkdir',
  'put /etc/swarmform/firewall.sh',
  'put /etc/systemd/system/swarmform-firewall.service',
  'enable unit',
  'firewall apply',
  'firewall read',
  'systemctl restart docker',
  'GET /_ping',
  'GET /version',
];

test('bootstrap (phase 2 only): every fresh host gets facts, install, daemon.json, firewall, engine start, in that order, and no swarm', async () => {
  const sim = simCluster({ managers: 1, workers: 2 });
  const r = await sim.cli(['bootstrap']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const w = sim.world();
  for (const h of HOSTS) {
    assert.deepEqual(steps(sim.on(h)), FRESH, `${h}: ${JSON.stringify(steps(sim.on(h)))}`);
    assert.ok(sim.on(h).every((s) => !/^POST \/swarm/.test(s.what)), `${h}: no swarm call in the bootstrap phase`);
    const host = w.host(h)!;
    assert.equal(host.installed, true, `${h} installed`);
    assert.equal(host.running, true, `${h} engine running`);
    assert.match(host.firewall ?? '', /^-N SWARMFORM\n-A SWARMFORM/, `${h} firewall chain loaded`);
    assert.equal(host.swarm.state, 'inactive', `${h} not in a swarm after bootstrap`);
    const daemon = JSON.parse(host.files['/etc/docker/daemon.json']!) as Record<string, unknown>;
    assert.equal(daemon['log-driver'], 'json-file');
    assert.deepEqual(daemon['log-opts'], { 'max-size': '10m', 'max-file': '3' });
    assert.match(host.files['/etc/swarmform/firewall.sh'] ?? '', /iptables/);
    assert.match(host.files['/etc/systemd/system/swarmform-firewall.service'] ?? '', /firewall\.sh/);
  }
  // The firewall script opens the swarm ports (2377 managers, 7946 gossip, 4789 overlay) to the members' addresses.
  const fw = w.host('wrk-1')!.files['/etc/swarmform/firewall.sh']!;
  for (const port of ['2377', '7946', '4789']) assert.match(fw, new RegExp(port), `firewall script mentions ${port}`);
  assert.equal(w.swarm, undefined, 'no swarm exists yet');
});

test('up after bootstrap: the bootstrap only observes (no install, no file written, no engine restart)', async () => {
  const sim = simCluster({ managers: 1, workers: 2 });
  assert.equal((await sim.cli(['bootstrap'])).code, 0);
  const mark = seen.length;
  const r = await sim.cli(['up']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  for (const h of HOSTS) {
    const boot = bootstrapPart(sim.on(h, mark));
    // Re-applying the unchanged firewall script is part of the observation: its listing before and after is compared.
    assert.deepEqual(steps(boot), ['facts', 'read /etc/docker/daemon.json', 'firewall read', 'read /etc/swarmform/firewall.sh', 'firewall apply', 'firewall read', 'GET /version'], h);
    assert.ok(!boot.some((s) => s.kind === 'put'), `${h}: nothing written`);
  }
  const w = sim.world();
  for (const h of HOSTS) assert.equal(w.host(h)!.swarm.state, 'active', `${h} joined`);
});

test('a daemon.json change in the inventory: rewritten and the engine restarted on every host, nothing reinstalled, no rejoin', async () => {
  const sim = simCluster({ managers: 1, workers: 2 });
  assert.equal((await sim.cli(['up'])).code, 0);
  writeFileSync(sim.inventory, readFileSync(sim.inventory, 'utf8').replace(/^swarm:\n/m, 'swarm:\n  daemon: { debug: true }\n'));
  const mark = seen.length;
  const r = await sim.cli(['up']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const w = sim.world();
  for (const h of HOSTS) {
    const got = steps(sim.on(h, mark));
    assert.deepEqual(got.slice(0, 5), ['facts', 'read /etc/docker/daemon.json', 'mkdir', 'put /etc/docker/daemon.json', 'firewall read'], `${h}: ${JSON.stringify(got)}`);
    assert.ok(got.includes('systemctl restart docker'), `${h}: engine restarted for the new daemon.json`);
    assert.ok(got.indexOf('systemctl restart docker') > got.indexOf('put /etc/docker/daemon.json'), `${h}: restarted after the write`);
    assert.ok(!got.includes('install engine'), `${h}: not reinstalled`);
    assert.ok(!sim.on(h, mark).some((s) => /^POST \/swarm\/(init|join|leave)/.test(s.what)), `${h}: swarm membership untouched`);
    assert.equal((JSON.parse(w.host(h)!.files['/etc/docker/daemon.json']!) as { debug?: boolean }).debug, true);
    assert.equal(w.host(h)!.swarm.state, 'active');
  }
  assert.equal(Object.values(w.swarm!.nodes).filter((n) => n.state === 'ready').length, 3, 'same three nodes');
});

test('a stopped engine is started again by up, on that host only, and its node is Ready again', async () => {
  const sim = simCluster({ managers: 1, workers: 2 });
  assert.equal((await sim.cli(['up'])).code, 0);
  const w = sim.world();
  const wrk2 = w.host('wrk-2')!;
  wrk2.running = false;
  w.swarm!.nodes[wrk2.swarm.nodeId!]!.state = 'down';
  const mark = seen.length;
  const r = await sim.cli(['up']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const got = steps(sim.on('wrk-2', mark));
  assert.ok(got.includes('systemctl start docker'), JSON.stringify(got));
  assert.ok(got.indexOf('systemctl start docker') < got.indexOf('GET /version'), 'started before its version is read');
  for (const h of ['mgr-1', 'wrk-1']) assert.ok(!steps(sim.on(h, mark)).some((l) => /^systemctl/.test(l)), `${h}: engine left alone`);
  assert.equal(wrk2.running, true);
  assert.equal(w.swarm!.nodes[wrk2.swarm.nodeId!]!.state, 'ready');
  assert.ok(!sim.on('wrk-2', mark).some((s) => s.what === 'POST /swarm/join'), 'the node kept its membership: no new join');
});
