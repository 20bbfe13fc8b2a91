/**
 * Where the lab keeps its files. Everything of a cluster lives under one directory so teardown is one `rm`,
 * and nothing is under /tmp because sshd's StrictModes rejects world-writable parents.
 */
import path from 'node:path';

/** Root of all lab files; SWARMFORM_LAB_ROOT overrides it (read on every call so tests can set it). */
export function labRoot(): string {
  return process.env.SWARMFORM_LAB_ROOT ?? '/var/lib/swarmform/lab';
}

/** Directory of built artifacts shared by all clusters (engine bundle, base image). */
export function cacheDir(): string {
  return path.join(labRoot(), 'cache');
}

/** Directory of one cluster. */
export function clusterDir(cluster: string): string {
  return path.join(labRoot(), cluster);
}

/** Directory holding one subdirectory per host of the cluster. */
export function hostsDir(cluster: string): string {
  return path.join(clusterDir(cluster), 'hosts');
}

/** Whiteout layers shared by the cluster's hosts (see engine-mask.ts). */
export function maskDir(cluster: string): string {
  return path.join(clusterDir(cluster), 'mask');
}

/** The cluster's persistent name -> address map. */
export function addressesFile(cluster: string): string {
  return path.join(clusterDir(cluster), 'addresses.json');
}

/**
 * Directories bind-mounted over the host's system paths, by mount target. The per-host /tmp, /var/tmp and /root
 * keep parallel uploads (bootstrap puts the engine bundle in /var/tmp) and shell state of different hosts apart,
 * as on real servers.
 */
export const HOST_MOUNTS = [
  { dir: 'var-lib-docker', target: '/var/lib/docker', mode: 0o710 },
  { dir: 'etc-docker', target: '/etc/docker', mode: 0o755 },
  { dir: 'run', target: '/run', mode: 0o755 },
  { dir: 'var-log', target: '/var/log', mode: 0o755 },
  { dir: 'usr-local', target: '/usr/local', mode: 0o755 },
  { dir: 'tmp', target: '/tmp', mode: 0o1777 },
  { dir: 'var-tmp', target: '/var/tmp', mode: 0o1777 },
  { dir: 'root', target: '/root', mode: 0o700 },
] as const;

/** Files and directories of one host. */
export interface HostPaths {
  dir: string;
  machineJson: string;
  /** Pid of the host's sshd, which is also the first process of its mount and UTS namespaces. */
  pidFile: string;
  /** Root-owned 0700: sshd_config, host key, authorized_keys. */
  sshDir: string;
  sshdConfig: string;
  hostKey: string;
  authorizedKeys: string;
  /** Parent of the bind-mounted directories (see HOST_MOUNTS). */
  fsDir: string;
  /** sshd's stdout/stderr; inside the host it is /var/log/sshd.log. */
  sshdLog: string;
}

/** Paths of one host of a cluster. */
export function hostPaths(cluster: string, host: string): HostPaths {
  const dir = path.join(hostsDir(cluster), host);
  const sshDir = path.join(dir, 'ssh');
  const fsDir = path.join(dir, 'fs');
  return {
    dir,
    machineJson: path.join(dir, 'machine.json'),
    pidFile: path.join(dir, 'sshd.pid'),
    sshDir,
    sshdConfig: path.join(sshDir, 'sshd_config'),
    hostKey: path.join(sshDir, 'ssh_host_ed25519_key'),
    authorizedKeys: path.join(sshDir, 'authorized_keys'),
    fsDir,
    sshdLog: path.join(fsDir, 'var-log', 'sshd.log'),
  };
}

/** Built OS root filesystems, one directory per release, variant and recipe (see os-image.ts). */
export function osCacheDir(): string {
  return path.join(cacheDir(), 'os');
}

/** The lab's package mirror: one flat apt repository per Debian codename (see mirror.ts). */
export function mirrorDir(): string {
  return path.join(cacheDir(), 'mirror');
}

/** Pid and address of the cluster's mirror server (busybox httpd on the bridge's gateway). */
export function mirrorPidFile(cluster: string): string {
  return path.join(clusterDir(cluster), 'mirror-httpd.json');
}

/** Files of one OS host (a booted Debian system) next to the common ones. */
export interface OsHostPaths {
  dir: string;
  machineJson: string;
  /** Which image the host boots (its overlay's lower layer); also marks the host as an OS host. */
  osJson: string;
  /** The host's writable layer: everything it changed relative to the image, kept across reboots. */
  upper: string;
  /** overlayfs' scratch directory (same file system as upper). */
  work: string;
  /** Mount point of the host's root file system (the overlay); systemd-nspawn boots it. */
  root: string;
  /** Pid of the supervisor running systemd-nspawn (restarted on reboot). */
  pidFile: string;
  /** systemd-nspawn's output: the container's console (boot messages). */
  log: string;
}

/** Paths of one OS host of a cluster. */
export function osHostPaths(cluster: string, host: string): OsHostPaths {
  const dir = path.join(hostsDir(cluster), host);
  return {
    dir,
    machineJson: path.join(dir, 'machine.json'),
    osJson: path.join(dir, 'os.json'),
    upper: path.join(dir, 'upper'),
    work: path.join(dir, 'work'),
    root: path.join(dir, 'root'),
    pidFile: path.join(dir, 'nspawn.pid'),
    log: path.join(dir, 'console.log'),
  };
}
