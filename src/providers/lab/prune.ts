/**
 * `swarmform lab prune`: removes the lab's built OS images and package mirror (LAB_ROOT/cache/os and cache/mirror),
 * which teardown keeps so the next cluster boots without building again. Refuses while anything still uses them:
 * an OS host of any cluster (running or not: a stopped host boots again on its image), a running machine or mirror
 * server, or an image build in progress.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../base/errors.js';
import { exists } from './cache.js';
import { runningMirrorServers } from './mirror.js';
import { findMachines } from './os-host.js';
import { labRoot, mirrorDir, osCacheDir } from './paths.js';

/** What prune removed. */
export interface PruneResult {
  removed: string[];
  /** Bytes freed (apparent sizes). */
  bytes: number;
}

async function dirs(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}

async function sizeOf(p: string): Promise<number> {
  let total = 0;
  const st = await fs.lstat(p).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  for (const e of await fs.readdir(p)) total += await sizeOf(path.join(p, e));
  return total;
}

/** Everything that still uses the cached images or mirror, as lines for an error message. */
export async function cacheUsers(): Promise<string[]> {
  const users: string[] = [];
  const root = labRoot();
  for (const cluster of await dirs(root)) {
    if (cluster === 'cache') continue;
    for (const host of await dirs(path.join(root, cluster, 'hosts'))) {
      if (await exists(path.join(root, cluster, 'hosts', host, 'os.json'))) users.push(`OS host ${host} of cluster ${cluster}`);
    }
  }
  for (const p of await findMachines((r) => r.startsWith(`${root}/`))) users.push(`running machine ${p.pid} (${p.comm})`);
  for (const pid of await runningMirrorServers()) users.push(`mirror server ${pid} (busybox httpd)`);
  for (const name of await fs.readdir(osCacheDir()).catch(() => [] as string[])) {
    const m = /^\.build-.*-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const alive = await fs.access(`/proc/${pid}`).then(() => true, () => false);
    if (alive && pid !== process.pid) users.push(`image build in progress (pid ${pid})`);
  }
  return users;
}

/** Removes the cached OS images and the package mirror; throws UsageError naming what still uses them. */
export async function pruneLabCache(): Promise<PruneResult> {
  const users = await cacheUsers();
  if (users.length > 0) {
    throw new UsageError(`the lab's OS images and package mirror are still in use:\n  ${users.join('\n  ')}`, {
      hint: 'tear those clusters down first (swarmform down, or down --force after a crash)',
    });
  }
  const mounts = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const result: PruneResult = { removed: [], bytes: 0 };
  for (const dir of [osCacheDir(), mirrorDir()]) {
    if (!(await exists(dir))) continue;
    // Never recurse through a mount: rm -r would delete what is mounted there.
    if (mounts.split('\n').some((l) => (l.split(' ')[4] ?? '').startsWith(`${dir}/`))) {
      throw new UsageError(`${dir}: something is mounted below it; not removing`);
    }
    result.bytes += await sizeOf(dir);
    await fs.rm(dir, { recursive: true, force: true });
    result.removed.push(dir);
  }
  return result;
}
