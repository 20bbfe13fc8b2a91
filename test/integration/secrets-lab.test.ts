/**
 * Secrets checked everywhere (issue 14): during an `up` of a lab cluster with autolock on, the process list of this
 * machine (which holds every lab host's processes) is sampled every 100 ms; afterwards the join tokens and the unlock
 * key, read from Docker itself on a manager, are searched for in those samples, in `up`'s normal and `--json` output,
 * in the output of `status`, `raft status --json` and an error, in every file under the hosts' /etc, /tmp, /root,
 * /home, /var/log, /var/tmp, /run and /var/lib/swarmform, and in every local file of the cluster's state other than
 * its 0600 secrets file. Zero hits is the assertion.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { cli, downAndCheck, isRoot, machinesOf, onHost, type StateMachine, testHome, writeLabInventory } from '../support/lab.js';

const execFileP = promisify(execFile);
const cluster = 't-secrets';
const home = testHome();
const env = { SWARMFORM_HOME: home };
const inventory = join(home, `${cluster}.yml`);
const skip = isRoot ? false : 'lab tests need root';

writeLabInventory(inventory, { cluster, subnet: '198.18.49.0/24', workers: 2, replicas: 1, onWorkers: false, swarm: 'autolock: true' });

after(() => downAndCheck(inventory, env, cluster));

/** Every file under `dir` (recursively), skipping nothing but unreadable entries. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

test('join tokens and the unlock key appear in no process list, output, log or file outside the 0600 secrets', { skip, timeout: 15 * 60_000 }, async () => {
  const samples = new Set<string>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { stdout } = await execFileP('ps', ['-eo', 'args', '--no-headers'], { maxBuffer: 64 << 20 }).catch(() => ({ stdout: '' }));
      for (const l of stdout.split('\n')) samples.add(l);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  let up = await cli(['up', '--json', '-i', inventory], env);
  if (up.code !== 0) up = await cli(['up', '--json', '-i', inventory], env);
  sampling = false;
  await sampler;
  assert.equal(up.code, 0, up.stdout.slice(-2000) + up.stderr);
  const plain = await cli(['up', '-i', inventory], env);
  assert.equal(plain.code, 0, plain.stderr);
  const outputs = [up.stdout, up.stderr, plain.stdout, plain.stderr];
  for (const args of [['status', '-i', inventory], ['raft', 'status', '--json', '-i', inventory], ['service', 'inspect', 'nosuch', '-i', inventory]]) {
    const r = await cli(args, env);
    outputs.push(r.stdout, r.stderr);
  }

  const machines: StateMachine[] = machinesOf(home, cluster);
  const mgr = machines.find((m) => m.name === 'mgr-1')!;
  const ask = async (cmd: string) => (await onHost(mgr, cmd)).stdout.trim();
  const secrets = {
    workerToken: await ask('docker swarm join-token -q worker'),
    managerToken: await ask('docker swarm join-token -q manager'),
    unlockKey: await ask('docker swarm unlock-key -q'),
  };
  for (const [k, v] of Object.entries(secrets)) assert.match(v, /^SWMT|^SWMKEY/, `${k} read from Docker`);
  // The unique part of each secret (tokens share the SWMTKN-1-<cluster-ca-digest> prefix).
  const needles = Object.entries(secrets).map(([k, v]) => ({ k, s: v.split('-').at(-1)! }));
  assert.ok(needles.every((n) => n.s.length >= 20), JSON.stringify(needles.map((n) => n.s.length)));

  const hits: string[] = [];
  const look = (where: string, text: string) => {
    for (const n of needles) if (text.includes(n.s)) hits.push(`${n.k} in ${where}`);
  };
  assert.ok(samples.size > 50, `${samples.size} distinct process lines sampled`);
  for (const l of samples) look('a process list', l);
  outputs.forEach((o, i) => look(`command output #${i}`, o));

  // Control: the search finds a secret where one is put (then the file goes again).
  await onHost(mgr, `printf '%s' '${secrets.workerToken}' > /root/.swarmform-control`);
  for (const m of machines) {
    const dirs = '/etc /tmp /root /home /var/log /var/tmp /run /var/lib/swarmform';
    const pattern = needles.map((n) => n.s).join('\\|');
    // The engine's own swarm state (/var/lib/docker/swarm) holds the keys by design and is not searched. Lab hosts
    // see this machine's /var/lib/swarmform/lab (every host's files): searched once, per host, in its own paths.
    const r = await onHost(m, `for d in ${dirs}; do [ -d "$d" ] && grep -rlI --exclude-dir=lab -e '${pattern}' "$d" 2>/dev/null; done; true`);
    for (const f of r.stdout.split('\n').filter(Boolean)) hits.push(`${m.name}:${f}`);
  }
  await onHost(mgr, 'rm -f /root/.swarmform-control');
  assert.ok(hits.includes('mgr-1:/root/.swarmform-control'), `the control file is found: ${hits.join(', ')}`);
  hits.splice(hits.indexOf('mgr-1:/root/.swarmform-control'), 1);
  const secretsFile = join(home, cluster, 'secrets.json');
  assert.equal(statSync(secretsFile).mode & 0o777, 0o600);
  for (const f of filesUnder(join(home, cluster))) {
    if (f === secretsFile) continue;
    look(`local file ${f}`, readFileSync(f, 'latin1'));
  }
  assert.deepEqual(hits, []);
});
