/**
 * OS hosts: a Debian system booted under systemd-nspawn, with systemd as PID 1, inside the host's network namespace.
 * The root file system is an overlay: the shared read-only image (os-image.ts) below, the host's own writable layer
 * above, so a host costs only what it changed. Like a server: re-running create on a healthy host changes nothing, a
 * host whose machine stopped is booted again on its kept layer, and `systemctl reboot` inside brings it back.
 *
 * Process tree of a booted host (all in the host's network namespace):
 *   sh (the supervisor: a private mount namespace holding the overlay; boots again when nspawn exits 133 = reboot)
 *   └─ systemd-nspawn
 *      └─ systemd (PID 1 of the host's own PID namespace) ─ sshd, journald, ...
 * The overlay lives only in the supervisor's mount namespace, so it goes away with the host's processes and never
 * leaks into other namespaces or survives a crash as a stale mount.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ExternalError, UsageError } from '../../base/errors.js';
import type { Machine } from '../../base/machine.js';
import { formatIp, gatewayOf } from './addresses.js';
import { exists } from './cache.js';
import { createHostError, run, tail } from './exec.js';
import { readMachine, stopHostRemains, type HostOutcome, type HostPlan } from './host.js';
import { netnsName, vethName } from './names.js';
import { createHostNetwork, netnsExists, netnsInode, netnsPath } from './netns.js';
import { imageByName, type OsImage } from './os-image.js';
import { signalAll, wouldNotStop } from './processes.js';
import { hostsDir, osHostPaths, type OsHostPaths } from './paths.js';

/** Everything needed to make one OS host: a host's plan, with the OS image in place of the engine layers. */
export interface OsHostPlan extends Omit<HostPlan, 'maskLayers' | 'engineLayer'> {
  image: OsImage;
}

/** What os.json records: the image the host's layer belongs to. */
interface OsRecord {
  image: string;
  os: string;
  codename: string;
  user: string;
  firewall: string;
}

/** Marker argument of the supervisor's command line (its $0), with the host's root path after it. */
const SUPERVISOR_MARK = 'swarmform-lab-os';

/** Time from start to sshd answering before the host counts as failed (booted in about 1 s when idle). */
const BOOT_TIMEOUT_MS = 120_000;

/** Time an orderly shutdown may take before the machine is killed. */
const SHUTDOWN_TIMEOUT_MS = 15_000;

/**
 * The supervisor, run by `unshare --mount --propagation private` inside the host's network namespace. Arguments:
 * root, lowerdir, upperdir, workdir, then the nspawn command line.
 *
 * It first drops the copies of other network namespaces' mounts (nsfs) its new mount namespace inherited, which would
 * otherwise keep other hosts' namespaces alive after `ip netns del`. Then it mounts the overlay (private: invisible to
 * the rest of the machine) and runs nspawn, again after each reboot (nspawn exits 133 when the container reboots;
 * systemd-nspawn@.service does the same with RestartForceExitStatus=133). SIGTERM is passed on to nspawn, which turns
 * it into an orderly shutdown of the container (SIGRTMIN+3 to its systemd), and ends the loop.
 */
const SUPERVISOR_SCRIPT = `set -e
root=$1; lower=$2; upper=$3; work=$4; shift 4
for mp in $(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "nsfs") print $5; break } }' /proc/self/mountinfo); do
  umount -l "$mp" 2>/dev/null || true
done
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$root"
set +e
stop=0; child=
trap 'stop=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT HUP
while [ "$stop" = 0 ]; do
  "$@" &
  child=$!
  wait "$child"; rc=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
  child=
  [ "$stop" = 0 ] && [ "$rc" = 133 ] || exit "$rc"
  echo "swarmform lab: the host rebooted; booting it again" >&2
done
`;

/**
 * systemd-nspawn's command line. Each option is there for a reason found by leaving it out (see docs/../lab.md).
 * The network namespace is inherited from the supervisor (started with nsenter --net), so no --network-* option.
 */
export function nspawnArgs(plan: { root: string; hostname: string; machine: string }): string[] {
  return [
    'systemd-nspawn',
    `--directory=${plan.root}`,
    // Run the image's init (systemd) as PID 1, not a shell.
    '--boot',
    // The container's own name (its machine id comes from /etc/machine-id, written per host) and hostname.
    `--machine=${plan.machine}`,
    `--hostname=${plan.hostname}`,
    // This machine has no systemd-machined and no system bus to register with, and nspawn is not started by systemd:
    // without these two nspawn fails trying to talk to them.
    '--register=no',
    '--keep-unit',
    // The host's /etc/resolv.conf is written by us (no nameserver); nspawn must not copy the machine's in.
    '--resolv-conf=off',
    // No journal linking into the machine's /var/log/journal (the host keeps its journal in its own layer).
    '--link-journal=no',
    // The host's console goes to the console log (stdout); nothing reads from it.
    '--console=read-only',
    // Without it iptables/nft inside fail with "permission denied" and dockerd, containerd and runc need most
    // capabilities (SYS_ADMIN for mounts, NET_ADMIN for bridges and VXLAN, SYS_RESOURCE, ...). Tried without it
    // (nspawn's default set): iptables and nft fail and docker.service fails to start.
    '--capability=all',
    // dockerd and runc use keyring (session keyrings per container) and bpf (device cgroup programs) calls that
    // nspawn's default seccomp filter refuses. Tried without: dockerd starts and swarm init works, but every
    // container fails ("runc create failed: unable to join session keyring: operation not permitted").
    '--system-call-filter=@keyring bpf',
    // The machine's cgroup hierarchy, writable (with SYSTEMD_NSPAWN_API_VFS_WRITABLE): containerd and runc create
    // cgroups for containers. Tried without: dockerd starts, containers fail ("unable to apply cgroup configuration:
    // mkdir /sys/fs/cgroup/cpuset/..."). Without SYSTEMD_NSPAWN_API_VFS_WRITABLE, docker.service fails to start.
    '--bind=/sys/fs/cgroup',
    // SIGTERM to nspawn means an orderly shutdown of the host (the default, said explicitly since stop relies on it).
    '--kill-signal=SIGRTMIN+3',
  ];
}

/**
 * Room in the kernel's inotify limits for `osHosts` booted systems. Every OS host runs systemd, journald, logind,
 * dbus and the engine as this machine's root (no user namespace), and each takes inotify instances from root's
 * fs.inotify.max_user_instances (128 by default): at 3+30 hosts systemd failed to boot with "Failed to create
 * control group inotify object: Too many open files". Raises the limits (never lowers them), as the neighbour table
 * is raised, leaving room for other clusters; returns a message when it changed something.
 */
export async function ensureInotifyCapacity(osHosts: number): Promise<string | undefined> {
  if (osHosts === 0) return undefined;
  const want: Record<string, number> = {
    max_user_instances: Math.max(1024, 2 ** Math.ceil(Math.log2(64 * osHosts))),
    max_user_watches: Math.max(524_288, 16_384 * osHosts),
  };
  const changed: string[] = [];
  for (const [key, value] of Object.entries(want)) {
    const file = `/proc/sys/fs/inotify/${key}`;
    let have: number;
    try {
      have = Number((await fs.readFile(file, 'utf8')).trim());
    } catch {
      continue;
    }
    if (have >= value) continue;
    await fs.writeFile(file, `${value}\n`);
    changed.push(`fs.inotify.${key} ${have} -> ${value}`);
  }
  return changed.length ? `raised the kernel's inotify limits for ${osHosts} OS hosts: ${changed.join(', ')}` : undefined;
}

/** The Machine record of an OS host: the image's login user with sudo, systemd as init. */
export function osMachineOf(plan: OsHostPlan): Machine {
  return {
    name: plan.spec.name,
    role: plan.spec.role,
    group: plan.spec.group,
    provider: 'lab',
    providerId: netnsName(plan.cluster, plan.spec.name),
    privateAddress: plan.address,
    publicAddress: plan.address,
    // Reached directly on the bridge, whatever the user's OpenSSH config says.
    ssh: { host: plan.address, port: 22, user: plan.image.user, keyPath: plan.keyPath, become: 'sudo', config: false },
    labels: { ...plan.spec.labels },
    init: 'systemd',
  };
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

async function writeJson(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o644 });
  await fs.rename(tmp, file);
}

/** True when the host directory belongs to an OS host. */
export function isOsHostDir(cluster: string, name: string): Promise<boolean> {
  return exists(osHostPaths(cluster, name).osJson);
}

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  args: string[];
}

async function readProc(pid: number): Promise<Proc | undefined> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const rest = stat.slice(close + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    const args = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
    return { pid, ppid: Number(rest[1]), comm: stat.slice(stat.indexOf('(') + 1, close), args };
  } catch {
    return undefined;
  }
}

/** True when a process is an OS host's supervisor or nspawn for a root that `match` accepts. */
function machineRoot(p: Proc): string | undefined {
  const mark = p.args.indexOf(SUPERVISOR_MARK);
  if (mark >= 0 && p.args[mark + 1]) return p.args[mark + 1];
  if (p.comm === 'systemd-nspawn') {
    const d = p.args.find((a) => a.startsWith('--directory='));
    if (d) return d.slice('--directory='.length);
  }
  return undefined;
}

/**
 * Supervisors and nspawn processes of OS hosts whose root is accepted by `match` (an exact host root, or any root
 * below a cluster's hosts directory). Found by their command lines, which name the host's directory.
 */
export async function findMachines(match: (root: string) => boolean): Promise<Proc[]> {
  const out: Proc[] = [];
  for (const e of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid || pid === 1) continue;
    // Cheap filter first: only shells and nspawn can be ours.
    let comm: string;
    try {
      comm = (await fs.readFile(`/proc/${pid}/comm`, 'utf8')).trim();
    } catch {
      continue;
    }
    if (comm !== 'sh' && comm !== 'systemd-nspawn' && comm !== 'dash') continue;
    const p = await readProc(pid);
    const root = p && machineRoot(p);
    if (p && root && match(root)) out.push(p);
  }
  return out;
}


/**
 * Shuts the matching machines down: SIGTERM to each supervisor (passed on to nspawn: an orderly shutdown), or to an
 * nspawn left without one; after {@link SHUTDOWN_TIMEOUT_MS}, SIGKILL for whatever is left. Returns what survived.
 */
export async function stopMachines(match: (root: string) => boolean, timeoutMs = SHUTDOWN_TIMEOUT_MS): Promise<Proc[]> {
  const first = await findMachines(match);
  if (first.length === 0) return [];
  const supervisors = new Set(first.filter((p) => p.args.includes(SUPERVISOR_MARK)).map((p) => p.pid));
  signalAll(first.filter((p) => supervisors.has(p.pid) || !supervisors.has(p.ppid)).map((p) => p.pid), 'SIGTERM');
  const until = Date.now() + timeoutMs;
  let left = first;
  while (Date.now() < until) {
    left = (await Promise.all(left.map((p) => readProc(p.pid)))).filter((p): p is Proc => p !== undefined && machineRoot(p) !== undefined);
    if (left.length === 0) return [];
    await new Promise((r) => setTimeout(r, 100));
  }
  // nspawn first (it takes the container's PID namespace down with it), then the supervisor, so it cannot boot again.
  signalAll(left.filter((p) => p.comm === 'systemd-nspawn').map((p) => p.pid), 'SIGKILL');
  signalAll(left.map((p) => p.pid), 'SIGKILL');
  for (let i = 0; i < 30; i++) {
    left = (await Promise.all(left.map((p) => readProc(p.pid)))).filter((p): p is Proc => p !== undefined);
    if (left.length === 0) return [];
    await new Promise((r) => setTimeout(r, 100));
  }
  return left;
}

/** Stops one OS host's machine (orderly, then by force); keeps its files. */
export async function stopOsMachine(cluster: string, name: string): Promise<void> {
  const root = osHostPaths(cluster, name).root;
  const left = await stopMachines((r) => r === root);
  if (left.length > 0) throw wouldNotStop(left, `${name}: the machine`);
}

/** Stops every OS host machine started from the cluster's hosts directory, recorded or not. */
export async function stopClusterMachines(cluster: string): Promise<string[]> {
  const prefix = `${hostsDir(cluster)}/`;
  const left = await stopMachines((r) => r.startsWith(prefix));
  return left.map((p) => `${p.pid} (${p.comm})`);
}

/** True when the TCP port answers with an SSH banner (sshd really serving, not just a socket listening). */
async function sshBanner(address: string, ms: number): Promise<boolean> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const sock = net.connect({ host: address, port: 22 });
    let data = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(ms, () => done(false));
    sock.on('data', (b: Buffer) => {
      data += b.toString('latin1');
      if (data.includes('SSH-')) done(true);
    });
    sock.once('error', () => done(false));
    sock.once('close', () => done(data.includes('SSH-')));
  });
}

/** The recorded supervisor pid, if that process is still this host's supervisor in this host's netns. */
async function liveSupervisor(paths: OsHostPaths, netns: string): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number((await fs.readFile(paths.pidFile, 'utf8')).trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  const p = await readProc(pid);
  if (!p || !p.args.includes(SUPERVISOR_MARK) || machineRoot(p) !== paths.root) return undefined;
  const ino = await netnsInode(netns);
  try {
    const link = await fs.readlink(`/proc/${pid}/ns/net`);
    if (ino === undefined || link !== `net:[${ino}]`) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

/** A user's uid, gid and home from a passwd file. */
function passwdEntry(text: string, user: string): { uid: number; gid: number; home: string } | undefined {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === user && f.length >= 7) return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
  }
  return undefined;
}

/**
 * The host's view of a path while it is not running: its own layer's copy if it has one, else the image's. A
 * whiteout (a 0/0 character device: deleted by the host) counts as absent.
 */
async function viewOf(paths: OsHostPaths, image: OsImage, rel: string): Promise<string | undefined> {
  for (const base of [paths.upper, image.rootfs]) {
    const p = path.join(base, rel);
    try {
      const st = await fs.lstat(p);
      if (base === paths.upper && st.isCharacterDevice() && st.rdev === 0) return undefined;
      return p;
    } catch {
      // not in this layer
    }
  }
  return undefined;
}

/**
 * Makes directory `rel` exist in the host's layer with the owner and mode the host sees (from its layer or the
 * image), parents first: a directory created in the upper layer with other attributes would change them in the host.
 */
async function upperDir(paths: OsHostPaths, image: OsImage, rel: string, fallback: { uid: number; gid: number; mode: number }): Promise<string> {
  const parts = rel.split('/').filter(Boolean);
  let cur = '';
  for (const part of parts) {
    cur = path.join(cur, part);
    const target = path.join(paths.upper, cur);
    const st = await fs.lstat(target).catch(() => undefined);
    if (st?.isDirectory()) continue;
    if (st) await fs.rm(target, { force: true }); // a whiteout or a file where a directory belongs
    const src = st ? undefined : await fs.lstat(path.join(image.rootfs, cur)).catch(() => undefined);
    const attrs = src?.isDirectory() ? { uid: src.uid, gid: src.gid, mode: src.mode & 0o7777 } : fallback;
    await fs.mkdir(target, { mode: 0o700 });
    await fs.chown(target, attrs.uid, attrs.gid);
    await fs.chmod(target, attrs.mode);
  }
  return path.join(paths.upper, rel);
}

/** Writes a file into the host's layer, replacing whatever is there (a symlink is replaced, never followed). */
async function upperFile(paths: OsHostPaths, image: OsImage, rel: string, content: string, opts: { mode: number; uid?: number; gid?: number }): Promise<void> {
  const dir = path.dirname(rel);
  await upperDir(paths, image, dir, { uid: 0, gid: 0, mode: 0o755 });
  const target = path.join(paths.upper, rel);
  const tmp = `${target}.swarmform-${process.pid}`;
  await fs.writeFile(tmp, content, { mode: opts.mode });
  await fs.chown(tmp, opts.uid ?? 0, opts.gid ?? 0);
  await fs.chmod(tmp, opts.mode);
  await fs.rename(tmp, target);
}

/**
 * Writes what makes the host itself into its layer before it boots: hostname, hosts, resolv.conf (no nameserver),
 * machine id and SSH host keys (only once: a host keeps them across reboots), and the login user's authorized_keys.
 */
async function personalize(plan: OsHostPlan, paths: OsHostPaths): Promise<void> {
  const { image } = plan;
  const name = plan.spec.name;
  await upperFile(paths, image, 'etc/hostname', `${name}\n`, { mode: 0o644 });
  await upperFile(
    paths,
    image,
    'etc/hosts',
    `127.0.0.1\tlocalhost\n${plan.address}\t${name}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n`,
    { mode: 0o644 },
  );
  await upperFile(paths, image, 'etc/resolv.conf', '# swarmform lab: no nameserver, lab hosts reach nothing outside the lab\n', { mode: 0o644 });
  const mid = await viewOf(paths, image, 'etc/machine-id');
  const midText = mid ? await fs.readFile(mid, 'utf8').catch(() => '') : '';
  if (!/^[0-9a-f]{32}\s*$/.test(midText)) await upperFile(paths, image, 'etc/machine-id', `${randomBytes(16).toString('hex')}\n`, { mode: 0o444 });
  // The image has no host keys, so they land in the host's layer. Ed25519 and ECDSA only: `ssh-keygen -A` also makes
  // a 3072-bit RSA key, whose prime search took over 60 s per host while 33 hosts booted on 2 cores (two of a 3+30
  // bench run failed on it); sshd skips the default key files that do not exist without a word.
  await upperDir(paths, image, 'etc/ssh', { uid: 0, gid: 0, mode: 0o755 });
  const sshDir = path.join(paths.upper, 'etc', 'ssh');
  const keysThere = (await fs.readdir(sshDir)).some((f) => f.startsWith('ssh_host_'));
  if (!keysThere) {
    for (const type of ['ed25519', 'ecdsa']) {
      await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `root@${name}`, '-f', path.join(sshDir, `ssh_host_${type}_key`)], { timeoutMs: 60_000 });
    }
  }
  const passwd = await viewOf(paths, image, 'etc/passwd');
  const entry = passwd ? passwdEntry(await fs.readFile(passwd, 'utf8'), image.user) : undefined;
  if (!entry) {
    throw new ExternalError(`the image has no user ${image.user} in /etc/passwd`, { hint: 'the OS image is damaged: remove it with `swarmform lab prune` so the next run builds it again' });
  }
  const home = entry.home.replace(/^\/+/, '');
  const owner = { uid: entry.uid, gid: entry.gid };
  await upperDir(paths, image, home, { ...owner, mode: 0o750 });
  await upperDir(paths, image, path.join(home, '.ssh'), { ...owner, mode: 0o700 });
  await upperFile(paths, image, path.join(home, '.ssh', 'authorized_keys'), `${plan.publicKeys.join('\n')}\n`, { mode: 0o600, ...owner });
}

/** Starts the supervisor (and with it the machine) detached; returns its pid. */
async function boot(plan: OsHostPlan, paths: OsHostPaths, netns: string): Promise<number> {
  const log = await fs.open(paths.log, 'a', 0o640);
  try {
    await log.write(`\n--- swarmform lab: booting ${plan.spec.name} (${new Date().toISOString()}) ---\n`);
    const child = spawn(
      'nsenter',
      [
        `--net=${netnsPath(netns)}`,
        'unshare',
        '--mount',
        '--propagation',
        'private',
        '--',
        '/bin/sh',
        '-c',
        SUPERVISOR_SCRIPT,
        SUPERVISOR_MARK,
        paths.root,
        plan.image.rootfs,
        paths.upper,
        paths.work,
        ...nspawnArgs({ root: paths.root, hostname: plan.spec.name, machine: netns }),
      ],
      {
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
        env: {
          PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          LANG: 'C.UTF-8',
          // /proc/sys and /sys writable inside: dockerd sets sysctls (ip_forward, bridge-nf) and writes cgroups.
          SYSTEMD_NSPAWN_API_VFS_WRITABLE: 'yes',
        },
      },
    );
    let spawnError: Error | undefined;
    child.on('error', (e) => (spawnError = e));
    child.unref();
    if (child.pid === undefined) {
      throw new ExternalError(`could not start systemd-nspawn: ${spawnError?.message ?? 'no pid'}`, { hint: 'apt-get install -y systemd-container' });
    }
    await fs.writeFile(paths.pidFile, `${child.pid}\n`, { mode: 0o644 });
    return child.pid;
  } finally {
    await log.close();
  }
}

/** Waits until sshd greets on the host's address; throws with the console's tail when the machine dies or hangs. */
async function waitForSsh(plan: OsHostPlan, paths: OsHostPaths, pid: number): Promise<void> {
  const until = Date.now() + BOOT_TIMEOUT_MS;
  while (Date.now() < until) {
    if (await sshBanner(plan.address, 1_000)) return;
    if (!(await readProc(pid))) {
      const text = await fs.readFile(paths.log, 'utf8').catch(() => '');
      throw new ExternalError(`the machine stopped while booting${text ? `: ${tail(text, 12)}` : ''}`, { hint: `its console log is ${paths.log}` });
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const text = await fs.readFile(paths.log, 'utf8').catch(() => '');
  throw new ExternalError(`sshd did not answer on ${plan.address}:22 within ${BOOT_TIMEOUT_MS / 1000} s${text ? `: ${tail(text, 12)}` : ''}`, {
    hint: `its console log is ${paths.log}`,
  });
}

/**
 * Makes the OS host exist and run; a healthy host is left untouched (its authorized_keys refreshed through the running
 * machine's view of its root). Throws HostStepError naming the host.
 */
export async function ensureOsHost(plan: OsHostPlan): Promise<HostOutcome & { bootMs?: number }> {
  const name = plan.spec.name;
  const paths = osHostPaths(plan.cluster, name);
  const netns = netnsName(plan.cluster, name);
  try {
    // A host keeps the image its layer was made on, even when the inventory's recipe (and so the image) changed.
    const recorded = await readJson<OsRecord>(paths.osJson);
    if (recorded && recorded.image !== plan.image.name) {
      const own = await imageByName(recorded.image);
      if (!own) {
        throw new UsageError(`${name}: its OS image ${recorded.image} is gone from the cache`, {
          hint: `destroy the host (swarmform down, or remove it from the inventory) so it is made again on ${plan.image.name}`,
        });
      }
      plan = { ...plan, image: own };
    }
    const machine = osMachineOf(plan);
    const before = await readMachine(paths.machineJson);
    const supervisor = await liveSupervisor(paths, netns);
    if (before && before.privateAddress === plan.address && supervisor !== undefined && (await sshBanner(plan.address, 2_000))) {
      if (JSON.stringify(before) !== JSON.stringify(machine)) await writeJson(paths.machineJson, machine);
      await refreshKeys(plan, paths, supervisor).catch(() => undefined);
      return { machine, reused: true };
    }
    const started = Date.now();
    // Whatever is left of an earlier boot: the machine, stray processes in the namespace, the namespace itself.
    if (netnsExists(netns) || (await exists(paths.dir))) {
      await stopOsMachine(plan.cluster, name);
      await stopHostRemains(plan.cluster, name);
    }
    await fs.mkdir(paths.dir, { recursive: true, mode: 0o755 });
    for (const d of [paths.upper, paths.work, paths.root]) await fs.mkdir(d, { recursive: true, mode: 0o755 });
    await writeJson(paths.osJson, {
      image: plan.image.name,
      os: plan.image.os,
      codename: plan.image.codename,
      user: plan.image.user,
      firewall: plan.image.firewall,
    } satisfies OsRecord);
    await personalize(plan, paths);
    try {
      await createHostNetwork({
        netns,
        veth: vethName(plan.cluster, name),
        bridge: plan.bridge,
        address: plan.address,
        subnetNetwork: formatIp(plan.subnet.network),
        prefix: plan.subnet.prefix,
        gateway: gatewayOf(plan.subnet),
        firewall: false,
      });
      const pid = await boot(plan, paths, netns);
      await waitForSsh(plan, paths, pid);
    } catch (e) {
      // A host that failed half-way is taken down again (its layer stays), so a re-run starts clean.
      await stopOsMachine(plan.cluster, name).catch(() => undefined);
      await stopHostRemains(plan.cluster, name).catch(() => undefined);
      throw e;
    }
    await writeJson(paths.machineJson, machine);
    return { machine, reused: false, bootMs: Date.now() - started };
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw createHostError(name, e);
  }
}

/**
 * Rewrites the login user's authorized_keys of a running host through /proc/PID/root of its supervisor, which sees
 * the mounted overlay (writing to the upper layer under a mounted overlay is not allowed).
 */
async function refreshKeys(plan: OsHostPlan, paths: OsHostPaths, supervisor: number): Promise<void> {
  const rootView = path.join(`/proc/${supervisor}/root`, paths.root);
  const passwd = passwdEntry(await fs.readFile(path.join(rootView, 'etc', 'passwd'), 'utf8'), plan.image.user);
  if (!passwd) return;
  const file = path.join(rootView, passwd.home, '.ssh', 'authorized_keys');
  const want = `${plan.publicKeys.join('\n')}\n`;
  const st = await fs.lstat(file).catch(() => undefined);
  if (st && !st.isFile()) return;
  if ((await fs.readFile(file, 'utf8').catch(() => '')) === want) return;
  await fs.writeFile(file, want, { mode: 0o600 });
  await fs.chown(file, passwd.uid, passwd.gid);
}
