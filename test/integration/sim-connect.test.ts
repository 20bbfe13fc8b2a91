/**
 * The real CLI on the simulated provider: no host's bootstrap waits for the slowest SSH handshake. Some hosts' first
 * handshake hangs (`ssh.timeoutShare`) until it times out and the retry gets in; every other host connects and
 * bootstraps meanwhile. Before, `up` connected to every host first and bootstrapped after the last connect, so one
 * host that was slow to answer SSH held the whole fleet for up to the connect timeout.
 * Which hosts were slow, and that every host ended installed, is read from the simulated world, not the tool's state.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cli, testHome } from '../support/lab.js';

const home = testHome();
const env = { SWARMFORM_HOME: home };
const inventory = join(home, 'simconnect.yml');
mkdirSync(home, { recursive: true });
writeFileSync(
  inventory,
  [
    'cluster: simconnect',
    'provider: sim',
    'providers:',
    '  sim:',
    '    seed: 3',
    '    timeScale: 0.002',
    '    api: { like: aws }',
    // 15 % of first handshakes hang for 500 s of model time (1 s here) before they time out.
    '    ssh: { timeoutShare: 0.15, handshakeTimeout: 500000 }',
    'swarm:',
    '  drainManagers: true',
    'groups:',
    '  managers: { role: manager, name: "mgr-[1:1]" }',
    '  workers: { role: worker, name: "w-[01:20]" }',
    '',
  ].join('\n'),
);

after(async () => {
  await cli(['down', '-i', inventory], env);
  rmSync(home, { recursive: true, force: true });
});

test('sim: hosts bootstrap while others still wait for SSH, and every host ends up installed and joined', async () => {
  const r = await cli(['up', '--json', '-i', inventory], env);
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; phase?: string; host?: string; step?: string; status?: string });
  const world = JSON.parse(readFileSync(join(home, 'simconnect', 'sim-world.json'), 'utf8')) as {
    hosts: Record<string, { installed: boolean; faults: string[]; swarm: { state: string } }>;
  };
  const slow = Object.entries(world.hosts).filter(([, h]) => h.faults.includes('ssh-timeout')).map(([n]) => n);
  assert.ok(slow.length >= 2 && slow.length <= 8, `slow hosts: ${slow.join(', ')}`);
  const at = (pred: (e: (typeof events)[number]) => boolean) => events.findIndex(pred);
  const firstDone = at((e) => e.phase === 'bootstrap' && e.step === 'bootstrap' && e.status === 'ok');
  assert.ok(firstDone >= 0);
  for (const host of slow) {
    // The slow host's first command runs only once its connection is open.
    const connected = at((e) => e.host === host && e.step === 'facts' && e.status === 'start');
    assert.ok(connected > firstDone, `${host} connected (event ${connected}) before any host finished its bootstrap (event ${firstDone})`);
  }
  assert.deepEqual(Object.entries(world.hosts).filter(([, h]) => !h.installed || h.swarm.state !== 'active').map(([n]) => n), []);
});
