/**
 * Faults in the middle of a run on real lab hosts (issue 14), each injected from outside while `up` works on 3+4:
 *
 * 1. worker-2's link is cut while its engine is being installed (bootstrap), worker-3's /etc/docker is a full
 *    filesystem when daemon.json is written, worker-1's link is cut after bootstrap and before its join. `up` must
 *    end with exit 3, a table naming each of the three hosts with its step, and the rest of the cluster formed
 *    (Docker on a manager: 3 managers and worker-4 Ready, none of the faulty hosts a node). With the links and the
 *    disk back, a plain re-run finishes only what is missing: 7 Ready nodes, no duplicate, web 2/2.
 * 2. On a formed cluster that grows by two workers, the leader's engine is killed while those workers join. The
 *    other two managers keep the quorum and elect a leader; the run ends exit 0 or exit 3 (it names the leader's host)
 *    but never breaks the swarm; a re-run starts the engine again and ends with 9 Ready nodes and 3 managers.
 *
 * Everything is checked with Docker itself on a manager over SSH.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BIN, cli, downAndCheck, isRoot, machinesOf, onHost, settledReplicas, type StateMachine, testHome, writeLabInventory } from '../support/lab.js';

const cluster = 't-faults';
const subnet = '198.18.52.0/24';
const gateway = '198.18.52.1';
const home = testHome();
const env = { SWARMFORM_HOME: home };
const inventory = join(home, `${cluster}.yml`);
const skip = isRoot ? false : 'lab tests need root';
const labRoot = process.env.SWARMFORM_LAB_ROOT ?? '/var/lib/swarmform/lab';

writeLabInventory(inventory, { cluster, subnet, workers: 4 });

const netns = (h: string) => `sf-${cluster}-${h}`;
const sshdPid = (h: string) => readFileSync(join(labRoot, cluster, 'hosts', h, 'sshd.pid'), 'utf8').trim();
/** Undo actions for whatever the test broke, run in `after` too so that a failing test leaves nothing cut or full. */
const repairs = new Map<string, () => void>();

function cutLink(h: string): void {
  execFileSync('ip', ['-n', netns(h), 'link', 'set', 'eth0', 'down']);
  repairs.set(`link ${h}`, () => {
    execFileSync('ip', ['-n', netns(h), 'link', 'set', 'eth0', 'up']);
    execFileSync('ip', ['-n', netns(h), 'route', 'replace', 'default', 'via', gateway, 'dev', 'eth0']);
  });
}

/** A full 64 KiB tmpfs over the host's /etc/docker, in the host's own mount namespace. */
function fillEtcDocker(h: string): void {
  execFileSync('nsenter', ['-t', sshdPid(h), '-m', '--', 'sh', '-c', 'mount -t tmpfs -o size=64k swarmform-full /etc/docker && (dd if=/dev/zero of=/etc/docker/.fill bs=4k 2>/dev/null || true)']);
  repairs.set(`disk ${h}`, () => execFileSync('nsenter', ['-t', sshdPid(h), '-m', '--', 'umount', '/etc/docker']));
}

/** SIGKILLs the host's engine (the lab's supervisor starts it again within a second, as systemd would). */
function killEngine(h: string): void {
  // The lab host has no pid namespace of its own: its engine is the dockerd whose network namespace is the host's.
  const pids = execFileSync('ip', ['netns', 'pids', netns(h)], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const engines = pids.filter((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'dockerd';
    } catch {
      return false;
    }
  });
  assert.ok(engines.length > 0, `a dockerd in ${netns(h)}`);
  for (const p of engines) process.kill(Number(p), 'SIGKILL');
}

function repairAll(): void {
  for (const [what, repair] of repairs) {
    try {
      repair();
    } catch (err) {
      console.error(`repairing ${what}: ${(err as Error).message}`);
    }
  }
  repairs.clear();
}

after(async () => {
  repairAll();
  await downAndCheck(inventory, env, cluster);
});

/** Runs `up` (with `extra` arguments), calling each action once when the output first matches its pattern. */
function upWith(actions: { when: RegExp; act: () => void }[], extra: string[] = []): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'up', '-i', inventory, ...extra], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const pending = [...actions];
    const onData = (d: Buffer) => {
      out += d.toString();
      for (const a of [...pending]) {
        if (!a.when.test(out)) continue;
        pending.splice(pending.indexOf(a), 1);
        try {
          a.act();
        } catch (err) {
          out += `\n[test] action failed: ${(err as Error).message}\n`;
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** The hosts' addresses and keys as first recorded (the third test damages the state file on purpose). */
let known: StateMachine[] = [];
const host = (name: string): StateMachine => known.find((m) => m.name === name) ?? (known = machinesOf(home, cluster)).find((m) => m.name === name)!;

async function nodes(): Promise<string[]> {
  const mgr = host('mgr-2');
  const r = await onHost(mgr, "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'");
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split('\n');
}

async function assertConverged(count: number, what: string): Promise<void> {
  const ls = await nodes();
  assert.equal(ls.length, count, `${what}: ${ls.join('; ')}`);
  assert.equal(new Set(ls.map((l) => l.split(' ')[0])).size, count, `${what}: no duplicate node: ${ls.join('; ')}`);
  assert.ok(ls.every((l) => l.split(' ')[1] === 'Ready'), `${what}: ${ls.join('; ')}`);
  assert.equal(ls.filter((l) => / (Leader|Reachable)$/.test(l)).length, 3, `${what}: ${ls.join('; ')}`);
  const mgr = host('mgr-2');
  const replicas = await settledReplicas(mgr, 'web 2/2');
  assert.equal(replicas, 'web 2/2', `${what}: ${replicas}`);
}

test('links cut during bootstrap and before a join, a full disk under daemon.json: exit 3 naming each host and step; a re-run finishes', { skip, timeout: 20 * 60_000 }, async (t) => {
  const started = performance.now();
  const run = await upWith([
    { when: /worker-2: facts: ok/, act: () => cutLink('worker-2') },
    { when: /worker-3: facts: ok/, act: () => fillEtcDocker('worker-3') },
    { when: /swarm: started/, act: () => cutLink('worker-1') },
  ]);
  t.diagnostic(`faulty run: exit ${run.code} after ${((performance.now() - started) / 1000).toFixed(0)} s`);
  const tail = run.out.slice(-4000);
  assert.equal(run.code, 3, tail);
  assert.doesNotMatch(run.out, /action failed/, tail);
  const table = run.out.slice(run.out.lastIndexOf('Cluster '));
  // Each failure names the host, its step and the cause in words (not only the transport's "socket hang up").
  assert.match(run.out, /worker-2: install engine: failed: .*SSH connection to worker-2 was lost: no answer to SSH keepalives/, tail);
  assert.match(run.out, /worker-3: daemon config: failed: .*no space left on the filesystem of \/etc\/docker/, tail);
  assert.match(run.out, /worker-1: join worker: failed: .*SSH connection to worker-1 was lost: no answer to SSH keepalives/, tail);
  for (const h of ['worker-1', 'worker-2', 'worker-3']) assert.match(table, new RegExp(h), `the summary names ${h}: ${table}`);
  assert.doesNotMatch(table, /worker-4|mgr-\d: .*failed/, table);

  const ls = await nodes();
  assert.deepEqual(ls.map((l) => l.split(' ')[0]).sort(), ['mgr-1', 'mgr-2', 'mgr-3', 'worker-4'], `the healthy hosts formed the swarm: ${ls.join('; ')}`);
  assert.ok(ls.every((l) => l.split(' ')[1] === 'Ready'), ls.join('; '));

  repairAll();
  const again = await cli(['up', '-i', inventory], env);
  assert.equal(again.code, 0, `${again.stdout.slice(-2000)}${again.stderr.slice(-2000)}`);
  assert.match(again.stdout + again.stderr, /created 0 machine\(s\)/, 'the re-run creates nothing');
  await assertConverged(7, 'after the re-run');
});

test("the leader's engine killed while workers join: the quorum holds, a re-run restores the leader's host", { skip, timeout: 20 * 60_000 }, async (t) => {
  repairAll();
  writeLabInventory(inventory, { cluster, subnet, workers: 6 });
  const leader = (await onHost(host('mgr-2'), "docker node ls --filter role=manager --format '{{.Hostname}} {{.ManagerStatus}}'")).stdout
    .split('\n').find((l) => l.endsWith(' Leader'))!.split(' ')[0]!;
  t.diagnostic(`leader: ${leader}`);
  const run = await upWith([{ when: /worker-[56]: bootstrap: ok/, act: () => killEngine(leader) }]);
  t.diagnostic(`run with the leader's engine killed: exit ${run.code}`);
  assert.ok(run.code === 0 || run.code === 3, run.out.slice(-4000));
  if (run.code === 3) assert.match(run.out.slice(run.out.lastIndexOf('Cluster ')), new RegExp(leader), run.out.slice(-3000));
  assert.doesNotMatch(run.out, /action failed/, run.out.slice(-3000));

  const survivor = host(['mgr-1', 'mgr-2', 'mgr-3'].find((m) => m !== leader)!);
  const ms = (await onHost(survivor, "docker node ls --filter role=manager --format '{{.Hostname}} {{.ManagerStatus}}'")).stdout.trim().split('\n');
  assert.equal(ms.filter((l) => l.endsWith(' Leader')).length, 1, `the other managers elected a leader: ${ms.join('; ')}`);

  const again = await cli(['up', '-i', inventory], env);
  assert.equal(again.code, 0, `${again.stdout.slice(-2000)}${again.stderr.slice(-2000)}`);
  await assertConverged(9, 'after the re-run');
});

test('a changed host key is refused with the command that accepts it; a damaged state file is named, then rebuilt from the hosts', { skip, timeout: 20 * 60_000 }, async () => {
  repairAll();
  // worker-6 gets a new host key, as a rebuilt machine (or a machine in the middle) would present.
  const keyFile = join(labRoot, cluster, 'hosts', 'worker-6', 'ssh', 'ssh_host_ed25519_key');
  rmSync(keyFile, { force: true });
  rmSync(`${keyFile}.pub`, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
  process.kill(Number(sshdPid('worker-6')), 'SIGHUP'); // sshd re-executes itself and loads the new key
  await new Promise((r) => setTimeout(r, 1500));
  const refused = await cli(['up', '-i', inventory], env);
  const text = refused.stdout + refused.stderr;
  assert.equal(refused.code, 3, text.slice(-3000));
  const addr = host('worker-6').ssh.host.replace(/\./g, '\\.');
  assert.match(text, new RegExp(`worker-6: .*host key of ${addr}:22 differs from the one recorded`), text.slice(-3000));
  const accept = /accept its new key: (ssh-keygen [^\n]*?), then run again/.exec(text)?.[1];
  assert.ok(accept, `the hint says how to accept the key: ${text.slice(-3000)}`);
  assert.doesNotMatch(text, /worker-[1-5]: .*failed|mgr-\d: .*failed/, 'only worker-6 is refused');
  execFileSync('sh', ['-c', accept]);
  const accepted = await cli(['up', '-i', inventory], env);
  assert.equal(accepted.code, 0, `${accepted.stdout.slice(-2000)}${accepted.stderr.slice(-2000)}`);
  await assertConverged(9, 'after the new key was accepted');

  // The state file cut in half: named with the way out, nothing changed; moved aside as the hint says, `up` rebuilds it
  // from the provider (machines) and the engines (nodes) without creating or joining anything twice.
  const statePath = join(home, cluster, 'state.json');
  const whole = readFileSync(statePath, 'utf8');
  known = machinesOf(home, cluster);
  const damaged = whole.slice(0, Math.floor(whole.length / 2));
  writeFileSync(statePath, damaged);
  const named = await cli(['up', '-i', inventory], env);
  assert.equal(named.code, 2, named.stdout + named.stderr);
  assert.match(named.stderr, new RegExp(`${statePath.replace(/[.]/g, '\\.')} is damaged: not valid JSON`), named.stderr);
  const aside = /move it aside \((mv [^)]*)\) and run `up` again/.exec(named.stderr)?.[1];
  assert.ok(aside, `the hint says how to move it aside: ${named.stderr}`);
  assert.doesNotMatch(named.stderr + named.stdout, /bootstrap|provision/, 'nothing ran');
  assert.doesNotMatch(named.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(readFileSync(statePath, 'utf8'), damaged, 'the damaged file is left as it was');
  execFileSync('sh', ['-c', aside]);
  const rebuilt = await cli(['up', '-i', inventory], env);
  assert.equal(rebuilt.code, 0, `${rebuilt.stdout.slice(-2000)}${rebuilt.stderr.slice(-2000)}`);
  assert.match(rebuilt.stdout + rebuilt.stderr, /created 0 machine\(s\)|Nothing to change/, 'the rebuild creates nothing');
  assert.deepEqual(machinesOf(home, cluster).map((m) => m.name).sort(), known.map((m) => m.name).sort(), 'the state knows every machine again');
  await assertConverged(9, 'after the state was rebuilt');
});

test('the engine killed during a manager join: the quorum holds, a re-run makes the host a manager again', { skip, timeout: 20 * 60_000 }, async (t) => {
  // mgr-3 leaves the swarm the way a replaced machine would, so that `up` joins it as a manager again.
  const sh = async (h: string, cmd: string) => {
    const r = await onHost(host(h), cmd);
    assert.equal(r.code, 0, `${h}: ${cmd}: ${r.stderr}`);
    return r.stdout.trim();
  };
  await sh('mgr-1', 'docker node demote mgr-3');
  await sh('mgr-3', 'docker swarm leave --force');
  await sh('mgr-1', 'for i in $(seq 30); do [ "$(docker node inspect mgr-3 --format "{{.Status.State}}")" = down ] && break; sleep 1; done; docker node rm --force mgr-3');
  const run = await upWith(
    [{ when: /"host":"mgr-3"[^\n]*"step":"join manager"[^\n]*"status":"start"/, act: () => killEngine('mgr-3') }],
    ['--json'],
  );
  t.diagnostic(`run with mgr-3's engine killed in its join: exit ${run.code}`);
  for (const line of run.out.split('\n').filter((l) => l.includes('"status":"fail"'))) t.diagnostic(line.slice(0, 400));
  assert.ok(run.code === 0 || run.code === 3, run.out.slice(-4000));
  assert.match(run.out, /"host":"mgr-3"[^\n]*"step":"join manager"[^\n]*"status":"start"/, 'the join was started');
  const failure = run.out.split('\n').find((l) => /"host":"mgr-3"[^\n]*"step":"join manager"[^\n]*"status":"fail"/.test(l));
  // The failure says what happened to the engine, not only the transport's "socket hang up".
  if (failure) assert.match(failure, /the engine on mgr-3 dropped the API connection/, failure);
  assert.doesNotMatch(run.out, /action failed/, run.out.slice(-3000));
  const ms = (await sh('mgr-1', "docker node ls --filter role=manager --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'")).split('\n');
  assert.equal(ms.filter((l) => l.endsWith(' Leader')).length, 1, `a leader throughout: ${ms.join('; ')}`);

  const again = await cli(['up', '-i', inventory], env);
  assert.equal(again.code, 0, `${again.stdout.slice(-2000)}${again.stderr.slice(-2000)}`);
  await assertConverged(9, 'after the re-run');
});
