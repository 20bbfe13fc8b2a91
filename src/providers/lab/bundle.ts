/**
 * The engine bundle bootstrap installs on lab hosts: the machine's own Debian engine binaries (docker.io, containerd,
 * runc) as `bin/<name>` in a .tar.gz, so hosts get an engine without any registry or apt mirror.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../base/errors.js';
import { cached, versionKey } from './cache.js';
import { run } from './exec.js';
import { cacheDir } from './paths.js';

/** Binaries in the bundle, by name, with the paths Debian installs them at (used when dpkg cannot tell). */
export const ENGINE_BINARIES: Record<string, string[]> = {
  dockerd: ['/usr/sbin/dockerd', '/usr/bin/dockerd'],
  docker: ['/usr/bin/docker'],
  containerd: ['/usr/bin/containerd'],
  'containerd-shim-runc-v2': ['/usr/bin/containerd-shim-runc-v2'],
  runc: ['/usr/sbin/runc', '/usr/bin/runc'],
  'docker-proxy': ['/usr/sbin/docker-proxy', '/usr/bin/docker-proxy'],
  'docker-init': ['/usr/bin/docker-init', '/usr/sbin/docker-init'],
};

/** Debian packages the bundle's binaries come from. */
export const ENGINE_PACKAGES = ['docker.io', 'containerd', 'runc'];

/** Bumped when the bundle's layout changes, so old caches are not reused. */
const BUNDLE_FORMAT = 'bundle-v1';

/** Finds each engine binary as a real file (docker-init is a symlink to tini-static: the target is stored). */
export async function locateEngineBinaries(): Promise<Record<string, string>> {
  const listed = await run('dpkg', ['-L', ...ENGINE_PACKAGES], { allowFail: true, timeoutMs: 30_000 });
  const fromDpkg = listed.stdout.split('\n').filter((l) => /\/s?bin\//.test(l));
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const [name, known] of Object.entries(ENGINE_BINARIES)) {
    const candidates = [...fromDpkg.filter((p) => path.basename(p) === name), ...known];
    let real: string | undefined;
    for (const c of candidates) {
      try {
        const r = await fs.realpath(c);
        if ((await fs.stat(r)).isFile()) {
          real = r;
          break;
        }
      } catch {
        // Not at this path; try the next.
      }
    }
    if (real) found[name] = real;
    else missing.push(name);
  }
  if (missing.length > 0) {
    throw new UsageError(`engine binaries not found on this machine: ${missing.join(', ')}`, { hint: `apt-get install -y ${ENGINE_PACKAGES.join(' ')}` });
  }
  return found;
}

/** Builds (once per package versions) and returns the path of `LAB_ROOT/cache/engine-<key>.tar.gz`. */
export async function engineBundle(): Promise<string> {
  const bins = await locateEngineBinaries();
  const key = await versionKey(ENGINE_PACKAGES, Object.values(bins), BUNDLE_FORMAT);
  const target = path.join(cacheDir(), `engine-${key}.tar.gz`);
  return cached(
    target,
    async (tmp, work) => {
      const binDir = path.join(work, 'bin');
      await fs.mkdir(binDir, { mode: 0o755 });
      // Symlinks to the real files, stored dereferenced: no 150 MB copy before compressing.
      for (const [name, real] of Object.entries(bins)) await fs.symlink(real, path.join(binDir, name));
      await run(
        'tar',
        [
          '--dereference',
          '--owner=0',
          '--group=0',
          '--numeric-owner',
          // The binaries are about 150 MB: fast compression matters more than size for a local upload.
          '--use-compress-program=gzip -1',
          '-C',
          work,
          '-cf',
          tmp,
          ...Object.keys(bins).map((n) => `bin/${n}`),
        ],
        { timeoutMs: 600_000 },
      );
    },
    { checksum: true },
  );
}

/**
 * The same bundle recompressed with zstd, when this machine has `zstd`: hosts that have it too extract it in about a
 * quarter of gzip's CPU time (0.45 s against 1.6 s for the 190 MB of binaries), which dominates bootstrap on a
 * 2-core machine running dozens of hosts. Returns undefined without zstd.
 */
export async function engineBundleZstd(gzBundle: string): Promise<string | undefined> {
  const which = await run('sh', ['-c', 'command -v zstd'], { allowFail: true, timeoutMs: 10_000 });
  if (which.code !== 0) return undefined;
  const target = gzBundle.replace(/\.tar\.gz$/, '.tar.zst');
  return cached(
    target,
    async (tmp) => {
      await run('sh', ['-c', 'gzip -dc "$0" | zstd -q -3 -T0 -o "$1"', gzBundle, tmp], { timeoutMs: 600_000 });
    },
    { checksum: true },
  );
}

/**
 * The bundle extracted once into a read-only directory, for `providers.lab.engine: preinstalled`: every host of such a
 * cluster gets it as the lower layer of an overlay on its /usr/local, like a machine image with the engine baked in.
 * All hosts then run the same files, so the kernel keeps one copy of the binaries' pages (about 80 MB of dockerd and
 * containerd text per host otherwise) and no host spends disk or CPU extracting 190 MB.
 */
export async function engineLayer(gzBundle: string): Promise<string> {
  const target = gzBundle.replace(/\.tar\.gz$/, '.layer');
  return cached(target, async (tmp, work) => {
    const dir = path.join(work, 'layer');
    await fs.mkdir(dir, { mode: 0o755 });
    await run('tar', ['-xzf', gzBundle, '-C', dir, '--no-same-owner'], { timeoutMs: 600_000 });
    await fs.rename(dir, tmp);
  });
}
