/**
 * Lab OS hosts on the real kernel (needs root, mmdebstrap, systemd-nspawn, busybox, dpkg-dev and the Debian mirror
 * for the first image build): a Debian system booted under systemd-nspawn in the host's namespace, reached as its
 * login user with sudo, no root login, no engine, and packages from the lab's own mirror on the bridge. Checked with
 * the host's own tools over the system ssh client; teardown leaves nothing behind.
 *
 * Prints its measurements (image build, boot to sshd, RSS and disk per host) as `labos:` lines.
 */
import { execFile } from 'node:child_process';
import { promises as fs, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus } from '../../src/base/events.js';
import type { HostSpec, Inventory } from '../../src/inventory/types.js';
import { labProvider } from '../../src/providers/lab/index.js';
import { MIRROR_PORT } from '../../src/providers/lab/mirror.js';
import { imageName, osImage } from '../../src/providers/lab/os-image.js';
import { netnsName } from '../../src/providers/lab/names.js';
import { netnsInode } from '../../src/providers/lab/netns.js';
import { osHostPaths } from '../../src/providers/lab/paths.js';
import type { ProviderContext } from '../../src/providers/provider.js';
import type { Machine } from '../../src/base/machine.js';
import { labLeftovers } from '../support/lab.js';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'lab tests need root';

const CLUSTER = 'labos';
const SUBNET = '198.18.60.0/24';
const GATEWAY = '198.18.60.1';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], timeoutMs = 60_000): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function sshArgs(m: Machine, user: string): string[] {
  return [
    '-i', m.ssh.keyPath!,
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'LogLevel=ERROR',
    '-o', 'ConnectTimeout=5',
    `${user}@${m.ssh.host}`,
  ];
}

/** Runs a command on the host as its login user (or `user`) with the system ssh client. */
function ssh(m: Machine, command: string, user = m.ssh.user, timeoutMs = 120_000): Promise<Ran> {
  return exec('ssh', [...sshArgs(m, user), command], timeoutMs);
}

async function sshReady(m: Machine, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if ((await ssh(m, 'true', m.ssh.user, 10_000)).code === 0) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`ssh to ${m.name} (${m.ssh.host}) never worked`);
}

/** systemctl is-system-running, waited for while it says starting. */
async function systemState(m: Machine): Promise<string> {
  let state = '';
  for (let i = 0; i < 120; i++) {
    state = (await ssh(m, 'systemctl is-system-running')).stdout.trim();
    if (state !== 'starting' && state !== 'initializing' && state !== '') return state;
    await new Promise((r) => setTimeout(r, 500));
  }
  return state;
}

function host(name: string, options: Record<string, unknown> = {}): HostSpec {
  return {
    name,
    group: 'workers',
    provider: 'lab',
    role: 'worker',
    labels: {},
    ssh: { user: 'root', port: 22, connectTimeout: 30 },
    options,
  };
}

const hosts = [host('h1'), host('h2')];
const inventory: Inventory = {
  file: path.join(os.tmpdir(), `${CLUSTER}.yml`),
  cluster: CLUSTER,
  providers: { lab: { subnet: SUBNET, os: 'debian-12' } },
  swarm: {
    advertise: { kind: 'private' },
    joinConcurrency: 10,
    bootstrapConcurrency: 32,
    joinPacing: 'adaptive',
    install: 'auto',
    firewall: true,
    drainManagers: false,
    ingress: true,
    daemon: {},
    autolock: false,
    profile: 'default',
  },
  hosts,
  services: [],
  stacks: [],
  images: [],
} as unknown as Inventory;
const stateDir = mkdtempSync(path.join(os.tmpdir(), `${CLUSTER}-state-`));
const events = new EventBus();
const seen: string[] = [];
events.on((e) => {
  const ev = e as { type: string; message?: string; host?: string; status?: string };
  if (ev.message) seen.push(`${ev.host ?? ''} ${ev.status ?? ev.type}: ${ev.message}`);
});
const ctx: ProviderContext = { inventory, stateDir, events };

after(async () => {
  if (!isRoot) return;
  try {
    await labProvider.teardown(ctx, { force: true });
  } catch (e) {
    console.error(`cleanup of lab cluster ${CLUSTER} failed: ${(e as Error).message}`);
  }
  rmSync(stateDir, { recursive: true, force: true });
});

/** Sum of VmRSS (kB) of the processes in the host's network namespace (its machine, systemd and services). */
async function rssKb(name: string): Promise<{ kb: number; procs: number }> {
  const ino = await netnsInode(netnsName(CLUSTER, name));
  let kb = 0;
  let procs = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if ((await fs.readlink(`/proc/${pid}/ns/net`)) !== `net:[${ino}]`) continue;
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      procs++;
      if (m) kb += Number(m[1]);
    } catch {
      // ended while we looked
    }
  }
  return { kb, procs };
}

async function duKb(dir: string): Promise<number> {
  const r = await exec('du', ['-sk', dir]);
  return Number(r.stdout.split(/\s+/)[0]);
}

let machines: Machine[] = [];

before(async () => {
  if (!isRoot) return;
  // A crashed earlier run of this file: start clean.
  await labProvider.teardown(ctx, { force: true }).catch(() => undefined);
});

test('OS image: built once, then found in the cache', { skip, timeout: 30 * 60_000 }, async () => {
  const choice = { os: 'debian-12' as const, user: 'admin', firewall: 'nftables' as const, packages: [] as string[] };
  const t0 = Date.now();
  const image = await osImage(choice, (m) => console.log(`labos: ${m}`));
  const first = Date.now() - t0;
  const info = JSON.parse(readFileSync(path.join(path.dirname(image.rootfs), 'image.json'), 'utf8')) as { buildSeconds: number };
  console.log(`labos: image ${image.name}: build ${info.buildSeconds} s (this call ${(first / 1000).toFixed(1)} s), rootfs ${(await duKb(image.rootfs)) >> 10} MB`);
  assert.equal(image.name, imageName(choice));
  const t1 = Date.now();
  await osImage(choice);
  assert.ok(Date.now() - t1 < 2_000, 'a built image is only looked up');
  assert.equal(readFileSync(path.join(image.rootfs, 'etc', 'machine-id'), 'utf8'), '', 'empty machine id in the image');
  assert.deepEqual(readdirSync(path.join(image.rootfs, 'etc', 'ssh')).filter((f) => f.startsWith('ssh_host_')), [], 'no host keys in the image');
  assert.ok(!readdirSync(path.join(image.rootfs, 'usr', 'bin')).includes('dockerd'), 'no engine in the image');
});

test('OS hosts boot Debian under systemd, reachable as the login user with sudo', { skip, timeout: 15 * 60_000 }, async () => {
  labProvider.validate(hosts, ctx);
  assert.throws(() => labProvider.validate([host('x', { os: 'debian-99' })], ctx), /options\.os/);
  assert.throws(() => labProvider.validate([host('x', { user: 'root' })], ctx), /options\.user/);
  const t0 = Date.now();
  const r = await labProvider.create(hosts, ctx);
  console.log(`labos: created ${r.done.length} hosts in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${seen.filter((s) => s.includes('booted')).join('; ')}`);
  assert.deepEqual(r.failed.map((f) => `${f.name}: ${f.error.message}`), []);
  machines = r.done.sort((a, b) => a.name.localeCompare(b.name));
  for (const m of machines) {
    assert.equal(m.ssh.user, 'admin');
    assert.equal(m.ssh.become, 'sudo');
    assert.equal(m.init, 'systemd');
    await sshReady(m);
  }
  const m = machines[0];
  const state = await systemState(m);
  assert.ok(['running', 'degraded'].includes(state), `is-system-running: ${state} ${(await ssh(m, 'systemctl --failed --no-legend')).stdout}`);
  if (state === 'degraded') console.log(`labos: degraded: ${(await ssh(m, 'systemctl --failed --no-legend')).stdout.trim()}`);
  assert.match((await ssh(m, 'id')).stdout, /uid=1000\(admin\)/);
  assert.equal((await ssh(m, 'hostname')).stdout.trim(), 'h1');
  assert.equal((await ssh(m, 'sudo -n true')).code, 0, 'passwordless sudo');
  assert.notEqual((await ssh(m, 'true', 'root')).code, 0, 'root login is refused');
  assert.match((await ssh(m, 'sudo -n sshd -T')).stdout, /^permitrootlogin no$/m);
  assert.match((await ssh(m, 'sudo -n sshd -T')).stdout, /^passwordauthentication no$/m);
  assert.notEqual((await ssh(m, 'command -v dockerd')).code, 0, 'no engine on a fresh host');
  assert.equal((await ssh(m, 'cat /proc/1/comm')).stdout.trim(), 'systemd');
  assert.equal((await ssh(m, 'systemctl is-enabled nftables')).stdout.trim(), 'enabled');
  // Each host its own identity.
  const ids = await Promise.all(machines.map((x) => ssh(x, 'cat /etc/machine-id; sudo -n cat /etc/ssh/ssh_host_ed25519_key.pub')));
  assert.notEqual(ids[0].stdout, ids[1].stdout);
  // No nameserver: lookups fail at once.
  const t1 = Date.now();
  assert.notEqual((await ssh(m, 'getent hosts deb.debian.org')).code, 0);
  assert.ok(Date.now() - t1 < 10_000, 'a lookup fails fast');
  // The lab mirror, from inside the host, and the other host across the bridge.
  const list = `deb [trusted=yes] http://${GATEWAY}:${MIRROR_PORT}/bookworm ./`;
  const upd = await ssh(
    m,
    `echo '${list}' | sudo -n tee /etc/apt/sources.list.d/lab.list >/dev/null && sudo -n apt-get -o Dir::Etc::sourceparts=- -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/lab.list update && apt-cache -o Dir::Etc::sourceparts=- -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/lab.list policy docker.io`,
  );
  assert.equal(upd.code, 0, upd.stderr);
  assert.match(upd.stdout, new RegExp(`${GATEWAY.replace(/\./g, '\\.')}:${MIRROR_PORT}/bookworm`));
  assert.match(upd.stdout, /Candidate: \d/);
  assert.equal((await ssh(m, `timeout 5 bash -c 'echo > /dev/tcp/${machines[1].ssh.host}/22'`)).code, 0, 'h1 reaches h2 over the bridge');
  const arts = await labProvider.artifacts(ctx);
  assert.deepEqual(arts.packageMirrors, { bookworm: { url: `http://${GATEWAY}:${MIRROR_PORT}/bookworm`, suite: './', components: [], trusted: true } });
  assert.ok(arts.bundle && arts.images?.length, 'bundle and busybox image still handed over');

  for (const x of machines) {
    const rss = await rssKb(x.name);
    console.log(`labos: ${x.name}: ${rss.procs} processes, RSS ${(rss.kb / 1024).toFixed(0)} MB, disk (upper layer) ${await duKb(osHostPaths(CLUSTER, x.name).upper)} kB`);
  }
  const top = await exec('sh', ['-c', `cd ${osHostPaths(CLUSTER, 'h2').upper} && du -sk */* */*/* 2>/dev/null | sort -n | tail -4 | tr '\\n' ' '`]);
  console.log(`labos: h2's layer, largest: ${top.stdout}`);
  const disk = await duKb(osHostPaths(CLUSTER, 'h2').upper);
  assert.ok(disk < 20 * 1024, `disk per host ${disk} kB`);

  // Re-running create on healthy hosts changes nothing.
  const pid = readFileSync(osHostPaths(CLUSTER, 'h1').pidFile, 'utf8');
  const again = await labProvider.create(hosts, ctx);
  assert.deepEqual(again.failed, []);
  assert.equal(readFileSync(osHostPaths(CLUSTER, 'h1').pidFile, 'utf8'), pid, 'healthy host left alone');
  assert.deepEqual((await labProvider.list(ctx)).map((x) => x.name), ['h1', 'h2']);
});

test('a host reboots with systemctl reboot, and a host whose machine died is booted again on its layer', { skip, timeout: 10 * 60_000 }, async () => {
  const m = machines[0];
  assert.ok(m, 'hosts were created');
  assert.equal((await ssh(m, 'echo kept | sudo -n tee /var/tmp/marker >/dev/null && cat /proc/sys/kernel/random/boot_id')).code, 0);
  const boot1 = (await ssh(m, 'cat /proc/1/stat')).stdout.split(' ')[21];
  await ssh(m, 'sudo -n systemctl reboot', m.ssh.user, 20_000);
  const t0 = Date.now();
  // Wait for it to go down and come back (systemd's start time changes).
  let back = false;
  while (Date.now() - t0 < 120_000) {
    const r = await ssh(m, 'cat /proc/1/stat', m.ssh.user, 10_000);
    if (r.code === 0 && r.stdout.split(' ')[21] !== boot1) {
      back = true;
      break;
    }
    await new Promise((r2) => setTimeout(r2, 500));
  }
  assert.ok(back, 'the host came back after systemctl reboot');
  console.log(`labos: reboot to sshd: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal((await ssh(m, 'cat /var/tmp/marker')).stdout.trim(), 'kept');

  // Crash: kill the machine outright. create boots it again, keeping what it wrote.
  const paths = osHostPaths(CLUSTER, m.name);
  const sup = Number(readFileSync(paths.pidFile, 'utf8').trim());
  // The supervisor, its nspawn, and the container's init (SIGKILL to it ends the host's whole PID namespace).
  const children = async (pid: number) => (await exec('pgrep', ['-P', String(pid)])).stdout.split('\n').filter(Boolean).map(Number);
  const nspawn = await children(sup);
  const init = (await Promise.all(nspawn.map(children))).flat();
  for (const p of [...init, ...nspawn, sup]) process.kill(p, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 1_000));
  assert.notEqual((await ssh(m, 'true', m.ssh.user, 10_000)).code, 0, 'the host is down');
  const r = await labProvider.create([hosts[0]], ctx);
  assert.deepEqual(r.failed.map((f) => f.error.message), []);
  await sshReady(m);
  assert.equal((await ssh(m, 'cat /var/tmp/marker')).stdout.trim(), 'kept', 'the layer survived');
});

test('down: orderly shutdown, then nothing is left; down --force with no state finds a crashed run', { skip, timeout: 10 * 60_000 }, async () => {
  assert.ok(machines.length > 0, 'hosts were created');
  const t0 = Date.now();
  const d = await labProvider.destroy([machines[1]], ctx);
  assert.deepEqual(d.failed, []);
  console.log(`labos: destroy of one booted host: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // Teardown as after a crash: no machine list, only what the lab finds.
  await labProvider.teardown(ctx, { force: true });
  assert.deepEqual(await labLeftovers(CLUSTER), []);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  assert.ok(!mounts.includes(`/${CLUSTER}/hosts/`), 'no mounts under the cluster dir');
  const nspawns = (await exec('pgrep', ['-f', `/lab/${CLUSTER}/hosts/`])).stdout.trim();
  assert.equal(nspawns, '', 'no machine of the cluster is running');
  // The image and mirror stay for the next cluster.
  assert.ok((await exec('test', ['-d', path.join(path.dirname(osHostPaths(CLUSTER, 'h1').dir), '..', '..', 'cache', 'mirror', 'bookworm')])).code === 0);
});
