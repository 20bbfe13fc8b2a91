/**
 * Built-once files under LAB_ROOT/cache, keyed by the versions of the Debian packages they come from, so a package
 * upgrade rebuilds them and nothing else does. Builds go to a temporary name and are renamed into place, so a
 * crashed or concurrent build never leaves a half-written artifact under the final name.
 */
import { createHash } from 'node:crypto';
import { sha256File } from '../../base/checksum.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { run } from './exec.js';

/** Short key from the installed versions of `packages` (falls back to the files' sizes and times without dpkg). */
export async function versionKey(packages: string[], files: string[], salt: string): Promise<string> {
  const h = createHash('sha256').update(salt);
  const r = await run('dpkg-query', ['-W', '-f', '${Package}=${Version}\\n', ...packages], {
    allowFail: true,
    timeoutMs: 30_000,
  });
  if (r.code === 0 && r.stdout.trim()) {
    h.update(r.stdout);
  } else {
    for (const f of files) {
      const st = await fs.stat(f);
      h.update(`${f}:${st.size}:${st.mtimeMs}\n`);
    }
  }
  return h.digest('hex').slice(0, 12);
}

/** True when `file` exists (any type). */
export async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}


/**
 * Returns `target`, building it first with `build(tmpFile, workDir)` unless it exists. `workDir` is a scratch
 * directory removed afterwards. With `checksum`, also writes `target.sha256` in sha256sum's format.
 */
export async function cached(
  target: string,
  build: (tmpFile: string, workDir: string) => Promise<void>,
  opts: { checksum?: boolean } = {},
): Promise<string> {
  const sumFile = `${target}.sha256`;
  if ((await exists(target)) && (!opts.checksum || (await exists(sumFile)))) return target;
  const dir = path.dirname(target);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  const stamp = `${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  const tmp = path.join(dir, `.${path.basename(target)}.tmp-${stamp}`);
  const work = path.join(dir, `.work-${stamp}`);
  try {
    await fs.mkdir(work, { mode: 0o755 });
    await build(tmp, work);
    if (opts.checksum) {
      const sum = await sha256File(tmp);
      const sumTmp = `${tmp}.sha256`;
      await fs.writeFile(sumTmp, `${sum}  ${path.basename(target)}\n`, { mode: 0o644 });
      await fs.rename(tmp, target);
      await fs.rename(sumTmp, sumFile);
    } else {
      await fs.rename(tmp, target);
    }
    return target;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
    await fs.rm(tmp, { force: true });
    await fs.rm(`${tmp}.sha256`, { force: true });
  }
}
