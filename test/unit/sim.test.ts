/** The sim provider's model: settings, determinism, the simulated engine behind the real dockerode, bounds. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Docker from 'dockerode';
import { InventoryError } from '../../src/base/errors.js';
import { loadInventory } from '../../src/inventory/index.js';
import { providers } from '../../src/providers/registry.js';
import { boundInputOf, lowerBounds } from '../../src/providers/sim/bounds.js';
import { meanOf, meets, Rng, Servers, stableDraw } from '../../src/providers/sim/model.js';
import { simSettings } from '../../src/providers/sim/settings.js';
import { openWorld, type SimWorld } from '../../src/providers/sim/world.js';
import { simDocker } from '../../src/providers/sim/engine.js';
import { SimRemote } from '../../src/providers/sim/remote.js';

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'swarmform-sim-unit-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A world with hosts already created and engines installed and running (fast: no latency). */
function world(cluster: string, sim: Record<string, unknown> = {}, hosts = ['m1', 'w1', 'w2', 'w3']): SimWorld {
  const settings = simSettings({ providers: { sim: { timeScale: 0.0001, ...sim } } });
  const w = openWorld(cluster, tempDir(), settings);
  for (const name of hosts) {
    const h = w.addHost({ name, role: name.startsWith('m') ? 'manager' : 'worker', group: 'g', labels: {} });
    h.installed = true;
    h.running = true;
  }
  return w;
}
const engine = (w: SimWorld, name: string): Docker => simDocker(w, w.host(name)!, Docker);

test('settings: defaults, presets, and an error with file and line for a non-loopback address base', async () => {
  const s = simSettings({ providers: { sim: { api: { like: 'aws' } } } });
  assert.equal(s.api.batchSize, 100);
  assert.equal(s.api.callsPerSecond, 2);
  assert.equal(simSettings({ providers: {} }).api.batchSize, 10);
  assert.equal(simSettings({ providers: {} }).swarm.signConcurrency, 4);
  assert.equal(simSettings({ providers: { sim: { api: { batchSize: 7 } } } }).api.batchSize, 7);

  const dir = tempDir();
  const file = join(dir, 'bad.yml');
  writeFileSync(file, 'cluster: simbad\nprovider: sim\nproviders:\n  sim:\n    addressBase: 10.0.0.1\ngroups:\n  w:\n    role: manager\n    count: 1\n');
  await assert.rejects(loadInventory(file, { providers }), (err: unknown) => {
    assert.ok(err instanceof InventoryError);
    assert.match(err.message, /bad\.yml:5:\d+: providers\.sim\.addressBase: must be a loopback address/);
    return true;
  });
});

test('determinism: the same seed picks the same failing hosts, another seed others, in about the share asked', () => {
  const names = Array.from({ length: 4000 }, (_, i) => `worker-${i + 1}`);
  const pick = (seed: number) => names.filter((n) => meets(seed, 'install', n, 0.05));
  assert.deepEqual(pick(1), pick(1));
  assert.notDeepEqual(pick(1), pick(2));
  assert.ok(Math.abs(pick(1).length - 200) < 50, `about 5 % of 4,000, got ${pick(1).length}`);
  assert.equal(stableDraw(3, 'x', 'a'), stableDraw(3, 'x', 'a'));
  const a = new Rng(5);
  const b = new Rng(5);
  assert.deepEqual([a.next(), a.next(), a.id()], [b.next(), b.next(), b.id()]);
});

test('latency distribution: log-normal with the given median and 99th percentile', () => {
  const r = new Rng(11);
  const xs = Array.from({ length: 20000 }, () => r.latency({ p50: 100, p99: 800 })).sort((x, y) => x - y);
  const p50 = xs[10000]!;
  const p99 = xs[19800]!;
  assert.ok(p50 > 90 && p50 < 110, `p50 ${p50}`);
  assert.ok(p99 > 650 && p99 < 1000, `p99 ${p99}`);
  assert.equal(r.latency(42), 42);
});

test('engine: init, worker join through the real dockerode, node list and the version check of node updates', async () => {
  const w = world('simunit1');
  const m1 = engine(w, 'm1');
  const nodeId = (await m1.swarmInit({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: `${w.host('m1')!.address}:2377` })) as string;
  const info = (await m1.info()) as { Swarm: { LocalNodeState: string; ControlAvailable: boolean; NodeID: string; Cluster: { ID: string } } };
  assert.equal(info.Swarm.LocalNodeState, 'active');
  assert.equal(info.Swarm.ControlAvailable, true);
  assert.equal(info.Swarm.NodeID, nodeId);
  const tokens = ((await m1.swarmInspect()) as { JoinTokens: { Worker: string } }).JoinTokens;
  assert.match(tokens.Worker, /^SWMTKN-1-/);

  const w1 = engine(w, 'w1');
  await assert.rejects(w1.swarmJoin({ RemoteAddrs: [`${w.host('m1')!.address}:2377`], JoinToken: 'SWMTKN-1-wrong' }), /valid join token/);
  await w1.swarmJoin({ RemoteAddrs: [`${w.host('m1')!.address}:2377`], JoinToken: tokens.Worker, AdvertiseAddr: w.host('w1')!.address });
  const wi = (await w1.info()) as { Swarm: { LocalNodeState: string; ControlAvailable: boolean; Cluster?: unknown; RemoteManagers: unknown[] } };
  assert.equal(wi.Swarm.LocalNodeState, 'active');
  assert.equal(wi.Swarm.ControlAvailable, false);
  assert.equal(wi.Swarm.Cluster, undefined, 'workers do not know the cluster id');
  assert.equal(wi.Swarm.RemoteManagers.length, 1);
  await assert.rejects(w1.listNodes(), (e: { statusCode?: number }) => e.statusCode === 503);
  await assert.rejects(w1.swarmJoin({ RemoteAddrs: [`${w.host('m1')!.address}:2377`], JoinToken: tokens.Worker }), /already part of a swarm/);

  const nodes = (await m1.listNodes()) as { ID: string; Version: { Index: number }; Spec: { Role: string }; Status: { State: string } }[];
  assert.deepEqual(nodes.map((n) => [n.Spec.Role, n.Status.State]).sort(), [['manager', 'ready'], ['worker', 'ready']]);
  const worker = nodes.find((n) => n.Spec.Role === 'worker')!;
  await assert.rejects(
    m1.getNode(worker.ID).update({ _query: { version: worker.Version.Index - 1 }, _body: { Role: 'worker', Availability: 'drain', Labels: {} } }),
    /update out of sequence/,
  );
  await m1.getNode(worker.ID).update({ _query: { version: worker.Version.Index }, _body: { Role: 'worker', Availability: 'drain', Labels: { a: 'b' } } });
  const after1 = (await m1.getNode(worker.ID).inspect()) as { Spec: { Availability: string; Labels: Record<string, string> } };
  assert.equal(after1.Spec.Availability, 'drain');
  assert.deepEqual(after1.Spec.Labels, { a: 'b' });

  // A stopped engine does not answer, as over SSH.
  w.host('w2')!.running = false;
  await assert.rejects(engine(w, 'w2').ping(), /Is the docker daemon running/);
});

test('engine: a join that times out goes on in the background; an overloaded manager loses the leader', async () => {
  const w = world('simunit2', { timeScale: 1, ssh: { rtt: 0 }, engine: { apiTime: 0 }, swarm: { timeoutShare: 1, joinTimeout: 50, signTime: 300, writeTime: 0 } });
  const m1 = engine(w, 'm1');
  await m1.swarmInit({ AdvertiseAddr: `${w.host('m1')!.address}:2377` });
  const token = ((await m1.swarmInspect()) as { JoinTokens: { Worker: string } }).JoinTokens.Worker;
  const w1 = engine(w, 'w1');
  await assert.rejects(w1.swarmJoin({ RemoteAddrs: [`${w.host('m1')!.address}:2377`], JoinToken: token }), (e: { json?: { message?: string } }) => /Timeout was reached before node joined/.test(e.json?.message ?? ''));
  assert.equal(((await w1.info()) as { Swarm: { LocalNodeState: string } }).Swarm.LocalNodeState, 'pending');
  for (let i = 0; i < 200 && w.host('w1')!.swarm.state !== 'active'; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(((await w1.info()) as { Swarm: { LocalNodeState: string } }).Swarm.LocalNodeState, 'active');

  // leaderLossAt 2: the second join in flight on one manager starves the leader; a join arriving then is refused.
  const v = world('simunit3', { swarm: { leaderLossAt: 2, signConcurrency: 1, signTime: 2_000_000, electionTime: 2_000_000 } }, ['m1', 'w1', 'w2', 'w3']);
  const vm = engine(v, 'm1');
  await vm.swarmInit({ AdvertiseAddr: `${v.host('m1')!.address}:2377` });
  const vt = ((await vm.swarmInspect()) as { JoinTokens: { Worker: string } }).JoinTokens.Worker;
  const join = (n: string) => engine(v, n).swarmJoin({ RemoteAddrs: [`${v.host('m1')!.address}:2377`], JoinToken: vt }).catch((e: Error) => e);
  void join('w1');
  void join('w2');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(v.swarm!.leaderLosses, 1);
  const third = await join('w3');
  assert.match(String((third as Error).message), /does not have a leader/);
});

test('transport: bootstrap commands change the host, and a second look finds them done', async () => {
  const w = world('simunit4', {}, []);
  const h = w.addHost({ name: 'w9', role: 'worker', group: 'g', labels: {} });
  const r = new SimRemote(w, h);
  const facts = await r.check(readFileSync(new URL('../../templates/bootstrap/facts.sh', import.meta.url), 'utf8'), 'facts');
  assert.match(facts, /engine_running=no/);
  assert.doesNotMatch(facts, /engine_path=/);
  assert.equal((await r.run('cat /etc/docker/daemon.json 2>/dev/null')).code, 1);
  await r.check('set -e\napt-get update -qq\napt-get install -y -qq docker.io', 'install engine');
  await r.putContent('{"a":1}\n', '/etc/docker/daemon.json');
  await r.check('systemctl start docker', 'start engine');
  assert.equal((await r.run('cat /etc/docker/daemon.json 2>/dev/null')).stdout, '{"a":1}\n');
  assert.match(await r.check(readFileSync(new URL('../../templates/bootstrap/facts.sh', import.meta.url), 'utf8'), 'facts'), /engine_path=\/usr\/bin\/dockerd[\s\S]*engine_running=yes/);
  assert.equal(((await r.engine().version()) as { Version: string }).Version, '20.10.24');
  assert.equal((await r.run('rm -rf /')).code, 127, 'commands the model does not know are "not found"');
  r.close();
});

test('world: saved at exit and loaded by the next process; faults happen once per host', () => {
  const dir = tempDir();
  const settings = simSettings({ providers: { sim: { engine: { installFailShare: 1 } } } });
  const w = openWorld('simunit5', dir, settings);
  const h = w.addHost({ name: 'a', role: 'worker', group: 'g', labels: {} });
  assert.equal(w.fault(h, 'install', 1), true);
  assert.equal(w.fault(h, 'install', 1), false, 'a transient fault happens once');
  h.installed = true;
  w.save();
  const data = JSON.parse(readFileSync(join(dir, 'sim-world.json'), 'utf8'));
  assert.equal(data.hosts.a.installed, true);
  assert.deepEqual(data.hosts.a.faults, ['install']);
});

test('lower bounds grow linearly with hosts, and the fixed windows never beat the model', () => {
  const s = simSettings({ providers: { sim: { timeScale: 0.01 } } });
  const b = (n: number) => lowerBounds(s, { managers: 3, workers: n - 3, joinConcurrency: 12, replicas: 0 });
  for (const n of [500, 1000, 2384, 4700]) {
    const x = b(n);
    for (const p of ['provision', 'bootstrap', 'swarm'] as const) assert.ok(x.windows[p] >= x.model[p] - 1e-9, `${p} at ${n}`);
    // Bootstrap overlaps provision: never shorter than the last machine's own path or the mirror's whole work, never
    // longer than the two phases one after the other.
    assert.ok(x.model.bootstrap >= x.model.provision + x.perHost.bootstrap - 1e-9, `last machine's path at ${n}`);
    assert.ok(x.model.bootstrap >= ((n / s.engine.mirrorConcurrency) * meanOf(s.engine.installTime) * s.timeScale), `mirror work at ${n}`);
    assert.ok(x.model.total < x.model.sequential, `overlap shortens the run at ${n}`);
    assert.equal(x.model.total, x.model.bootstrap + x.model.swarm + x.model.workloads);
  }
  const per = (n: number) => b(n).windows.total / n;
  assert.ok(Math.abs(per(4700) - per(2384)) / per(4700) < 0.1, 'per-host bound flat at scale');
});

test('swarm.bootstrapConcurrency: 32 by default, read by the bounds, and an error with file and line for a bad value', async () => {
  const dir = tempDir();
  const inv = (swarm: string) => {
    const file = join(dir, 'bc.yml');
    writeFileSync(file, `cluster: simbc\nprovider: sim\nswarm:\n${swarm}groups:\n  m: { role: manager, count: 1 }\n  w: { role: worker, count: 9 }\n`);
    return { file, load: () => loadInventory(file, { providers }) };
  };
  const plain = await inv('  drainManagers: true\n').load();
  assert.equal(plain.swarm.bootstrapConcurrency, 32);
  assert.deepEqual(boundInputOf(plain).windows, { bootstrap: 32, probe: 64 });
  const wide = await inv('  bootstrapConcurrency: 500\n').load();
  assert.equal(wide.swarm.bootstrapConcurrency, 500);
  assert.deepEqual(boundInputOf(wide).windows, { bootstrap: 500, probe: 64 });
  for (const bad of ['0', '1001', '2.5', 'many']) {
    const { file, load } = inv(`  bootstrapConcurrency: ${bad}\n`);
    await assert.rejects(load(), (err: unknown) => {
      assert.ok(err instanceof InventoryError);
      assert.equal(err.exitCode, 2);
      assert.equal(err.message.split('\n')[0], `${file}:4:25: swarm.bootstrapConcurrency: expected a whole number from 1 to 1000, got ${bad === 'many' ? '"many"' : bad}`);
      return true;
    });
  }
  // The Swarm3k inventory sets it (and the joins) for a cloud fleet with a package mirror.
  const big = await loadInventory(join(import.meta.dirname, '../../inventories/sim-swarm3k.yml'), { providers });
  assert.equal(big.swarm.bootstrapConcurrency, 256);
  assert.equal(big.swarm.joinConcurrency, 48);
});

test('servers: first come, first served on the place free soonest, scheduled in modelled time', () => {
  const s = new Servers(2);
  const ends = [0, 0, 0, 0, 0].map(() => s.schedule(10, 1000).end);
  assert.deepEqual(ends, [1010, 1010, 1020, 1020, 1030]);
  assert.equal(s.inflight(1000), 5);
  assert.equal(s.inflight(1015), 3);
  // Not before a given time (a leaderless swarm signs nothing), and a later arrival waits for no one on a free place.
  assert.deepEqual(s.schedule(10, 1015, 1100), { start: 1100, end: 1110 });
  assert.deepEqual(s.schedule(10, 2000), { start: 2000, end: 2010 });
  assert.equal(s.inflight(2005), 1);
});

test('engine: joins time out when the model says so, not when the process is starved of CPU', async () => {
  const sim = { timeScale: 1, ssh: { rtt: 0 }, engine: { apiTime: 0 }, swarm: { signConcurrency: 1, signTime: 30, loadSlowdown: 0, joinTimeout: 100, writeTime: 0 } };
  const joinAll = async (w: SimWorld, block: number) => {
    const m1 = engine(w, 'm1');
    await m1.swarmInit({ AdvertiseAddr: `${w.host('m1')!.address}:2377` });
    const token = ((await m1.swarmInspect()) as { JoinTokens: { Worker: string } }).JoinTokens.Worker;
    const joins = ['w1', 'w2', 'w3'].map((n) =>
      engine(w, n).swarmJoin({ RemoteAddrs: [`${w.host('m1')!.address}:2377`], JoinToken: token }).then(() => 'ok', (e: { json?: { message?: string } }) => e.json?.message ?? String(e)),
    );
    while ([...w.inflight().values()].reduce((a, b) => a + b, 0) < 3) await new Promise((r) => setImmediate(r));
    // A busy machine: the process gets no CPU for a while, and every timer fires late.
    const until = Date.now() + block;
    while (Date.now() < until);
    return Promise.all(joins);
  };
  // Signatures end at 30, 60 and 90 ms, before the engines' 100 ms wait: a 150 ms stall changes nothing.
  const w = world('simunit-starved', sim);
  assert.deepEqual(await joinAll(w, 150), ['ok', 'ok', 'ok']);
  // With a 50 ms wait the second and third are queued past it: they time out, and join in the background.
  const v = world('simunit-queued', { ...sim, swarm: { ...sim.swarm, joinTimeout: 50 } });
  const answers = await joinAll(v, 0);
  assert.equal(answers[0], 'ok');
  assert.match(answers[1]!, /Timeout was reached before node joined/);
  assert.match(answers[2]!, /Timeout was reached before node joined/);
  for (let i = 0; i < 100 && v.host('w3')!.swarm.state !== 'active'; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(v.host('w3')!.swarm.state, 'active');
});
