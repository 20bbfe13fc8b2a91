/**
 * The lab's base image: no registry is reachable, so workloads run on a root filesystem made from Debian's
 * busybox-static (one static binary giving sh, httpd, wget, sleep...), imported on every node with `docker import`.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { cached, versionKey } from './cache.js';
import { run } from './exec.js';
import { cacheDir } from './paths.js';

/** The static busybox the image is made from. */
export const BUSYBOX = '/bin/busybox';
/** Tag the image gets when imported. */
export const BASE_IMAGE_TAG = 'swarmform/busybox:latest';

const IMAGE_FORMAT = 'busybox-rootfs-v1';

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
const GROUP = 'root:x:0:\nnogroup:x:65534:\n';
const INDEX_HTML = '<!doctype html>\n<title>swarmform</title>\n<p>served by busybox httpd on a swarmform lab node</p>\n';

/** Builds (once per busybox-static version) and returns `LAB_ROOT/cache/busybox-rootfs-<key>.tar`. */
export async function baseImage(): Promise<string> {
  const key = await versionKey(['busybox-static'], [BUSYBOX], IMAGE_FORMAT);
  const target = path.join(cacheDir(), `busybox-rootfs-${key}.tar`);
  return cached(target, async (tmp, work) => {
    const { stdout } = await run(BUSYBOX, ['--list'], { timeoutMs: 30_000 });
    const bin = path.join(work, 'bin');
    await fs.mkdir(bin, { mode: 0o755 });
    await fs.copyFile(BUSYBOX, path.join(bin, 'busybox'));
    await fs.chmod(path.join(bin, 'busybox'), 0o755);
    for (const applet of stdout.split('\n').map((l) => l.trim())) {
      if (!applet || applet === 'busybox' || applet.includes('/')) continue;
      await fs.symlink('busybox', path.join(bin, applet));
    }
    await fs.mkdir(path.join(work, 'etc'), { mode: 0o755 });
    await fs.writeFile(path.join(work, 'etc', 'passwd'), PASSWD, { mode: 0o644 });
    await fs.writeFile(path.join(work, 'etc', 'group'), GROUP, { mode: 0o644 });
    await fs.mkdir(path.join(work, 'tmp'));
    await fs.chmod(path.join(work, 'tmp'), 0o1777);
    await fs.mkdir(path.join(work, 'root'), { mode: 0o700 });
    await fs.mkdir(path.join(work, 'www'), { mode: 0o755 });
    await fs.writeFile(path.join(work, 'www', 'index.html'), INDEX_HTML, { mode: 0o644 });
    await run('tar', ['--owner=0', '--group=0', '--numeric-owner', '-C', work, '-cf', tmp, 'bin', 'etc', 'root', 'tmp', 'www'], {
      timeoutMs: 120_000,
    });
  });
}
