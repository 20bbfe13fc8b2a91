/**
 * Finding and stopping a host's processes. A lab host has no PID namespace, so its processes are recognised by their
 * namespaces: everything in its network namespace or its mount namespace, plus all their descendants (containers
 * live in namespaces of their own but are children of a containerd-shim that lives in the host).
 */
import { promises as fs } from 'node:fs';
import { ExternalError } from '../../base/errors.js';

/** What the lab needs to know about one process. */
export interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  /** Start time in clock ticks since boot: with the pid, identifies the process even if the pid is reused. */
  start: number;
  /** Inode of /proc/PID/ns/net. */
  net?: number;
  /** Inode of /proc/PID/ns/mnt. */
  mnt?: number;
  /** Read for sshd processes only: it names the host's sshd_config, which is how hosts without a netns are found. */
  cmdline?: string;
  /**
   * Read for orphans (parent pid 1) in mount namespaces of their own: a container whose containerd-shim died is
   * such an orphan, and its bind mounts (/etc/hosts, /etc/hostname) still name the host's directory.
   */
  mountinfo?: string;
}

/** A process of a host, and whether it lives outside the host's own namespaces (a container's). */
export interface Member extends ProcInfo {
  contained: boolean;
}

/** How to recognise one host's processes. */
export interface HostMatcher {
  /** Inode of the host's named network namespace, when it still exists. */
  netIno?: number;
  /** A string in the command line of the host's sshd (its sshd_config path, or a cluster's hosts directory). */
  sshdNeedle?: string;
  /** A string in an orphan's mountinfo that ties it to the host (see {@link hostMountNeedle}). */
  mountNeedle?: string;
}

/**
 * What an orphaned container's mountinfo shows of the host's directory. Only the tail of the path: mountinfo gives
 * paths relative to the root of the filesystem LAB_ROOT lives on, which may be a mount of its own.
 */
export function hostMountNeedle(cluster: string, host?: string): string {
  return host === undefined ? `/${cluster}/hosts/` : `/${cluster}/hosts/${host}/`;
}

/**
 * A /proc read that may block (cmdline takes the target's mmap lock; a process stuck in the kernel can hold it):
 * give up after a while rather than hang a whole teardown.
 */
async function readProcFile(file: string, ms = 2_000): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([fs.readFile(file, 'utf8').catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function nsInode(pid: number | 'self', kind: 'net' | 'mnt'): Promise<number | undefined> {
  try {
    const link = await fs.readlink(`/proc/${pid}/ns/${kind}`);
    const m = /\[(\d+)\]/.exec(link);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Reads /proc/PID/stat; undefined when the process is gone or a zombie (a zombie holds no namespace or memory). */
async function readStat(pid: number): Promise<{ ppid: number; comm: string; start: number } | undefined> {
  const text = await readProcFile(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  // comm is in parentheses and may itself contain spaces or parentheses: split after the last ')'.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const rest = text.slice(close + 2).split(' ');
  if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
  // Fields after comm start at field 3 (state); starttime is field 22.
  return { ppid: Number(rest[1]), comm, start: Number(rest[19]) };
}

/** True when the process exists and is not a zombie. */
export async function isAlive(pid: number): Promise<boolean> {
  return (await readStat(pid)) !== undefined;
}

// An orphan's mount table hardly changes, and teardown polls /proc every 100 ms: read each one once.
const mountinfoCache = new Map<string, string>();

/** Basic facts about one live process, or undefined. */
export async function procInfo(pid: number, own?: { mnt?: number }): Promise<ProcInfo | undefined> {
  const st = await readStat(pid);
  if (!st) return undefined;
  const info: ProcInfo = { pid, ...st, net: await nsInode(pid, 'net'), mnt: await nsInode(pid, 'mnt') };
  if (st.comm === 'sshd') {
    info.cmdline = (await readProcFile(`/proc/${pid}/cmdline`))?.split('\0').join(' ');
  } else if (own && st.ppid === 1 && info.mnt !== undefined && info.mnt !== own.mnt) {
    const key = `${pid}:${st.start}`;
    info.mountinfo = mountinfoCache.get(key) ?? (await readProcFile(`/proc/${pid}/mountinfo`));
    if (info.mountinfo !== undefined) mountinfoCache.set(key, info.mountinfo);
  }
  return info;
}

/** Every live process of the machine (with the mountinfo of orphans outside our mount namespace). */
export async function scanProcesses(): Promise<ProcInfo[]> {
  const own = await ownNamespaces();
  const entries = await fs.readdir('/proc');
  const pids = entries.filter((e) => /^\d+$/.test(e)).map(Number);
  const out = await Promise.all(pids.map((pid) => procInfo(pid, own)));
  if (mountinfoCache.size > 10_000) mountinfoCache.clear();
  return out.filter((p): p is ProcInfo => p !== undefined);
}

/** The root namespaces of this process: never part of any host, whatever else matches. */
export async function ownNamespaces(): Promise<{ net?: number; mnt?: number }> {
  return { net: await nsInode('self', 'net'), mnt: await nsInode('self', 'mnt') };
}

/**
 * The processes of each host: members of its network namespace, of the mount namespaces its processes use
 * (found via the netns or the sshd command line), orphans whose mounts name the host's directory, and all their
 * descendants. Those outside the host's own namespaces are marked `contained`.
 */
export function hostMembers(procs: ProcInfo[], matchers: HostMatcher[], own: { net?: number; mnt?: number }): Map<number, Member>[] {
  const children = new Map<number, ProcInfo[]>();
  for (const p of procs) {
    const list = children.get(p.ppid);
    if (list) list.push(p);
    else children.set(p.ppid, [p]);
  }
  return matchers.map((m) => {
    const nets = new Set<number>();
    const mnts = new Set<number>();
    if (m.netIno !== undefined && m.netIno !== own.net) nets.add(m.netIno);
    for (const p of procs) {
      const seed =
        (m.netIno !== undefined && p.net === m.netIno) ||
        (m.sshdNeedle !== undefined && p.cmdline !== undefined && p.cmdline.includes(m.sshdNeedle));
      if (!seed) continue;
      if (p.net !== undefined && p.net !== own.net) nets.add(p.net);
      if (p.mnt !== undefined && p.mnt !== own.mnt) mnts.add(p.mnt);
    }
    const members = new Map<number, Member>();
    const queue: ProcInfo[] = [];
    for (const p of procs) {
      const core = (p.net !== undefined && nets.has(p.net)) || (p.mnt !== undefined && mnts.has(p.mnt));
      const orphan = !core && m.mountNeedle !== undefined && p.mountinfo !== undefined && p.mountinfo.includes(m.mountNeedle);
      if (core || orphan) {
        members.set(p.pid, { ...p, contained: !core });
        queue.push(p);
      }
    }
    while (queue.length > 0) {
      for (const c of children.get(queue.pop()!.pid) ?? []) {
        if (!members.has(c.pid)) {
          members.set(c.pid, { ...c, contained: true });
          queue.push(c);
        }
      }
    }
    // Never signal ourselves or init, whatever the namespaces say.
    members.delete(process.pid);
    members.delete(1);
    return members;
  });
}

/** Sends `signal` to each pid; one already gone is skipped. */
export function signalAll(pids: Iterable<number>, signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone already, which is what we want.
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntilEmpty(find: () => Promise<Member[]>, ms: number, filter?: (p: Member) => boolean): Promise<Member[]> {
  const until = Date.now() + ms;
  for (;;) {
    const left = (await find()).filter((p) => !filter || filter(p));
    if (left.length === 0 || Date.now() >= until) return left;
    await sleep(100);
  }
}

/** How long each stage of {@link stopProcesses} may take. */
export const STOP_TIMEOUTS = { dockerdMs: 10_000, termMs: 3_000, killMs: 3_000 };

/**
 * Wraps a finder so that a process, once found, stays found while it lives: when a containerd-shim dies first, its
 * container's processes are reparented to init and no longer look like the host's, yet they must still be stopped.
 */
export function stickyFinder(find: () => Promise<{ found: Member[]; all: ProcInfo[] }>): () => Promise<Member[]> {
  const seen = new Map<number, number>();
  return async () => {
    const { found, all } = await find();
    for (const p of found) seen.set(p.pid, p.start);
    const out = new Map(found.map((p) => [p.pid, p]));
    for (const p of all) if (!out.has(p.pid) && seen.get(p.pid) === p.start) out.set(p.pid, { ...p, contained: true });
    return [...out.values()];
  };
}

/**
 * Stops the processes `find` returns: dockerd first with SIGTERM (so it stops its containers cleanly), then SIGTERM
 * for the rest of the host and SIGKILL for what is left in containers (dockerd had its chance to stop them, and a
 * container's init ignores SIGTERM from outside), then SIGKILL for anything still there. `find` is called again
 * after each stage because stopping a process may start or reparent others; wrap it with {@link stickyFinder}.
 * Resolves with the processes still alive at the end (normally none).
 */
export async function stopProcesses(find: () => Promise<Member[]>): Promise<Member[]> {
  const isDockerd = (p: ProcInfo) => p.comm === 'dockerd';
  const first = await find();
  if (first.length === 0) return [];
  const dockerds = first.filter((p) => isDockerd(p) && !p.contained);
  if (dockerds.length > 0) {
    // A supervisor (bootstrap's dockerd-ctl loop on hosts without an init system) would start dockerd again
    // while we wait for it to stop: end the supervisor, the dockerd's parent within the host, at the same time.
    const members = new Map(first.map((p) => [p.pid, p]));
    const supervisors = dockerds
      .map((d) => members.get(d.ppid))
      .filter((p): p is Member => p !== undefined && p.comm !== 'sshd' && !isDockerd(p));
    signalAll(supervisors.map((p) => p.pid), 'SIGTERM');
    signalAll(dockerds.map((p) => p.pid), 'SIGTERM');
    await waitUntilEmpty(find, STOP_TIMEOUTS.dockerdMs, (p) => isDockerd(p) && !p.contained);
  }
  const rest = await find();
  if (rest.length === 0) return [];
  // Containers first and for good, so none is left without its shim in a state nobody can trace back.
  signalAll(rest.filter((p) => p.contained).map((p) => p.pid), 'SIGKILL');
  signalAll(rest.filter((p) => !p.contained).map((p) => p.pid), 'SIGTERM');
  const stubborn = await waitUntilEmpty(find, STOP_TIMEOUTS.termMs);
  if (stubborn.length === 0) return [];
  signalAll(stubborn.map((p) => p.pid), 'SIGKILL');
  return waitUntilEmpty(find, STOP_TIMEOUTS.killMs);
}

/** The error for processes that outlived SIGTERM and SIGKILL (`what`: whose), with the command to try by hand. */
export function wouldNotStop(left: { pid: number; comm: string }[], what = 'processes'): ExternalError {
  return new ExternalError(`${what} would not stop: ${left.map((p) => `${p.pid} (${p.comm})`).join(', ')}`, {
    hint: `kill -9 ${left.map((p) => p.pid).join(' ')}, then run again`,
  });
}
