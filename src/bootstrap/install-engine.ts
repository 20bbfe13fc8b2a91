/** Installs Docker Engine when missing: distribution packages, or an uploaded bundle of static binaries. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { sha256File } from '../base/checksum.js';
import { HostStepError } from '../base/errors.js';
import type { PackageSettings } from '../inventory/types.js';
import type { PackageMirror } from '../providers/provider.js';
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
  packages: PackagePlan = {},
): Promise<{ message: string; dockerd: string; installed?: boolean } | { skipped: string; dockerd: string }> {
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
  if (facts.osFamily !== 'debian') {
    // Only apt has run for real (on the lab's Debian 12 and 13 hosts): dnf and apk recipes come when they can be tested.
    throw new HostStepError(remote.name, 'install engine', `cannot install Docker Engine with packages on ${facts.osId} ${facts.osVersion} (OS family ${facts.osFamily})`, {
      hint: 'install Docker Engine on the host first (swarmform then uses it as it is), or use `swarm.install: bundle`',
    });
  }
  const source = aptSource(remote.name, facts, packages);
  if (source?.keyFile) await remote.putContent(await readFile(source.keyFile), '/etc/apt/keyrings/swarmform.asc', 0o644);
  const names = packages.settings?.from === 'docker' ? DOCKER_CE_PACKAGES : DISTRIBUTION_PACKAGES;
  const optional = packages.settings?.from === 'docker' ? [] : OPTIONAL_DISTRIBUTION_PACKAGES;
  const out = await remote.check(render('install/apt.sh.njk', { packages: names, optional, source, systemd: facts.init === 'systemd' }), 'install engine', {
    timeoutMs: 15 * 60_000,
  });
  const path = (await remote.check('command -v dockerd', 'install engine')).trim();
  const versions = out.split('-- installed:\n').pop()!.trim().split('\n').join(', ');
  return { message: `installed with apt${source ? ` from ${source.url}` : ''}: ${versions}`, dockerd: path, installed: true };
}

/** The distribution's engine (Debian and Ubuntu ship dockerd, containerd and runc in these). */
const DISTRIBUTION_PACKAGES = ['docker.io'];
/**
 * Installed with the distribution's engine where the release has them: Debian 13 (trixie) split the CLI into
 * docker-cli (only recommended by docker.io), and the engine relay (`docker system dial-stdio`) needs it.
 */
const OPTIONAL_DISTRIBUTION_PACKAGES = ['docker-cli'];
/** Docker's own packages, from its repository (or a mirror of it). */
const DOCKER_CE_PACKAGES = ['docker-ce', 'docker-ce-cli', 'containerd.io'];

/** What `install: packages` reads: the inventory's `swarm.packages`, and the repositories the provider serves. */
export interface PackagePlan {
  settings?: PackageSettings;
  /** The provider's own repositories by codename (the lab's flat repositories on its bridge). */
  providerMirrors?: Record<string, PackageMirror>;
}

/** The apt source line's parts as apt.sh.njk takes them. */
export interface AptSource {
  url: string;
  /** Empty: the host's VERSION_CODENAME. */
  suite: string;
  components: string[];
  /** Inside `deb [...]`: `trusted=yes` or `signed-by=...`. */
  options: string;
  /** Use this source only (a mirror of the distribution); else it is added to the host's own. */
  only: boolean;
  /** A local key file to upload; or a URL the host fetches the key from (Docker's repository, no mirror). */
  keyFile?: string;
  keyUrl?: string;
}

const KEYRING = '/etc/apt/keyrings/swarmform.asc';

/**
 * Chooses the apt source for a host: the inventory's mirror, else Docker's repository when `from: docker`, else the
 * provider's repository for the host's codename, else none (the host's own sources). Exported for unit tests.
 */
export function aptSource(host: string, facts: HostFacts, plan: PackagePlan): AptSource | undefined {
  const s = plan.settings;
  const from = s?.from ?? 'distribution';
  const signed = (trusted: boolean) => (trusted ? 'trusted=yes' : `signed-by=${KEYRING}`);
  if (s?.mirror) {
    return {
      url: s.mirror,
      suite: s.suite ?? '',
      components: s.suite === './' ? [] : (s.components ?? [from === 'docker' ? 'stable' : 'main']),
      options: signed(s.trusted && !s.key),
      only: from === 'distribution',
      keyFile: s.key,
    };
  }
  if (from === 'docker') {
    const base = `https://download.docker.com/linux/${facts.osId === 'ubuntu' ? 'ubuntu' : 'debian'}`;
    return { url: base, suite: '', components: ['stable'], options: signed(false), only: false, keyUrl: `${base}/gpg` };
  }
  const m = plan.providerMirrors?.[facts.osCodename];
  if (m) return { url: m.url, suite: m.suite, components: m.components, options: signed(Boolean(m.trusted)), only: true, keyFile: m.key };
  if (plan.providerMirrors && Object.keys(plan.providerMirrors).length > 0) {
    throw new HostStepError(host, 'install engine', `the provider serves packages for ${Object.keys(plan.providerMirrors).join(', ')}, not for ${facts.osCodename || facts.osId}`, {
      hint: 'set swarm.packages.mirror to a repository for this release',
    });
  }
  return undefined;
}
