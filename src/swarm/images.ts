/** Loads image tarballs into a host's engine over its SSH connection, skipping images already present. */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { HostStepError } from '../base/errors.js';
import type { ImageSpec } from '../inventory/types.js';
import type { Remote } from '../remote/remote.js';

const run = promisify(execFile);

/** Tags a tarball will provide: the import tag, or the RepoTags in a `docker save` archive's manifest (read once). */
export async function imageTags(spec: ImageSpec): Promise<string[]> {
  if (spec.kind === 'import') return spec.tag ? [spec.tag] : [];
  const { stdout } = await run('tar', ['-xOf', spec.file, 'manifest.json'], { maxBuffer: 16 << 20 });
  return (JSON.parse(stdout) as { RepoTags?: string[] }[]).flatMap((m) => m.RepoTags ?? []);
}

/** Loads every image the host lacks; returns the tags loaded (empty when all were present). */
export async function ensureImages(remote: Remote, images: { spec: ImageSpec; tags: string[] }[]): Promise<string[]> {
  const engine = remote.engine();
  const loaded: string[] = [];
  for (const { spec, tags } of images) {
    const present = await Promise.all(tags.map((t) => engine.getImage(t).inspect().then(() => true, () => false)));
    if (tags.length > 0 && present.every(Boolean)) continue;
    // Untimed: after the upload the engine may work on large layers for longer than the client's idle limit.
    const loader = remote.engine({ untimed: true });
    const stream =
      spec.kind === 'import'
        ? await loader.importImage(createReadStream(spec.file) as never, splitTag(spec.tag ?? 'swarmform/imported:latest'))
        : await loader.loadImage(createReadStream(spec.file) as never, { quiet: true });
    await follow(engine, stream as NodeJS.ReadableStream, remote.name, spec.file);
    loaded.push(...tags);
  }
  return loaded;
}

function splitTag(ref: string): { repo: string; tag: string } {
  const i = ref.lastIndexOf(':');
  return i > ref.lastIndexOf('/') ? { repo: ref.slice(0, i), tag: ref.slice(i + 1) } : { repo: ref, tag: 'latest' };
}

function follow(engine: Docker, stream: NodeJS.ReadableStream, host: string, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    engine.modem.followProgress(stream, (err: Error | null, output: { error?: string; errorDetail?: { message?: string } }[]) => {
      const failed = err?.message ?? output?.find((o) => o.error)?.error;
      if (failed) reject(new HostStepError(host, 'images', `loading ${file} failed: ${failed}`));
      else resolve();
    });
  });
}
