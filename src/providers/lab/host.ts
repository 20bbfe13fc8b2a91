/**
 * One lab host from nothing to a running sshd, and the files that let `list` find it again. Re-running on a healthy
 * host changes nothing; a host whose sshd or namespace died is restarted in place, keeping its data and host key,
 * like a server that rebooted.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../base/errors.js';
import type { HostSpec } from '../../inventory/types.js';
import type { Machine } from '../../base/machine.js';
import { formatIp, gatewayOf, type Subnet } from './addresses.js';
import { hostOverlays, type MaskLayer, type MaskOverlay } from './engine-mask.js';
import { createHostError } from './exec.js';
import { ensureKey } from './keys.js';
import { netnsName, vethName } from './names.js';
import { createHostNetwork, deleteNetns, netnsExists, netnsInode } from './netns.js';
import { HOST_MOUNTS, hostPaths, labRoot, type HostPaths } from './paths.js';
import { hostMembers, hostMountNeedle, ownNamespaces, procInfo, scanProcesses, stickyFinder, stopProcesses, wouldNotStop } from './processes.js';
import { canConnect, renderSshdConfig, startSshd } from './sshd.js';
import { exists } from './cache.js';

/** Everything needed to make one host. */
export interface HostPlan {
  cluster: string;
  spec: HostSpec;
  address: string;
  subnet: Subnet;
  bridge: string;
  /** Private key the Machine record points at. */
  keyPath: string;
  /** Lines for the host's authorized_keys. */
  publicKeys: string[];
  /** Whiteout layers hiding the machine's engine (shared by the cluster's hosts). */
  maskLayers: MaskLayer[];
  /** With `engine: preinstalled`: the shared read-only engine layer, mounted under the host's own /usr/local. */
  engineLayer?: string;
}

/** Outcome of {@link ensureHost}. */
export interface HostOutcome {
  machine: Machine;
  /** True when the host was already healthy and nothing was started. */
  reused: boolean;
}

/** Subdirectories of the host's /usr/local, so it looks like a fresh install's. */
const USR_LOCAL_DIRS = ['bin', 'etc', 'games', 'include', 'lib', 'sbin', 'share', 'src'];

/** The Machine record of a lab host (always root on port 22: the inventory's ssh user and port are for other providers). */
export function machineOf(plan: HostPlan): Machine {
  return {
    name: plan.spec.name,
    role: plan.spec.role,
    group: plan.spec.group,
    provider: 'lab',
    providerId: netnsName(plan.cluster, plan.spec.name),
    privateAddress: plan.address,
    publicAddress: plan.address,
    // Reached directly on the bridge: the user's OpenSSH config (a `Host *` ProxyJump, say) is not for lab hosts.
    ssh: { host: plan.address, port: 22, user: 'root', keyPath: plan.keyPath, config: false },
    labels: { ...plan.spec.labels },
    init: 'none',
  };
}

/** Reads a host's machine.json; undefined when missing or unreadable. */
export async function readMachine(file: string): Promise<Machine | undefined> {
  try {
    const m = JSON.parse(await fs.readFile(file, 'utf8')) as Machine;
    return typeof m?.name === 'string' && typeof m?.privateAddress === 'string' ? m : undefined;
  } catch {
    return undefined;
  }
}

async function writeMachine(paths: HostPaths, machine: Machine): Promise<void> {
  const tmp = `${paths.machineJson}.tmp-${process.pid}`;
  await fs.writeFile(tmp, `${JSON.stringify(machine, null, 2)}\n`, { mode: 0o644 });
  await fs.rename(tmp, paths.machineJson);
}

/** Reads the pid recorded for the host's sshd. */
export async function readSshdPid(paths: HostPaths): Promise<number | undefined> {
  try {
    const n = Number((await fs.readFile(paths.pidFile, 'utf8')).trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Throws UsageError unless every directory from LAB_ROOT up to / is root-owned and not group/world-writable:
 * sshd's StrictModes checks each parent of authorized_keys and would refuse every login otherwise.
 */
export async function checkLabRoot(): Promise<void> {
  const root = path.resolve(labRoot());
  // The path goes into sshd_config (quoted) and overlay mount options (comma- and colon-separated).
  if (/["\n\\,:]/.test(root)) {
    throw new UsageError(`SWARMFORM_LAB_ROOT "${root}" may not contain quotes, backslashes, commas, colons or newlines`);
  }
  for (let dir = root; ; dir = path.dirname(dir)) {
    try {
      const st = await fs.stat(dir);
      if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
        throw new UsageError(
          `${dir} must be owned by root and not group- or world-writable: sshd (StrictModes) refuses keys below it`,
          { hint: 'set SWARMFORM_LAB_ROOT to a directory under /var/lib (not /tmp)' },
        );
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (dir === path.dirname(dir)) break;
  }
}


async function mkdirMode(dir: string, mode: number): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await fs.chmod(dir, mode);
}

/** Creates the host's directories and SSH files; keeps the host key and the Docker data of an earlier start. */
async function prepareFiles(plan: HostPlan, paths: HostPaths): Promise<MaskOverlay[]> {
  await mkdirMode(path.dirname(paths.dir), 0o755);
  await mkdirMode(paths.dir, 0o755);
  await mkdirMode(paths.sshDir, 0o700);
  await mkdirMode(paths.fsDir, 0o755);
  for (const m of HOST_MOUNTS) await mkdirMode(path.join(paths.fsDir, m.dir), m.mode);
  for (const d of USR_LOCAL_DIRS) await mkdirMode(path.join(paths.fsDir, 'usr-local', d), 0o755);
  // /run starts empty on every boot: stale pid files and sockets would confuse dockerd and containerd.
  const runDir = path.join(paths.fsDir, 'run');
  for (const entry of await fs.readdir(runDir)) await fs.rm(path.join(runDir, entry), { recursive: true, force: true });
  // sshd's privilege separation directory.
  await mkdirMode(path.join(runDir, 'sshd'), 0o755);
  await ensureKey(paths.hostKey, `${plan.spec.name}@swarmform-lab`);
  await fs.writeFile(paths.authorizedKeys, `${plan.publicKeys.join('\n')}\n`, { mode: 0o600 });
  await fs.chmod(paths.authorizedKeys, 0o600);
  await fs.writeFile(paths.sshdConfig, renderSshdConfig(plan.address, paths), { mode: 0o600 });
  const overlays = await hostOverlays(plan.maskLayers, paths.fsDir);
  if (plan.engineLayer) {
    // The host's /usr/local directory becomes the upper layer: whatever the host writes there stays its own.
    const work = path.join(paths.fsDir, 'overlay', 'usr-local-work');
    await fs.mkdir(work, { recursive: true, mode: 0o755 });
    overlays.push({ target: '/usr/local', lowers: plan.engineLayer, upper: path.join(paths.fsDir, 'usr-local'), work });
  }
  return overlays;
}

/** True when the host's netns exists and its recorded sshd is alive in it and accepting connections. */
async function isHealthy(plan: HostPlan, paths: HostPaths, netns: string): Promise<boolean> {
  const recorded = await readMachine(paths.machineJson);
  if (!recorded || recorded.privateAddress !== plan.address) return false;
  const ino = await netnsInode(netns);
  const pid = await readSshdPid(paths);
  if (ino === undefined || pid === undefined) return false;
  const info = await procInfo(pid);
  if (!info || info.comm !== 'sshd' || info.net !== ino) return false;
  return canConnect(plan.address, 22, 1_000);
}

/** Stops whatever is left of a host (processes, netns, veth) without touching its files. */
export async function stopHostRemains(cluster: string, name: string): Promise<void> {
  const paths = hostPaths(cluster, name);
  const netns = netnsName(cluster, name);
  const matcher = { netIno: await netnsInode(netns), sshdNeedle: paths.sshdConfig, mountNeedle: hostMountNeedle(cluster, name) };
  const own = await ownNamespaces();
  const left = await stopProcesses(
    stickyFinder(async () => {
      const procs = await scanProcesses();
      return { found: [...hostMembers(procs, [matcher], own)[0].values()], all: procs };
    }),
  );
  if (left.length > 0) {
    throw wouldNotStop(left);
  }
  await deleteNetns(netns);
}

/** Makes the host exist and run sshd; returns the healthy host untouched. Throws HostStepError naming the host. */
export async function ensureHost(plan: HostPlan): Promise<HostOutcome> {
  const name = plan.spec.name;
  const paths = hostPaths(plan.cluster, name);
  const netns = netnsName(plan.cluster, name);
  const machine = machineOf(plan);
  try {
    if (await isHealthy(plan, paths, netns)) {
      const recorded = await readMachine(paths.machineJson);
      if (JSON.stringify(recorded) !== JSON.stringify(machine)) await writeMachine(paths, machine);
      await fs.writeFile(paths.authorizedKeys, `${plan.publicKeys.join('\n')}\n`, { mode: 0o600 });
      return { machine, reused: true };
    }
    // A host never made before has nothing to stop; skipping the /proc scan matters when dozens start at once.
    if (netnsExists(netns) || (await exists(paths.dir))) await stopHostRemains(plan.cluster, name);
    const overlays = await prepareFiles(plan, paths);
    try {
      await createHostNetwork({
        netns,
        veth: vethName(plan.cluster, name),
        bridge: plan.bridge,
        address: plan.address,
        subnetNetwork: formatIp(plan.subnet.network),
        prefix: plan.subnet.prefix,
        gateway: gatewayOf(plan.subnet),
      });
      await startSshd({ netns, hostname: name, address: plan.address, paths, overlays });
    } catch (e) {
      // Like kind: a host that failed half-way is taken down again, so a re-run starts clean.
      await stopHostRemains(plan.cluster, name).catch(() => undefined);
      throw e;
    }
    await writeMachine(paths, machine);
    return { machine, reused: false };
  } catch (e) {
    throw createHostError(name, e);
  }
}

/** True when the host's namespace exists (what `list` requires before reporting a machine). */
export function hostNetnsExists(cluster: string, name: string): boolean {
  return netnsExists(netnsName(cluster, name));
}
