/** Installs Docker Engine when missing: distribution packages, or an uploaded bundle of static binaries. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { sha256File } from '../core/checksum.js';
import { HostStepError } from '../core/errors.js';
import type { Remote } from '../remote/remote.js';
import type { HostFacts } from './facts.js';
import { render } from './templates.js';

/** An engine bundle: its identity (the checksum of its gzip form) and the files it can travel as. */
export interface BundleRef {
  id: string;
  gzip: { path: string; size: number };
  zstd?: { path: string; size: number };
}

const BUNDLE_DOCKERD = '/usr/local/bin/dockerd';

/** A bundle's identity (the gzip form's checksum: its `.sha256` sidecar when there is one) and the files it can be sent as. */
export async function bundleRef(gzip: string, zstd?: string): Promise<BundleRef> {
  const side = `${gzip}.sha256`;
  return {
    id: existsSync(side) ? readFileSync(side, 'utf8').trim().split(/\s+/)[0]! : await sha256File(gzip),
    gzip: { path: gzip, size: statSync(gzip).size },
    zstd: zstd ? { path: zstd, size: statSync(zstd).size } : undefined,
  };
}

/** Returns what was done, or undefined when the engine was already there (nothing changed). */
export async function installEngine(
  remote: Remote,
  facts: HostFacts,
  method: 'packages' | 'bundle',
  bundle: BundleRef | undefined,
): Promise<{ message: string; dockerd: string } | { skipped: string; dockerd: string }> {
  if (method === 'bundle') {
    if (!bundle) {
      throw new HostStepError(remote.name, 'install engine', 'install method is bundle but no bundle was given', {
        hint: 'set swarm.bundle to a .tar.gz of bin/dockerd, bin/containerd, bin/containerd-shim-runc-v2, bin/runc, bin/docker-proxy, bin/docker-init and bin/docker',
      });
    }
    if (facts.bundleSha === bundle.id) return { skipped: `bundle ${bundle.id.slice(0, 12)} already installed`, dockerd: BUNDLE_DOCKERD };
    // An engine someone else installed is used as it is: swarmform does not replace what it did not install.
    if (facts.enginePath && !facts.bundleSha) return { skipped: `engine ${facts.engineVersion ?? ''} already installed at ${facts.enginePath}`, dockerd: facts.enginePath };
    const format = facts.zstd && bundle.zstd ? 'zstd' : 'gzip';
    const file = format === 'zstd' ? bundle.zstd! : bundle.gzip;
    const archive = `/var/tmp/swarmform-engine.tar.${format === 'zstd' ? 'zst' : 'gz'}`;
    await remote.putFile(file.path, archive, 0o600);
    const out = await remote.check(render('install/bundle.sh.njk', { id: bundle.id, size: file.size, archive, format }), 'install engine');
    return { message: `installed from ${format} bundle: ${out.trim().split('\n').pop()}`, dockerd: BUNDLE_DOCKERD };
  }
  if (facts.enginePath) return { skipped: `engine ${facts.engineVersion ?? ''} already installed`, dockerd: facts.enginePath };
  const template = { debian: 'install/apt.sh.njk', rhel: 'install/dnf.sh.njk', alpine: 'install/apk.sh.njk' }[
    facts.osFamily as 'debian' | 'rhel' | 'alpine'
  ];
  if (!template) {
    throw new HostStepError(remote.name, 'install engine', `no package install recipe for OS "${facts.osId}"`, {
      hint: 'use `swarm.install: bundle`, or install Docker Engine on the host first',
    });
  }
  await remote.check(render(template, { extraPackages: [] }), 'install engine', { timeoutMs: 15 * 60_000 });
  const path = (await remote.check('command -v dockerd', 'install engine')).trim();
  return { message: `installed with the ${facts.osFamily} package manager`, dockerd: path };
}
