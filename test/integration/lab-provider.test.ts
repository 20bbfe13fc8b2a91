/**
 * The lab provider on the real kernel (needs root): hosts come up like fresh servers reachable over SSH and SFTP,
 * with their own hostname, address and firewall, and teardown leaves nothing behind.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { labProvider } from '../../src/providers/lab/index.js';
import { defaultBridgeName, netnsName, netnsPrefix, ruleComment, vethName } from '../../src/providers/lab/names.js';
import { clusterDir, hostPaths } from '../../src/providers/lab/paths.js';
import type { Machine } from '../../src/base/machine.js';
import { cleanupLabClusters, labHost, labTestContext, type LabTestContext } from '../support/lab-cleanup.js';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'lab tests need root';

after(cleanupLabClusters);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], timeoutMs = 20_000): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function sshOpts(m: Machine): string[] {
  return [
    '-i',
    m.ssh.keyPath!,
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'LogLevel=ERROR',
    '-o',
    'ConnectTimeout=5',
  ];
}

/** Runs a command on a lab host with the system ssh client. */
function ssh(m: Machine, command: string): Promise<Ran> {
  return exec('ssh', [...sshOpts(m), `root@${m.ssh.host}`, command]);
}

/** ssh, retried briefly: create only makes a quick check that sshd listens. */
async function sshReady(m: Machine): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if ((await ssh(m, 'true')).code === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`ssh to ${m.name} (${m.ssh.host}) never worked`);
}

async function recordedPid(ctx: LabTestContext, name: string): Promise<number> {
  const n = Number((await fs.readFile(hostPaths(ctx.inventory.cluster, name).pidFile, 'utf8')).trim());
  assert.ok(Number.isInteger(n) && n > 1, `recorded sshd pid of ${name}`);
  return n;
}

/** Alive and not a zombie (a zombie holds no namespace; its parent may just not have reaped it yet). */
function alive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** Asserts nothing of the cluster is left: netns, processes, veths, bridge, FORWARD rules, files. */
async function assertGone(ctx: LabTestContext, pids: number[], hosts: string[]): Promise<void> {
  const cluster = ctx.inventory.cluster;
  const ns = (await exec('ip', ['netns', 'list'])).stdout;
  assert.ok(!ns.includes(netnsPrefix(cluster)), `netns left: ${ns}`);
  for (const pid of pids) assert.equal(alive(pid), false, `process ${pid} of the cluster still alive`);
  for (const h of hosts) {
    assert.notEqual((await exec('ip', ['link', 'show', 'dev', vethName(cluster, h)])).code, 0, `veth of ${h} left`);
  }
  assert.notEqual((await exec('ip', ['link', 'show', 'dev', defaultBridgeName(cluster)])).code, 0, 'bridge left');
  const rules = (await exec('iptables', ['-w', '5', '-S', 'FORWARD'])).stdout;
  assert.ok(!rules.includes(ruleComment(cluster)), `FORWARD rules left:\n${rules}`);
  assert.equal(existsSync(clusterDir(cluster)), false, `${clusterDir(cluster)} left`);
  assert.deepEqual(await labProvider.list(ctx), []);
}

test('lab hosts start like fresh servers and teardown removes everything', { skip }, async () => {
  const ctx = labTestContext('198.18.1.0/24');
  const cluster = ctx.inventory.cluster;
  await labProvider.preflight(ctx);
  const hosts = [labHost('alpha', 'manager'), labHost('beta')];
  labProvider.validate(hosts, ctx);
  assert.match(labProvider.plan(hosts, ctx)[0], /^lab: 2 hosts on bridge sfb-[0-9a-f]{8} 198\.18\.1\.0\/24 \(198\.18\.1\.2-198\.18\.1\.3\)$/);

  await labProvider.network(ctx);
  const created = await labProvider.create(hosts, ctx);
  assert.deepEqual(created.failed.map((f) => f.error.message), []);
  const byName = new Map(created.done.map((m) => [m.name, m]));
  const a = byName.get('alpha')!;
  const b = byName.get('beta')!;
  assert.equal(a.privateAddress, '198.18.1.2');
  assert.equal(b.privateAddress, '198.18.1.3');
  assert.equal(a.providerId, netnsName(cluster, 'alpha'));
  assert.equal(a.init, 'none');
  assert.equal(a.role, 'manager');
  assert.deepEqual(a.ssh, { host: '198.18.1.2', port: 22, user: 'root', keyPath: path.join(ctx.stateDir, 'lab', 'id_ed25519'), config: false });
  assert.equal((await fs.stat(a.ssh.keyPath!)).mode & 0o777, 0o600);
  assert.deepEqual(
    ctx.seen.filter((e) => e.type === 'step' && e.status === 'ok').map((e) => (e.type === 'step' ? e.host : '')).sort(),
    ['alpha', 'beta'],
  );
  assert.deepEqual((await labProvider.list(ctx)).map((m) => m.name), ['alpha', 'beta']);
  const pids = [await recordedPid(ctx, 'alpha'), await recordedPid(ctx, 'beta')];

  try {
    await sshReady(a);
    await sshReady(b);
    for (const m of [a, b]) {
      assert.equal((await ssh(m, 'hostname')).stdout.trim(), m.name);
      assert.match((await ssh(m, 'ip -4 addr show eth0')).stdout, new RegExp(`inet ${m.privateAddress.replace(/\./g, '\\.')}/24 `));
      // No engine the machine has is visible, and none runs in the host's network namespace.
      const engine = await ssh(m, 'command -v dockerd docker containerd runc ctr; echo "rc=$?"');
      assert.equal(engine.stdout.trim(), 'rc=1', `engine visible on ${m.name}: ${engine.stdout}`);
      const running = await ssh(
        m,
        'for p in $(pgrep -x dockerd); do [ "$(readlink /proc/$p/ns/net)" = "$(readlink /proc/self/ns/net)" ] && echo "$p"; done; true',
      );
      assert.equal(running.stdout.trim(), '', `dockerd running on ${m.name}`);
      assert.equal((await ssh(m, 'ls -A /var/lib/docker /usr/local/bin')).stdout.replace(/\/\S+:|\s/g, ''), '');
    }

    // Firewall: a listener on beta's 2377 is reachable from beta itself but not from alpha; 22 is open.
    const listen = await ssh(b, 'setsid busybox nc -l -p 2377 </dev/null >/dev/null 2>&1 & sleep 0.3; timeout 2 bash -c "</dev/tcp/198.18.1.3/2377"');
    assert.equal(listen.code, 0, `listener on beta:2377 not reachable locally: ${listen.stderr}`);
    const blocked = await ssh(a, 'timeout 2 bash -c "</dev/tcp/198.18.1.3/2377"');
    assert.notEqual(blocked.code, 0, 'alpha reached beta:2377 through the firewall');
    assert.equal((await ssh(a, 'timeout 2 bash -c "</dev/tcp/198.18.1.3/22"')).code, 0, 'alpha cannot reach beta:22');

    // SFTP works (bootstrap uploads the engine bundle this way), into the host's own /tmp.
    const local = path.join(ctx.stateDir, 'upload.txt');
    const batch = path.join(ctx.stateDir, 'sftp.batch');
    const remote = `/tmp/swarmform-${cluster}.txt`;
    await fs.writeFile(local, `hello ${cluster}\n`);
    await fs.writeFile(batch, `put ${local} ${remote}\n`);
    const sftp = await exec('sftp', [...sshOpts(a), '-b', batch, `root@${a.ssh.host}`]);
    assert.equal(sftp.code, 0, sftp.stderr);
    assert.equal((await ssh(a, `cat ${remote}`)).stdout, `hello ${cluster}\n`);
    assert.equal(existsSync(remote), false, 'the host /tmp is its own, not the machine one');

    // Like containers: processes with namespaces of their own that ignore SIGTERM. One is the child of a host
    // process (a container under its containerd-shim); the other is already an orphan of init whose only tie to
    // the host is its mount table (a container whose shim died in an earlier, interrupted teardown).
    const n = 600 + Math.floor(Math.random() * 300);
    const child = `sleep ${n}`;
    const orphan = `sleep ${n + 1}`;
    await ssh(a, `setsid sh -c 'unshare --net --mount sh -c "trap \\"\\" TERM; exec ${child}"' </dev/null >/dev/null 2>&1 &`);
    await ssh(a, `setsid unshare --net --mount sh -c 'trap "" TERM; exec ${orphan}' </dev/null >/dev/null 2>&1 &`);
    await new Promise((r) => setTimeout(r, 300));
    for (const marker of [child, orphan]) {
      const found = (await exec('pgrep', ['-x', '-f', marker])).stdout.trim().split('\n').filter(Boolean).map(Number);
      assert.equal(found.length, 1, `expected one "${marker}"`);
      pids.push(...found);
    }
    const orphanPid = pids[pids.length - 1];
    assert.equal(readFileSync(`/proc/${orphanPid}/stat`, 'utf8').split(') ')[1].split(' ')[1], '1', 'the orphan is a child of init');
  } finally {
    const destroyed = await labProvider.destroy(created.done, ctx);
    assert.deepEqual(destroyed.failed.map((f) => f.error.message), []);
    assert.deepEqual(destroyed.done.sort(), ['alpha', 'beta']);
    await labProvider.teardown(ctx, { force: false });
  }
  await assertGone(ctx, pids, ['alpha', 'beta']);
  // Idempotent: a second teardown of a cluster that is gone succeeds.
  await labProvider.teardown(ctx, { force: false });
  await labProvider.teardown(ctx, { force: true });
});

test('create is idempotent and keeps addresses stable when hosts are added', { skip }, async () => {
  const ctx = labTestContext('198.18.2.0/24');
  try {
    const first = await labProvider.create([labHost('x'), labHost('y')], ctx);
    assert.deepEqual(first.failed.map((f) => f.error.message), []);
    const pidX = await recordedPid(ctx, 'x');
    const pidY = await recordedPid(ctx, 'y');

    const again = await labProvider.create([labHost('x'), labHost('y'), labHost('z')], ctx);
    assert.deepEqual(again.failed.map((f) => f.error.message), []);
    const addr = Object.fromEntries(again.done.map((m) => [m.name, m.privateAddress]));
    assert.deepEqual(addr, { x: '198.18.2.2', y: '198.18.2.3', z: '198.18.2.4' });
    assert.equal(await recordedPid(ctx, 'x'), pidX, 'sshd of x was restarted');
    assert.equal(await recordedPid(ctx, 'y'), pidY, 'sshd of y was restarted');
    const reused = ctx.seen.filter((e) => e.type === 'step' && e.status === 'ok' && /already running/.test(e.message ?? ''));
    assert.equal(reused.length, 2);

    // A destroyed host frees its address; the others keep theirs.
    const y = again.done.find((m) => m.name === 'y')!;
    assert.deepEqual((await labProvider.destroy([y], ctx)).done, ['y']);
    assert.deepEqual((await labProvider.destroy([y], ctx)).done, ['y'], 'a host already gone counts as done');
    assert.equal(alive(pidY), false);
    const third = await labProvider.create([labHost('x'), labHost('z'), labHost('w')], ctx);
    const addr3 = Object.fromEntries(third.done.map((m) => [m.name, m.privateAddress]));
    assert.deepEqual(addr3, { x: '198.18.2.2', z: '198.18.2.4', w: '198.18.2.3' });
    assert.equal(await recordedPid(ctx, 'x'), pidX);
  } finally {
    await labProvider.teardown(ctx, { force: false });
  }
  await assertGone(ctx, [], ['x', 'y', 'z', 'w']);
});

test('teardown --force removes a crashed run without machine.json', { skip }, async () => {
  const ctx = labTestContext('198.18.3.0/24');
  const cluster = ctx.inventory.cluster;
  const created = await labProvider.create([labHost('crash-1'), labHost('crash-2')], ctx);
  assert.deepEqual(created.failed.map((f) => f.error.message), []);
  const pids = [await recordedPid(ctx, 'crash-1'), await recordedPid(ctx, 'crash-2')];
  await sshReady(created.done[0]);
  // Something started over SSH must go too (it is neither sshd nor in a recorded file).
  await ssh(created.done[0], 'setsid sleep 600 </dev/null >/dev/null 2>&1 &');

  // The crash: every record of the cluster is gone, its kernel objects and processes are not.
  await fs.rm(clusterDir(cluster), { recursive: true, force: true });
  assert.deepEqual(await labProvider.list(ctx), []);
  assert.ok((await exec('ip', ['netns', 'list'])).stdout.includes(netnsName(cluster, 'crash-1')));
  const sleeper = (await exec('pgrep', ['-f', '^sleep 600$'])).stdout.trim().split('\n').filter(Boolean).map(Number);

  await labProvider.teardown(ctx, { force: true });
  await assertGone(ctx, pids, ['crash-1', 'crash-2']);
  for (const pid of sleeper) assert.equal(alive(pid), false, `sleep ${pid} started over ssh survived`);
});

test('settings outside the lab range and bad names are usage errors', { skip: false }, () => {
  const ctx = labTestContext('10.0.0.0/24');
  assert.throws(() => labProvider.validate([labHost('a')], ctx), /providers\.lab\.subnet: .*outside 198\.18\.0\.0\/15/);
  const ok = labTestContext('198.18.4.0/30');
  assert.throws(() => labProvider.validate([labHost('a'), labHost('b')], ok), /holds 1 hosts/);
  assert.throws(() => labProvider.validate([labHost('Bad_Name')], ok), /host name "Bad_Name"/);
  assert.deepEqual(labProvider.info().name, 'lab');
});
