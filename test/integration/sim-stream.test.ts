/**
 * The real CLI on the simulated provider: bootstrap starts on each machine as soon as it has booted, while the cloud is
 * still creating the others, and the firewall of every host (those bootstrapped early included) still lists every
 * member. Create calls are spread out (2 machines a call, one every 5 s of model time) so that machines arrive over time.
 * Firewall contents and joins are read from the simulated world (what the hosts hold), not from the tool's state.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cli, testHome } from '../support/lab.js';

const home = testHome();
const env = { SWARMFORM_HOME: home };
const inventory = join(home, 'simstream.yml');
mkdirSync(home, { recursive: true });
writeFileSync(
  inventory,
  [
    'cluster: simstream',
    'provider: sim',
    'providers:',
    '  sim:',
    '    seed: 5',
    '    timeScale: 0.002',
    // 13 create calls of 2 machines, one every 5 s of model time: the last goes out a minute after the first, while a
    // host's bootstrap (install about 25 s) takes half that.
    '    api: { like: aws, batchSize: 2, callsPerSecond: 0.2, burst: 1, concurrency: 2, bootTime: 5000 }',
    'swarm:',
    '  drainManagers: true',
    'groups:',
    '  managers: { role: manager, name: "mgr-[1:1]" }',
    '  workers: { role: worker, name: "w-[01:25]" }',
    '',
  ].join('\n'),
);

after(async () => {
  await cli(['down', '-i', inventory], env);
  rmSync(home, { recursive: true, force: true });
});

test('sim: hosts bootstrap while later machines are still being created, and every firewall lists every member', async () => {
  const r = await cli(['up', '--json', '-i', inventory], env);
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; phase?: string; host?: string; step?: string; status?: string });
  const at = (pred: (e: (typeof events)[number]) => boolean) => events.findIndex(pred);
  const provisionEnd = at((e) => e.type === 'phase' && e.phase === 'provision' && e.status === 'end');
  const lastCreated = events.map((e, i) => (e.step === 'create host' && e.status === 'ok' ? i : -1)).reduce((a, b) => Math.max(a, b));
  assert.ok(provisionEnd > 0 && lastCreated > 0);
  const early = [...new Set(events.slice(0, lastCreated).filter((e) => e.phase === 'bootstrap' && e.step === 'start engine' && e.status === 'ok').map((e) => e.host!))];
  assert.ok(early.length >= 3, `hosts with a running engine before the last machine was created: ${early.join(', ')}`);
  for (const host of early) {
    // Their firewall waited for the member list: opened only once provisioning had ended.
    const opened = at((e) => e.host === host && e.step === 'firewall' && e.status === 'ok');
    assert.ok(opened > provisionEnd, `${host}: firewall opened at event ${opened}, provisioning ended at ${provisionEnd}`);
  }
  // What the hosts hold: one and the same rule set everywhere (the script's digest stands for its member blocks),
  // and every host installed and joined.
  const world = JSON.parse(readFileSync(join(home, 'simstream', 'sim-world.json'), 'utf8')) as {
    hosts: Record<string, { installed: boolean; firewall?: string; swarm: { state: string } }>;
  };
  const hosts = Object.values(world.hosts);
  assert.equal(hosts.length, 26);
  assert.equal(new Set(hosts.map((h) => h.firewall)).size, 1, 'the same firewall rules on every host');
  assert.ok(hosts[0]!.firewall, 'a firewall was opened');
  assert.deepEqual(Object.entries(world.hosts).filter(([, h]) => !h.installed || h.swarm.state !== 'active').map(([n]) => n), []);
});
