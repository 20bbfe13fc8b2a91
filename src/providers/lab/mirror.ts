/**
 * The lab's package mirror: flat apt repositories (`deb [trusted=yes] URL ./`) of the .debs downloaded while OS images
 * are built (os-image.ts), one per Debian codename under LAB_ROOT/cache/mirror, served over HTTP by busybox httpd on
 * the cluster bridge's gateway address. Lab hosts reach nothing else, so this is where `install: packages` gets the
 * engine from in the lab.
 *
 * The server is one detached process per cluster, recorded in the cluster directory with its start time and address,
 * and stopped by teardown through that record (checked against /proc), never by process name alone.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ExternalError } from '../../base/errors.js';
import type { PackageMirror } from '../provider.js';
import { exists } from './cache.js';
import { run } from './exec.js';
import { mirrorDir, mirrorPidFile } from './paths.js';
import { canConnect } from './sshd.js';

/** The mirror's port on the gateway address (apt-cacher-ng's 3142 is left for a real proxy). */
export const MIRROR_PORT = 8380;

/** A codename's repository directory. */
export function mirrorRepoDir(codename: string): string {
  return path.join(mirrorDir(), codename);
}

/** True when the codename's repository has an index. */
export function mirrorReady(codename: string): Promise<boolean> {
  return exists(path.join(mirrorRepoDir(codename), 'Packages.gz'));
}

/**
 * Copies the .debs of `debsDir` into the codename's repository (each under a temporary name, then renamed, so a
 * reader never sees half a file) and indexes it again. Concurrent builds may both index: each writes a complete
 * index of what it saw, renamed into place.
 */
export async function addToMirror(codename: string, debsDir: string): Promise<void> {
  const repo = mirrorRepoDir(codename);
  await fs.mkdir(repo, { recursive: true, mode: 0o755 });
  const stamp = `${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  for (const f of await fs.readdir(debsDir)) {
    if (!f.endsWith('.deb')) continue;
    const dest = path.join(repo, f);
    if (await exists(dest)) continue;
    const tmp = path.join(repo, `.${f}.tmp-${stamp}`);
    await fs.copyFile(path.join(debsDir, f), tmp);
    await fs.chmod(tmp, 0o644);
    await fs.rename(tmp, dest);
  }
  await indexMirror(codename);
}

/** Writes Packages and Packages.gz of the codename's repository (dpkg-scanpackages, paths relative to the repo). */
export async function indexMirror(codename: string): Promise<void> {
  const repo = mirrorRepoDir(codename);
  const stamp = `${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  const script = 'cd "$1" && dpkg-scanpackages --multiversion . /dev/null > "$2" && gzip -9c "$2" > "$3"';
  const plain = path.join(repo, `.Packages.tmp-${stamp}`);
  const gz = path.join(repo, `.Packages.gz.tmp-${stamp}`);
  try {
    await run('/bin/sh', ['-c', script, 'sh', repo, plain, gz], { timeoutMs: 5 * 60_000 });
    await fs.chmod(plain, 0o644);
    await fs.chmod(gz, 0o644);
    await fs.rename(plain, path.join(repo, 'Packages'));
    await fs.rename(gz, path.join(repo, 'Packages.gz'));
  } finally {
    await fs.rm(plain, { force: true });
    await fs.rm(gz, { force: true });
  }
}

/** The apt sources of the lab mirror for these codenames, as hosts on the bridge reach it. */
export function packageMirrors(gateway: string, codenames: Iterable<string>): Record<string, PackageMirror> {
  const out: Record<string, PackageMirror> = {};
  for (const c of codenames) out[c] = { url: `http://${gateway}:${MIRROR_PORT}/${c}`, suite: './', components: [], trusted: true };
  return out;
}

/** What the cluster directory records about its mirror server. */
interface ServerRecord {
  pid: number;
  /** Start time in clock ticks (field 22 of /proc/PID/stat): tells our process from a later one with the same pid. */
  start: number;
  address: string;
  port: number;
  dir: string;
}

async function procStart(pid: number): Promise<number | undefined> {
  try {
    const text = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return rest[0] === 'Z' ? undefined : Number(rest[19]);
  } catch {
    return undefined;
  }
}

async function cmdline(pid: number): Promise<string[] | undefined> {
  try {
    return (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** The argument list of our server for one address. */
function serverArgs(address: string, dir: string): string[] {
  return ['httpd', '-f', '-p', `${address}:${MIRROR_PORT}`, '-h', dir];
}

/** True when `args` is a busybox httpd serving `dir` (on `address` when given). */
function isOurServer(args: string[] | undefined, dir: string, address?: string): boolean {
  if (!args || !args[0] || !/(^|\/)busybox$/.test(args[0])) return false;
  const want = serverArgs(address ?? '', dir);
  const rest = args.slice(1);
  if (rest.length !== want.length || rest[0] !== 'httpd' || rest[5] !== dir) return false;
  return address === undefined ? rest[3]?.endsWith(`:${MIRROR_PORT}`) === true : rest[3] === want[3];
}

async function readRecord(cluster: string): Promise<ServerRecord | undefined> {
  try {
    const r = JSON.parse(await fs.readFile(mirrorPidFile(cluster), 'utf8')) as ServerRecord;
    return Number.isInteger(r.pid) && r.pid > 1 ? r : undefined;
  } catch {
    return undefined;
  }
}

/** True when the recorded server is the very process we started. */
async function recordAlive(r: ServerRecord): Promise<boolean> {
  return (await procStart(r.pid)) === r.start && isOurServer(await cmdline(r.pid), r.dir, r.address);
}

/**
 * Makes the cluster's mirror server run on `gateway` (the bridge must already have that address); idempotent.
 * The repositories may still be empty: httpd serves what is there when asked.
 */
export async function ensureMirrorServer(cluster: string, gateway: string): Promise<void> {
  const dir = mirrorDir();
  const rec = await readRecord(cluster);
  if (rec && rec.address === gateway && rec.dir === dir && (await recordAlive(rec)) && (await canConnect(gateway, MIRROR_PORT, 1_000))) return;
  if (rec) await stopMirrorServer(cluster);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await fs.mkdir(path.dirname(mirrorPidFile(cluster)), { recursive: true, mode: 0o755 });
  const child = spawn('busybox', serverArgs(gateway, dir), { detached: true, stdio: 'ignore', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  let failed: Error | undefined;
  let exited: number | null | undefined;
  child.on('error', (e) => (failed = e));
  child.on('exit', (code) => (exited = code));
  child.unref();
  if (child.pid === undefined) {
    throw new ExternalError(`could not start the lab package mirror (busybox httpd): ${failed?.message ?? 'no pid'}`, { hint: 'apt-get install -y busybox' });
  }
  let start: number | undefined;
  for (let i = 0; i < 20 && start === undefined; i++) {
    start = await procStart(child.pid);
    if (start === undefined) await new Promise((r) => setTimeout(r, 25));
  }
  const record: ServerRecord = { pid: child.pid, start: start ?? 0, address: gateway, port: MIRROR_PORT, dir };
  const tmp = `${mirrorPidFile(cluster)}.tmp-${process.pid}`;
  await fs.writeFile(tmp, `${JSON.stringify(record)}\n`, { mode: 0o644 });
  await fs.rename(tmp, mirrorPidFile(cluster));
  const until = Date.now() + 3_000;
  while (Date.now() < until) {
    if (failed || exited !== undefined) break;
    if (await canConnect(gateway, MIRROR_PORT, 300)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  await stopMirrorServer(cluster).catch(() => undefined);
  throw new ExternalError(
    `the lab package mirror (busybox httpd on ${gateway}:${MIRROR_PORT}) did not start` +
      `${failed ? `: ${failed.message}` : exited !== undefined ? `: exited ${exited}` : ''}`,
    { hint: `check that busybox is installed (apt-get install -y busybox) and that nothing else listens on ${gateway}:${MIRROR_PORT}` },
  );
}

/**
 * Stops the cluster's mirror server: the recorded process if it is still ours, and, when the bridge's gateway is
 * known, any busybox httpd serving the mirror on exactly that address (a record lost in a crash). Removes the record.
 */
export async function stopMirrorServer(cluster: string, gateway?: string): Promise<void> {
  const pids = new Set<number>();
  const rec = await readRecord(cluster);
  if (rec && (await recordAlive(rec))) pids.add(rec.pid);
  if (gateway) {
    for (const e of await fs.readdir('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      if (isOurServer(await cmdline(Number(e)), mirrorDir(), gateway)) pids.add(Number(e));
    }
  }
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        pids.delete(pid);
      }
    }
    for (let i = 0; i < 30 && pids.size > 0; i++) {
      for (const pid of pids) if ((await procStart(pid)) === undefined) pids.delete(pid);
      if (pids.size > 0) await new Promise((r) => setTimeout(r, 50));
    }
    if (pids.size === 0) break;
  }
  if (pids.size > 0) {
    throw new ExternalError(`the lab package mirror server would not stop: pid ${[...pids].join(', ')}`, { hint: `kill -9 ${[...pids].join(' ')}, then run again` });
  }
  await fs.rm(mirrorPidFile(cluster), { force: true });
}

/** Pids of running mirror servers of any cluster (for prune: never remove what is being served). */
export async function runningMirrorServers(): Promise<number[]> {
  const out: number[] = [];
  for (const e of await fs.readdir('/proc')) {
    if (/^\d+$/.test(e) && isOurServer(await cmdline(Number(e)), mirrorDir())) out.push(Number(e));
  }
  return out;
}
