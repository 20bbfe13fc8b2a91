/**
 * Taking hosts and whole clusters down, including what a crashed run left behind. Everything here treats
 * "already gone" as success and keeps going after a failure, so teardown can always be re-run.
 */
import { promises as fs } from 'node:fs';
import pLimit from 'p-limit';
import { ExternalError, HostStepError, type SwarmformError } from '../../base/errors.js';
import type { BatchResult } from '../provider.js';
import { readAddresses, releaseAddresses } from './addresses.js';
import { deleteLink, listLinks, removeForwardRules } from './bridge.js';
import { run } from './exec.js';
import { netnsName, netnsPrefix, ruleComment, vethName } from './names.js';
import { deleteNetns, listNetns, netnsInode } from './netns.js';
import { stopMirrorServer } from './mirror.js';
import { stopClusterMachines, stopMachines } from './os-host.js';
import { clusterDir, hostPaths, hostsDir, labRoot, osHostPaths } from './paths.js';
import {
  hostMembers,
  hostMountNeedle,
  ownNamespaces,
  scanProcesses,
  stickyFinder,
  stopProcesses,
  wouldNotStop,
  type HostMatcher,
  type Member,
} from './processes.js';

/** Parallel netns/directory removals; each is a few local commands. */
const DESTROY_CONCURRENCY = 16;

/**
 * Stops the processes of all given matchers together (one /proc scan per poll, however many hosts) and returns,
 * per matcher, the processes that survived SIGKILL.
 */
export async function stopMatched(matchers: HostMatcher[]): Promise<{ pid: number; comm: string }[][]> {
  if (matchers.length === 0) return [];
  const own = await ownNamespaces();
  // Which host a process belongs to, remembered across scans like the processes themselves.
  const owner = new Map<number, number>();
  const left = await stopProcesses(
    stickyFinder(async () => {
      const procs = await scanProcesses();
      const found = new Map<number, Member>();
      hostMembers(procs, matchers, own).forEach((members, i) => {
        for (const [pid, p] of members) {
          found.set(pid, p);
          owner.set(pid, i);
        }
      });
      return { found: [...found.values()], all: procs };
    }),
  );
  return matchers.map((_, i) => left.filter((p) => owner.get(p.pid) === i).map((p) => ({ pid: p.pid, comm: p.comm })));
}

/** Mount points under `dir` in the root namespace's mount table, deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const mp = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === dir || mp.startsWith(prefix)) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}

/**
 * Removes a directory tree that may still have mounts on it in the root namespace (lazily unmounted first), and
 * refuses to recurse into anything still mounted: `rm -r` across a bind mount would delete the mount's source.
 */
export async function removeTree(dir: string): Promise<void> {
  for (const mp of await mountsUnder(dir)) await run('umount', ['-l', mp], { allowFail: true, timeoutMs: 30_000 });
  const still = await mountsUnder(dir);
  if (still.length > 0) {
    throw new ExternalError(`cannot remove ${dir}: still mounted: ${still.join(', ')}`, { hint: 'find what holds the mounts (fuser -vm), unmount them, and run again' });
  }
  await fs.rm(dir, { recursive: true, force: true });
}

/** Destroys the named hosts of a cluster: processes, netns, veth, files, address. A host already gone is done. */
export async function destroyHosts(cluster: string, names: string[]): Promise<BatchResult<string>> {
  const result: BatchResult<string> = { done: [], failed: [] };
  if (names.length === 0) return result;
  const matchers = await Promise.all(
    names.map(async (name) => ({
      netIno: await netnsInode(netnsName(cluster, name)),
      sshdNeedle: hostPaths(cluster, name).sshdConfig,
      mountNeedle: hostMountNeedle(cluster, name),
    })),
  );
  // OS hosts first: an orderly shutdown through nspawn (systemd inside ignores the plain SIGTERM stopMatched sends).
  const roots = new Set(names.map((name) => osHostPaths(cluster, name).root));
  const machinesLeft = await stopMachines((root) => roots.has(root));
  const survivors = await stopMatched(matchers);
  for (const p of machinesLeft) {
    const i = names.findIndex((name) => {
      const root = osHostPaths(cluster, name).root;
      return p.args.some((a) => a === root || a === `--directory=${root}`);
    });
    if (i >= 0) survivors[i].push({ pid: p.pid, comm: p.comm });
  }
  const limit = pLimit(DESTROY_CONCURRENCY);
  await Promise.all(
    names.map((name, i) =>
      limit(async () => {
        try {
          if (survivors[i].length > 0) {
            throw wouldNotStop(survivors[i]);
          }
          await deleteNetns(netnsName(cluster, name));
          // Normally gone with the netns; left over when something still held the namespace.
          await deleteLink(vethName(cluster, name));
          await removeTree(hostPaths(cluster, name).dir);
          result.done.push(name);
        } catch (e) {
          const err = e as Error;
          result.failed.push({ name, error: new HostStepError(name, 'destroy host', err.message, { cause: e, hint: (err as SwarmformError).hint }) });
        }
      }),
    ),
  );
  await releaseAddresses(cluster, result.done);
  return result;
}

/** Every host name the cluster's files mention (host directories and addresses.json). */
export async function knownHostNames(cluster: string): Promise<string[]> {
  const names = new Set(Object.keys(await readAddresses(cluster)));
  try {
    for (const e of await fs.readdir(hostsDir(cluster), { withFileTypes: true })) if (e.isDirectory()) names.add(e.name);
  } catch {
    // No hosts directory: nothing recorded.
  }
  return [...names].sort();
}

/** Names of the other clusters with files under LAB_ROOT, whose netns names could share our prefix. */
async function otherClusters(cluster: string): Promise<string[]> {
  try {
    const entries = await fs.readdir(labRoot(), { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && e.name !== cluster && e.name !== 'cache').map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * The named netns of this cluster, found by name alone. `sf-a-b-x` could be host `b-x` of cluster `a` or host `x`
 * of cluster `a-b`: a netns that another cluster's files claim is left alone.
 */
export async function orphanNetns(cluster: string): Promise<string[]> {
  const prefix = netnsPrefix(cluster);
  const candidates = (await listNetns()).filter((n) => n.startsWith(prefix));
  if (candidates.length === 0) return [];
  const claimed = new Set<string>();
  for (const other of await otherClusters(cluster)) {
    if (!other.startsWith(`${cluster}-`)) continue;
    for (const host of await knownHostNames(other)) claimed.add(netnsName(other, host));
  }
  return candidates.filter((n) => !claimed.has(n));
}

/**
 * veths named like lab veths whose peer is gone from every named namespace (its netns was deleted while something
 * still held it), plus any veth still attached to one of this cluster's bridges.
 */
async function strayVeths(bridges: string[]): Promise<string[]> {
  const ours = (l: { master?: string }) => l.master !== undefined && bridges.includes(l.master);
  const links = await listLinks({ type: 'veth' });
  const { stdout } = await run('ip', ['-j', 'netns', 'list'], { allowFail: true, timeoutMs: 15_000 });
  const named = new Set<number>();
  try {
    for (const ns of JSON.parse(stdout || '[]') as { name: string; id?: number }[]) if (ns.id !== undefined) named.add(ns.id);
  } catch {
    // Unparseable: only this cluster's veths, rather than risk deleting another cluster's live one.
    return links.filter(ours).map((l) => l.ifname);
  }
  return links
    .filter(
      (l) =>
        ours(l) ||
        (/^sfv[0-9a-f]{8}$/.test(l.ifname) && l.link_netnsid !== undefined && !named.has(l.link_netnsid)),
    )
    .map((l) => l.ifname);
}

/** What teardown could not remove; it still removes everything else first. */
export class TeardownError extends Error {
  constructor(readonly problems: string[]) {
    super(`lab teardown left things behind:\n${problems.join('\n')}`);
    this.name = 'TeardownError';
  }
}

/**
 * Removes everything of a cluster: its recorded hosts, any sshd started from its directory, the FORWARD rules
 * and bridges, then its directory. With `force`, also netns found by name and stray veths of crashed runs.
 */
export async function teardownCluster(cluster: string, bridges: string[], force: boolean, gateways: string[] = []): Promise<void> {
  const problems: string[] = [];
  // The package mirror server first: it is bound to the bridge's address, which goes away below.
  for (const gw of gateways.length > 0 ? gateways : [undefined]) {
    await stopMirrorServer(cluster, gw).catch((e: Error) => problems.push(e.message));
  }
  // OS host machines started from this cluster's directory, recorded or not (a crash may have lost machine.json).
  const stray = await stopClusterMachines(cluster);
  if (stray.length > 0) problems.push(`OS host machines would not stop: ${stray.join(', ')}`);
  const destroyed = await destroyHosts(cluster, await knownHostNames(cluster));
  for (const f of destroyed.failed) problems.push(f.error.message);

  // sshd processes started from this cluster's directory whose host record is gone, and orphaned containers.
  const matchers: HostMatcher[] = [{ sshdNeedle: `${hostsDir(cluster)}/`, mountNeedle: hostMountNeedle(cluster) }];
  const orphans = force ? await orphanNetns(cluster) : [];
  for (const ns of orphans) matchers.push({ netIno: await netnsInode(ns) });
  const survivors = await stopMatched(matchers);
  for (const s of survivors) {
    if (s.length > 0) problems.push(`processes would not stop: ${s.map((p) => `${p.pid} (${p.comm})`).join(', ')}`);
  }
  for (const ns of orphans) {
    await deleteNetns(ns).catch((e: Error) => problems.push(`netns ${ns}: ${e.message}`));
  }

  await removeForwardRules(ruleComment(cluster)).catch((e: Error) => problems.push(`iptables: ${e.message}`));
  if (force) {
    for (const veth of await strayVeths(bridges).catch(() => [] as string[])) {
      await deleteLink(veth).catch((e: Error) => problems.push(`veth ${veth}: ${e.message}`));
    }
  }
  for (const bridge of bridges) {
    await deleteLink(bridge).catch((e: Error) => problems.push(`bridge ${bridge}: ${e.message}`));
  }
  await removeTree(clusterDir(cluster)).catch((e: Error) => problems.push(e.message));
  if (problems.length > 0) throw new TeardownError(problems);
}

/** Lists `LAB_ROOT/<cluster>/hosts/*` directory names (for `list`). */
export async function hostDirNames(cluster: string): Promise<string[]> {
  try {
    const entries = await fs.readdir(hostsDir(cluster), { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}
