/**
 * Hiding the machine's own Docker engine from lab hosts. A host must look like a fresh server, so the engine
 * binaries the machine has in /usr/bin and /usr/sbin must not exist inside it. Bind-mounting /dev/null over them
 * is not enough: bash's `command -v` still reports a non-executable file it finds in PATH. Instead each of those
 * directories is overlaid in the host: a shared read-only layer of whiteouts (0/0 character devices, one per engine
 * name) above the real directory, and a per-host upper layer, so inside the host the engine is simply absent and
 * whatever the host writes there stays its own. (/usr/local is replaced by a per-host directory instead.)
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { run } from './exec.js';

/** Directories overlaid in each host, and the names hidden in them ('*' at the end matches a prefix). */
export const MASKED_DIRS: { dir: string; key: string; names: string[] }[] = [
  { dir: '/usr/bin', key: 'usr-bin', names: engineNames() },
  { dir: '/usr/sbin', key: 'usr-sbin', names: engineNames() },
  { dir: '/etc/init.d', key: 'etc-init.d', names: ['docker', 'containerd'] },
];

function engineNames(): string[] {
  return ['docker', 'dockerd', 'containerd', 'containerd-shim*', 'ctr', 'runc', 'docker-proxy', 'docker-init'];
}

/** A masked directory: `lowers` is the overlay's lowerdir (whiteout layer first), mounted over `target`. */
export interface MaskLayer {
  key: string;
  target: string;
  lowers: string;
}

/** An overlay to mount in one host's mount namespace. */
export interface MaskOverlay {
  target: string;
  lowers: string;
  upper: string;
  work: string;
}

function matches(entry: string, names: string[]): boolean {
  return names.some((n) => (n.endsWith('*') ? entry.startsWith(n.slice(0, -1)) : entry === n));
}

/**
 * Makes the whiteout layers under `maskRoot` (once per set of names found on the machine: a changed set gets a new
 * directory, so a layer is never modified while hosts have it mounted) and returns them.
 */
export async function prepareMaskLayers(maskRoot: string): Promise<MaskLayer[]> {
  const layers: MaskLayer[] = [];
  const toMake: string[] = [];
  for (const m of MASKED_DIRS) {
    let entries: string[];
    try {
      entries = await fs.readdir(m.dir);
    } catch {
      continue; // Not on this machine: nothing to hide.
    }
    const hidden = entries.filter((e) => matches(e, m.names)).sort();
    if (hidden.length === 0) continue;
    const id = createHash('sha256').update(hidden.join('\n')).digest('hex').slice(0, 8);
    const layer = path.join(maskRoot, `${m.key}-${id}`);
    try {
      // The marker sits next to the layer: a file inside it would show up in the host's /usr/bin.
      await fs.access(`${layer}.complete`);
    } catch {
      await fs.rm(layer, { recursive: true, force: true });
      await fs.mkdir(layer, { recursive: true, mode: 0o755 });
      await fs.chmod(layer, (await fs.stat(m.dir)).mode & 0o7777);
      toMake.push(...hidden.map((h) => path.join(layer, h)));
    }
    layers.push({ key: m.key, target: m.dir, lowers: `${layer}:${m.dir}` });
  }
  if (toMake.length > 0) {
    // One process for all whiteouts: Node has no mknod.
    await run('/bin/sh', ['-c', 'for f; do mknod "$f" c 0 0; done', 'mknod-whiteouts', ...toMake], { timeoutMs: 30_000 });
  }
  for (const l of layers) await fs.writeFile(`${l.lowers.split(':')[0]}.complete`, '', { flag: 'a' });
  return layers;
}

/** Creates one host's upper and work directories for each layer and returns the overlays to mount. */
export async function hostOverlays(layers: MaskLayer[], fsDir: string): Promise<MaskOverlay[]> {
  const out: MaskOverlay[] = [];
  for (const l of layers) {
    const base = path.join(fsDir, 'overlay', l.key);
    const upper = path.join(base, 'upper');
    const work = path.join(base, 'work');
    await fs.mkdir(upper, { recursive: true, mode: 0o755 });
    await fs.mkdir(work, { recursive: true, mode: 0o755 });
    await fs.chmod(upper, (await fs.stat(l.target)).mode & 0o7777);
    out.push({ target: l.target, lowers: l.lowers, upper, work });
  }
  return out;
}
