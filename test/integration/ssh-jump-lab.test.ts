/**
 * A cluster that only a bastion can reach. The members sit on their own lab bridge; the bastion is a lab host on
 * another bridge with a second leg on the members' one, and this machine may not send the members anything (an
 * OUTPUT reject for their subnet, added once they are made). The bastion runs a second sshd with a stock
 * configuration (MaxSessions 10, MaxStartups 10:30:100). `up` with `ssh.jump` must form the swarm over one
 * connection to the bastion, record the bastion's host key and refuse a changed one; a fan-out of 200 connections
 * through that one bastion to one host's stock sshd must all succeed. Checks go through OpenSSH (ProxyCommand over
 * the bastion) and the hosts' own docker, iptables and ss.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { labProvider } from '../../src/providers/lab/index.js';
import { defaultBridgeName, netnsName } from '../../src/providers/lab/names.js';
import type { Machine } from '../../src/base/machine.js';
import { BastionPool } from '../../src/remote/ssh-jump.js';
import { connectSsh, type HostKeyStore, type SshRemote } from '../../src/remote/ssh-remote.js';
import { cleanupLabClusters, labHost, labTestContext } from '../support/lab-cleanup.js';
import { cli, isRoot, type CliResult, lastJson, onHost, testHome } from '../support/lab.js';
import { tempDir } from '../support/tmp.js';

const execFileP = promisify(execFile);
const skip = isRoot ? false : 'lab tests need root';
const MEMBER_SUBNET = '198.18.76.0/24';
const BASTION_LEG = '198.18.76.250';
const STOCK_PORT = 2222;
const members = labTestContext(MEMBER_SUBNET, 't-jmp');
const bastionCtx = labTestContext('198.18.75.0/24', 't-bst');
const home = testHome();
const env = { SWARMFORM_HOME: home };
const dir = tempDir('swarmform-jump-');
const inventory = join(dir, 'behind.yml');
const cluster = `${members.inventory.cluster}-j`;
// A policy rule, not an iptables reject: a locally rejected SYN leaves ssh waiting for minutes, a prohibit route
// fails it at once. Bridged traffic (the bastion's leg to the members) is not routed here, so it is not affected.
const isolate = ['to', MEMBER_SUBNET, 'prohibit', 'pref', String(9000 + (process.pid % 1000))];
const leg = `sfj${process.pid % 1_000_000}`.slice(0, 15);

let hosts: Machine[] = [];
let bastion: Machine;
let key = '';
const sshds: { proc: ChildProcess; log: string[]; cfg: string }[] = [];

const nsOf = (ctx: typeof members, name: string) => netnsName(ctx.inventory.cluster, name);
const inNs = (ns: string, cmd: string[]) => execFileP('ip', ['netns', 'exec', ns, ...cmd], { timeout: 30_000 });

/** The pid of a lab host's own sshd: the first process of the host's mount and UTS namespaces. */
async function hostSshdPid(ns: string): Promise<string> {
  const { stdout } = await execFileP('ip', ['netns', 'pids', ns]);
  for (const pid of stdout.split('\n').filter(Boolean)) {
    if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('/lab/')) return pid;
  }
  throw new Error(`no lab sshd in ${ns}`);
}

/**
 * A second sshd on a lab host with only what it cannot do without (listen, host key, authorized keys, no PAM): its
 * limits stay stock. It runs in the host's own namespaces (logins in this machine's mount namespace take about half
 * a second each here), with its files in the host's lab directory, which teardown removes.
 */
async function stockSshd(ctx: typeof members, host: string, address: string, hostKey: string, tag: string): Promise<{ proc: ChildProcess; log: string[]; cfg: string }> {
  const ns = nsOf(ctx, host);
  const hostDir = join(process.env.SWARMFORM_LAB_ROOT ?? '/var/lib/swarmform/lab', ctx.inventory.cluster, 'hosts', host, `stock-${tag}`);
  mkdirSync(hostDir, { recursive: true });
  copyFileSync(hostKey, join(hostDir, 'host_key'));
  chmodSync(join(hostDir, 'host_key'), 0o600);
  copyFileSync(join(dir, 'authorized_keys'), join(hostDir, 'authorized_keys'));
  const cfg = join(hostDir, 'sshd_config');
  writeFileSync(
    cfg,
    [
      `ListenAddress ${address}:${STOCK_PORT}`,
      `HostKey ${join(hostDir, 'host_key')}`,
      `AuthorizedKeysFile ${join(hostDir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      `PidFile ${join(hostDir, 'sshd.pid')}`,
      '',
    ].join('\n'),
  );
  // The lab host's fresh-server firewall lets only port 22 in.
  await inNs(ns, ['iptables', '-I', 'INPUT', '-p', 'tcp', '--dport', String(STOCK_PORT), '-j', 'ACCEPT']);
  const proc = spawn('nsenter', ['-t', await hostSshdPid(ns), '-m', '-u', '-n', '/usr/sbin/sshd', '-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  const log: string[] = [];
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => log.push(...d.split('\n').filter(Boolean)));
  const entry = { proc, log, cfg };
  sshds.push(entry);
  for (let i = 0; i < 100; i++) {
    const up = await inNs(ns, ['bash', '-c', `</dev/tcp/${address}/${STOCK_PORT}`]).then(() => true, () => false);
    if (up) return entry;
    if (proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`stock sshd in ${ns} did not start: ${log.join('\n')}`);
}

function stopSshd(s: { proc: ChildProcess }): Promise<void> {
  if (s.proc.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    s.proc.once('exit', () => resolve());
    s.proc.kill('SIGTERM');
  });
}

/** OpenSSH through the bastion's stock sshd, as a user would reach a member. */
async function viaBastion(m: Machine, command: string): Promise<CliResult> {
  const opts = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-i', key];
  const proxy = `ssh ${opts.join(' ')} -p ${STOCK_PORT} -W %h:%p root@${bastion.ssh.host}`;
  try {
    const { stdout, stderr } = await execFileP('ssh', [...opts, '-o', `ProxyCommand=${proxy}`, `root@${m.privateAddress}`, command], {
      timeout: 60_000,
      maxBuffer: 16 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 255, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const accepted = (s: { log: string[] }) => s.log.filter((l) => l.startsWith('Accepted publickey')).length;

before(async () => {
  if (!isRoot) return;
  await labProvider.preflight(members);
  const made = await labProvider.create([labHost('jmp-1', 'manager'), labHost('jmp-2'), labHost('jmp-3')], members);
  assert.deepEqual(made.failed, []);
  hosts = made.done.sort((a, b) => a.name.localeCompare(b.name));
  key = hosts[0]!.ssh.keyPath!;
  const b = await labProvider.create([labHost('bastion')], bastionCtx);
  assert.deepEqual(b.failed, []);
  bastion = b.done[0]!;
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${key}.pub`));
  chmodSync(join(dir, 'authorized_keys'), 0o600);

  // The bastion's second leg, on the members' bridge.
  const bns = nsOf(bastionCtx, 'bastion');
  await execFileP('ip', ['link', 'add', leg, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', bns]);
  await execFileP('ip', ['link', 'set', leg, 'master', defaultBridgeName(members.inventory.cluster), 'up']);
  await execFileP('ip', ['-n', bns, 'addr', 'add', `${BASTION_LEG}/24`, 'dev', 'eth1']);
  await execFileP('ip', ['-n', bns, 'link', 'set', 'eth1', 'up']);

  await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'bastion_key')]);
  await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'bastion_key_rebuilt')]);
  await stockSshd(bastionCtx, 'bastion', bastion.ssh.host, join(dir, 'bastion_key'), 'bastion');
  // jmp-1 also gets a stock sshd, as the target of the fan-out.
  await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'target_key')]);
  await stockSshd(members, 'jmp-1', hosts[0]!.privateAddress, join(dir, 'target_key'), 'target');

  // From here on this machine cannot reach the members: only the bastion can.
  await execFileP('ip', ['rule', 'add', ...isolate]);

  const { bundle, images } = await labProvider.artifacts(members);
  const entry = (m: Machine) => `{ name: ${m.name}, address: ${m.privateAddress} }`;
  writeFileSync(
    inventory,
    `cluster: ${cluster}
provider: ssh
ssh:
  key: ${key}
  jump: root@${bastion.ssh.host}:${STOCK_PORT}
swarm:
  install: bundle
  bundle: ${bundle}
groups:
  managers: { role: manager, hosts: [ ${entry(hosts[0]!)} ] }
  workers: { role: worker, hosts: [ ${hosts.slice(1).map(entry).join(', ')} ] }
images:
  - { file: ${images![0]!.file}, import: true, tag: swarmform/busybox:latest }
workloads:
  services:
    - name: agent
      image: swarmform/busybox:latest
      mode: global
      command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
`,
  );
});

after(async () => {
  if (!isRoot) return;
  await execFileP('ip', ['rule', 'del', ...isolate]).catch(() => undefined);
  // Best effort over the bastion (the rule is gone, so a direct run would work too); the machines go below anyway.
  if (sshds[0] && sshds[0].proc.exitCode === null) await cli(['down', '--json', '-i', inventory], env, 5 * 60_000);
  for (const s of sshds) await stopSshd(s);
  await execFileP('ip', ['link', 'del', leg]).catch(() => undefined);
  await cleanupLabClusters();
  rmSync(dir, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

test('the members cannot be reached from here except through the bastion', { skip, timeout: 60_000 }, async () => {
  const direct = await onHost({ name: 'jmp-1', role: 'manager', privateAddress: hosts[0]!.privateAddress, ssh: hosts[0]!.ssh }, 'true');
  assert.notEqual(direct.code, 0, 'a direct connection to a member must fail');
  const through = await viaBastion(hosts[0]!, 'hostname');
  assert.equal(through.code, 0, through.stderr);
  assert.equal(through.stdout.trim(), 'jmp-1');
  // Read in the mount namespace the stock sshd runs in: sshd -T wants its privilege separation directory, which the
  // lab host has and a fresh runner (no sshd service ever started) does not.
  const pid = await hostSshdPid(nsOf(bastionCtx, 'bastion'));
  const limits = await execFileP('nsenter', ['-t', pid, '-m', '/usr/sbin/sshd', '-T', '-f', sshds[0]!.cfg, '-C', 'user=root,host=x,addr=127.0.0.1']).then((r) => r.stdout);
  assert.match(limits, /^maxsessions 10$/m, 'the bastion runs the stock MaxSessions');
  assert.match(limits, /^maxstartups 10:30:100$/m, 'the bastion runs the stock MaxStartups');
});

test('up through the bastion forms the swarm over one connection to it', { skip, timeout: 10 * 60_000 }, async () => {
  const before = accepted(sshds[0]!);
  const r = await cli(['up', '--json', '-i', inventory], env);
  assert.equal(r.code, 0, `${r.stdout.slice(-3000)}\n${r.stderr}`);
  assert.ok(lastJson(r.stdout, 'result'));
  const logins = accepted(sshds[0]!) - before;
  console.log(`bastion logins during up: ${logins} (for ${hosts.length} hosts)`);
  assert.equal(logins, 1, `one connection to the bastion for the whole run:\n${sshds[0]!.log.slice(-20).join('\n')}`);

  const nodes = await viaBastion(hosts[0]!, "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'");
  assert.equal(nodes.code, 0, nodes.stderr);
  assert.deepEqual(nodes.stdout.trim().split('\n').map((l) => l.trimEnd()).sort(), ['jmp-1 Ready Leader', 'jmp-2 Ready', 'jmp-3 Ready']);
  const tasks = await viaBastion(hosts[0]!, "docker service ps agent --filter desired-state=running --format '{{.CurrentState}}'");
  assert.equal(tasks.stdout.trim().split('\n').filter((l) => l.startsWith('Running')).length, 3, tasks.stdout);
  // The bastion's key is recorded like any host's, in the cluster's known_hosts.
  const known = readFileSync(join(home, cluster, 'known_hosts'), 'utf8');
  const pub = readFileSync(join(dir, 'bastion_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  assert.ok(known.includes(`[${bastion.ssh.host}]:${STOCK_PORT} ${pub}`), known);

  const again = await cli(['up', '--json', '-i', inventory], env);
  assert.equal(again.code, 0, again.stderr);
});

test('a bastion whose host key changed is refused, named, with the way to accept it', { skip, timeout: 5 * 60_000 }, async () => {
  await stopSshd(sshds[0]!);
  const rebuilt = await stockSshd(bastionCtx, 'bastion', bastion.ssh.host, join(dir, 'bastion_key_rebuilt'), 'bastion');
  try {
    const r = await cli(['exec', '-i', inventory, 'managers', '--', 'true'], env, 2 * 60_000);
    assert.notEqual(r.code, 0, r.stdout);
    const text = r.stdout + r.stderr;
    assert.match(text, new RegExp(`via bastion root@${bastion.ssh.host.replace(/\./g, '\\.')}:${STOCK_PORT}: host key`), text);
    assert.match(text, /hint: .*bastion was rebuilt on purpose.*known_hosts/, text);
    assert.equal(accepted(rebuilt), 0, 'nothing logged in to the rebuilt bastion');
  } finally {
    await stopSshd(rebuilt);
    sshds[0] = await stockSshd(bastionCtx, 'bastion', bastion.ssh.host, join(dir, 'bastion_key'), 'bastion');
  }
});

test('200 connections fan out through one bastion connection past stock MaxSessions and MaxStartups', { skip, timeout: 5 * 60_000 }, async () => {
  const keys = new Map<string, Buffer>();
  const store: HostKeyStore = {
    check: (k) => {
      const seen = keys.get(`${k.host}:${k.port}`);
      return seen === undefined ? 'new' : seen.equals(k.key) ? 'match' : 'mismatch';
    },
    record: (k) => void keys.set(`${k.host}:${k.port}`, k.key),
  };
  const pool = new BastionPool();
  const target = {
    name: 'jmp-1',
    host: hosts[0]!.privateAddress,
    port: STOCK_PORT,
    user: 'root',
    keyPath: key,
    jump: [{ host: bastion.ssh.host, port: STOCK_PORT, user: 'root', keyPath: key }],
  };
  const N = 200;
  const started = Date.now();
  const results = await Promise.allSettled(Array.from({ length: N }, () => connectSsh(target, store, { pool, readyTimeoutMs: 60_000 })));
  const open = results.filter((r): r is PromiseFulfilledResult<SshRemote> => r.status === 'fulfilled').map((r) => r.value);
  try {
    const failures = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(failures.slice(0, 3), [], `${failures.length} of ${N} failed`);
    const outs = await Promise.all(open.map((s) => s.run('echo ok')));
    assert.equal(outs.filter((o) => o.code === 0 && o.stdout.trim() === 'ok').length, N);
    console.log(`${N} connections through one bastion in ${Date.now() - started} ms`);
    const ss = await inNs(nsOf(bastionCtx, 'bastion'), ['ss', '-Htn', 'state', 'established', `( sport = :${STOCK_PORT} )`]);
    assert.equal(ss.stdout.trim().split('\n').filter(Boolean).length, 1, `connections held by the bastion's sshd:\n${ss.stdout}`);
    assert.equal(pool.size, 1);
  } finally {
    for (const s of open) await s.close();
  }
  assert.equal(pool.size, 0, 'the bastion connection ends with its last host');
});

test('down through the bastion leaves the swarm and removes what swarmform added', { skip, timeout: 5 * 60_000 }, async () => {
  const r = await cli(['down', '--json', '-i', inventory], env);
  assert.equal(r.code, 0, r.stderr);
  for (const m of hosts) {
    const state = await viaBastion(m, "docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo gone; iptables -S SWARMFORM >/dev/null 2>&1 && echo chain || echo nochain");
    assert.equal(state.code, 0, state.stderr);
    assert.match(state.stdout, /nochain/, `${m.name}: SWARMFORM chain removed`);
    assert.doesNotMatch(state.stdout, /^active$/m, `${m.name} left the swarm`);
  }
});
