/**
 * One run per cluster: a proper-lockfile lock (an atomic mkdir of `<dir>.lock`, its mtime refreshed while held, stale
 * after STALE_MS without refresh) plus an owner file naming the pid, so a second run can say who holds it and a lock
 * left by a process that died on this machine is taken over at once instead of after the stale period.
 */
import { readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { LockedError } from '../base/errors.js';
import { writeSecureFile } from './secure-file.js';

/** A lock not refreshed for this long belongs to a run that died (or a machine that slept). */
export const STALE_MS = 30_000;
const UPDATE_MS = 5_000;

/** Who holds the lock, written next to the state once it is taken. */
export interface LockOwner {
  pid: number;
  hostname: string;
  startedAt: string;
}

export interface LockOptions {
  /** Called if the lock is lost while held (its directory removed, or not refreshed in time). */
  onCompromised?: (err: Error) => void;
}

/** Path of the lock directory of a state directory. */
export function lockPath(dir: string): string {
  return `${dir}.lock`;
}

function ownerPath(dir: string): string {
  return join(dir, 'lock.json');
}

/** Takes the lock of `dir`; throws LockedError naming the holder when another live run has it. */
export async function acquireLock(dir: string, cluster: string, opts: LockOptions = {}): Promise<() => Promise<void>> {
  const path = lockPath(dir);
  for (let attempt = 0; ; attempt++) {
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(dir, {
        realpath: false,
        lockfilePath: path,
        stale: STALE_MS,
        update: UPDATE_MS,
        retries: 0,
        onCompromised: (err) => opts.onCompromised?.(err),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      const owner = await readOwner(dir);
      if (attempt === 0 && owner && owner.hostname === hostname() && !pidAlive(owner.pid)) {
        // The holder died on this machine without releasing (SIGKILL, power loss): take over now.
        await rm(path, { recursive: true, force: true });
        continue;
      }
      const who = owner ? `pid ${owner.pid}${owner.hostname !== hostname() ? ` on ${owner.hostname}` : ''}, since ${owner.startedAt}` : 'pid unknown';
      throw new LockedError(`cluster ${cluster} is locked by another swarmform run (${who}); if no run is active, remove ${path}`, {
        hint: `if no swarmform run is active for ${cluster}, remove ${path}`,
      });
    }
    const owner: LockOwner = { pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString() };
    await writeSecureFile(ownerPath(dir), `${JSON.stringify(owner)}\n`);
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      // The lock goes first: a crash between the two leaves an owner file naming a dead pid, never a lock without owner.
      try {
        await release();
      } catch (e) {
        // Already released or compromised (e.g. `down` removed everything): nothing left to undo.
        if ((e as NodeJS.ErrnoException).code !== 'ERELEASED') throw e;
      }
      await rm(ownerPath(dir), { force: true });
    };
  }
}

/** The recorded holder of the lock of `dir`, if any. */
export async function readOwner(dir: string): Promise<LockOwner | undefined> {
  try {
    const v = JSON.parse(await readFile(ownerPath(dir), 'utf8')) as Partial<LockOwner>;
    if (typeof v.pid !== 'number') return undefined;
    return { pid: v.pid, hostname: String(v.hostname ?? ''), startedAt: String(v.startedAt ?? 'unknown') };
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid exists (EPERM means it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
