/**
 * The root file systems OS hosts boot: a minimal Debian built once with mmdebstrap (`--variant=apt` plus systemd,
 * sshd, sudo and one firewall tool), kept as a read-only directory under LAB_ROOT/cache/os and shared by every OS host
 * through an overlayfs lower layer. Like a fresh cloud image: a login user with passwordless sudo, key-only SSH, no
 * root login, no host keys and no machine id of its own, and no container engine.
 *
 * The same build fills the lab's package mirror (mirror.ts): a customize hook runs `apt-get install --download-only`
 * for the engine's packages inside the new system, where apt still points at the Debian mirror, and copies the .debs
 * out before the image's apt cache is cleaned.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ExternalError, UsageError } from '../../base/errors.js';
import { exists } from './cache.js';
import { CommandError, run, tail } from './exec.js';
import { addToMirror, mirrorReady } from './mirror.js';
import { osCacheDir } from './paths.js';
import type { Firewall, OsChoice, OsName } from './settings.js';

/** Bumped whenever the recipe below changes in a way the package list does not show. */
const FORMAT_VERSION = 1;

/** Debian codename (VERSION_CODENAME) of each OS name. */
export const CODENAMES: Record<OsName, string> = { 'debian-12': 'bookworm', 'debian-13': 'trixie' };

/** Packages of every image: a systemd-booted server reachable over SSH, with the tools bootstrap expects. */
const BASE_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'openssh-server', 'sudo', 'iproute2', 'ca-certificates', 'procps', 'nftables', 'iptables'];

/** Extra packages per firewall variant. */
const VARIANT_PACKAGES: Record<Firewall, string[]> = { nftables: [], ufw: ['ufw'], firewalld: ['firewalld'] };

/** What the mirror gets from each build: the engine from Debian, and zstd for the compressed bundle. */
export const MIRROR_PACKAGES = ['docker.io', 'zstd'];
/** Also mirrored where the release has them (trixie's docker.io only recommends its CLI, docker-cli). */
export const MIRROR_OPTIONAL = ['docker-cli'];

/** Where the machine's apt sources live; the image is built from the same mirror. */
const HOST_SOURCES = '/etc/apt/sources.list.d/debian.sources';

/** Build time limit: a slow mirror can take minutes, a hung one must not hang `up` forever. */
const BUILD_TIMEOUT_MS = 20 * 60_000;

/** A built image. */
export interface OsImage {
  /** Directory name under LAB_ROOT/cache/os: `<codename>-<variant>-<digest>`. */
  name: string;
  /** The read-only root file system (an overlay's lower layer). */
  rootfs: string;
  codename: string;
  os: OsName;
  user: string;
  firewall: Firewall;
}

/** Facts about a build, kept next to the rootfs. */
interface ImageInfo {
  name: string;
  os: OsName;
  codename: string;
  user: string;
  firewall: Firewall;
  packages: string[];
  builtAt: string;
  buildSeconds: number;
}

/** The full package list of a variant, with the group's extra packages. */
export function imagePackages(choice: Pick<OsChoice, 'firewall' | 'packages'>): string[] {
  return [...new Set([...BASE_PACKAGES, ...VARIANT_PACKAGES[choice.firewall], ...(choice.packages ?? [])])];
}

/** The image's cache name: release, variant and a digest of everything that shapes its contents. */
export function imageName(choice: OsChoice): string {
  const codename = CODENAMES[choice.os];
  const digest = createHash('sha256')
    .update(JSON.stringify({ v: FORMAT_VERSION, codename, packages: imagePackages(choice), user: choice.user, mirror: MIRROR_PACKAGES, optional: MIRROR_OPTIONAL }))
    .digest('hex')
    .slice(0, 12);
  return `${codename}-${choice.firewall}-${digest}`;
}

/**
 * The machine's deb822 sources with every suite moved to `codename` (bookworm-updates becomes trixie-updates, and so
 * on), so the image comes from the mirror this machine already uses.
 */
export async function sourcesFor(codename: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(HOST_SOURCES, 'utf8');
  } catch {
    throw new UsageError(`lab OS images are built from ${HOST_SOURCES}, which this machine does not have`, {
      hint: 'OS hosts need a Debian machine with deb822 apt sources (Debian 12 or later)',
    });
  }
  return text.replace(/^(Suites:)(.*)$/gim, (_, key: string, suites: string) => {
    const moved = suites
      .trim()
      .split(/\s+/)
      .map((s) => s.replace(/^[a-z]+(?=$|-)/, codename));
    return `${key} ${moved.join(' ')}`;
  });
}

/**
 * The customize hooks, run by mmdebstrap with the new root as $1 after the packages are installed. Values come in
 * as environment variables (SF_USER, SF_DEBS), never spliced into the script text.
 */
function customizeHooks(firewall: Firewall): string[] {
  const hooks = [
    // The login user of a cloud image: uid 1000, bash, passwordless sudo.
    'chroot "$1" useradd -m -s /bin/bash -u 1000 -U "$SF_USER"',
    'printf "%s ALL=(ALL) NOPASSWD:ALL\\n" "$SF_USER" > "$1/etc/sudoers.d/90-swarmform-lab" && chmod 0440 "$1/etc/sudoers.d/90-swarmform-lab"',
    // Key-only SSH and no root login; the rest is Debian's stock sshd_config (which includes sshd_config.d).
    'printf "# Written by swarmform (lab OS image)\\nPermitRootLogin no\\nPasswordAuthentication no\\n" > "$1/etc/ssh/sshd_config.d/90-swarmform-lab.conf"',
    // Every host gets its own host keys and machine id when it is created.
    'rm -f "$1"/etc/ssh/ssh_host_*',
    ': > "$1/etc/machine-id"',
  ];
  if (firewall === 'nftables') hooks.push('chroot "$1" systemctl enable nftables');
  if (firewall === 'ufw') {
    hooks.push(
      'chroot "$1" ufw allow 22/tcp',
      'sed -i "s/^ENABLED=.*/ENABLED=yes/" "$1/etc/ufw/ufw.conf"',
      'chroot "$1" systemctl enable ufw',
    );
  }
  if (firewall === 'firewalld') hooks.push('chroot "$1" systemctl enable firewalld');
  hooks.push(
    // The package mirror: what an engine install needs beyond the image, downloaded where apt still has the Debian
    // mirror, then copied out (with the image's own packages, which apt also left in its cache).
    `pkgs="${MIRROR_PACKAGES.join(' ')}"; for p in ${MIRROR_OPTIONAL.join(' ')}; do chroot "$1" apt-cache show "$p" >/dev/null 2>&1 && pkgs="$pkgs $p"; done; chroot "$1" apt-get install --download-only -y $pkgs`,
    'cp "$1"/var/cache/apt/archives/*.deb "$SF_DEBS"/',
    'chroot "$1" apt-get clean',
    // Last, because the download above still needs it: mmdebstrap leaves the build machine's name and resolver
    // behind; lab hosts get their own, with no nameserver.
    'echo localhost > "$1/etc/hostname"',
    'echo "# no nameserver: lab hosts reach nothing outside the lab" > "$1/etc/resolv.conf"',
  );
  return hooks;
}

/** Reads an image's build record; undefined when missing. */
async function readInfo(dir: string): Promise<ImageInfo | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(dir, 'image.json'), 'utf8')) as ImageInfo;
  } catch {
    return undefined;
  }
}

function imageOf(dir: string, info: Pick<ImageInfo, 'name' | 'os' | 'codename' | 'user' | 'firewall'>): OsImage {
  return { name: info.name, rootfs: path.join(dir, 'rootfs'), codename: info.codename, os: info.os, user: info.user, firewall: info.firewall };
}

/** Builds of this process in flight, so hosts created in parallel wait for one build. */
const inFlight = new Map<string, Promise<OsImage>>();

/** The built image for `choice`, building it (and filling the mirror) first if needed. */
export function osImage(choice: OsChoice, log: (message: string) => void = () => undefined): Promise<OsImage> {
  const name = imageName(choice);
  let p = inFlight.get(name);
  if (!p) {
    p = ensureImage(choice, name, log).finally(() => inFlight.delete(name));
    inFlight.set(name, p);
  }
  return p;
}

/** Names of the built images (for prune and for finding what a host boots). */
export async function builtImages(): Promise<string[]> {
  try {
    return (await fs.readdir(osCacheDir(), { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  } catch {
    return [];
  }
}

/** The image a host recorded it boots, if it is still there. */
export async function imageByName(name: string): Promise<OsImage | undefined> {
  if (!/^[a-z]+-[a-z]+-[0-9a-f]{12}$/.test(name)) return undefined;
  const dir = path.join(osCacheDir(), name);
  const info = await readInfo(dir);
  return info && (await exists(path.join(dir, 'rootfs', 'usr', 'lib', 'os-release'))) ? imageOf(dir, info) : undefined;
}

async function ensureImage(choice: OsChoice, name: string, log: (message: string) => void): Promise<OsImage> {
  const codename = CODENAMES[choice.os];
  const dir = path.join(osCacheDir(), name);
  const have = await readInfo(dir);
  if (have && (await mirrorReady(codename))) return imageOf(dir, have);

  await fs.mkdir(osCacheDir(), { recursive: true, mode: 0o755 });
  const stamp = `${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  const tmp = path.join(osCacheDir(), `.build-${name}-${stamp}`);
  const started = Date.now();
  log(`lab: building OS image ${name} (Debian ${codename}, mmdebstrap; about a minute)`);
  try {
    await fs.mkdir(path.join(tmp, 'debs'), { recursive: true, mode: 0o755 });
    const sources = path.join(tmp, 'debian.sources');
    await fs.writeFile(sources, await sourcesFor(codename), { mode: 0o644 });
    const packages = imagePackages(choice);
    const args = [
      '--variant=apt',
      '--mode=root',
      '--format=directory',
      `--include=${packages.join(',')}`,
      ...customizeHooks(choice.firewall).map((h) => `--customize-hook=${h}`),
      codename,
      path.join(tmp, 'rootfs'),
      sources,
    ];
    const r = await runWithEnv('mmdebstrap', args, { SF_USER: choice.user, SF_DEBS: path.join(tmp, 'debs') });
    if (r.code !== 0) throw new CommandError(`mmdebstrap ${codename}`, r.code, r.stderr);
    await addToMirror(codename, path.join(tmp, 'debs'));
    const info: ImageInfo = {
      name,
      os: choice.os,
      codename,
      user: choice.user,
      firewall: choice.firewall,
      packages,
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((Date.now() - started) / 100) / 10,
    };
    await fs.rm(path.join(tmp, 'debs'), { recursive: true, force: true });
    await fs.rm(sources, { force: true });
    await fs.writeFile(path.join(tmp, 'image.json'), `${JSON.stringify(info, null, 2)}\n`, { mode: 0o644 });
    if (have) {
      // Only the mirror was missing: keep the image hosts may already boot from.
      log(`lab: refilled the package mirror for ${codename} in ${info.buildSeconds} s`);
      return imageOf(dir, have);
    }
    try {
      await fs.rename(tmp, dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another run built it meanwhile: use theirs.
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    }
    log(`lab: built OS image ${name} in ${info.buildSeconds} s`);
    const built = await readInfo(dir);
    return imageOf(dir, built ?? info);
  } finally {
    await removeBuildDir(tmp);
  }
}

/** Removes a failed or superseded build; refuses to recurse into anything mounted below it. */
async function removeBuildDir(dir: string): Promise<void> {
  if (!(await exists(dir))) return;
  const mounts = await fs.readFile('/proc/self/mountinfo', 'utf8');
  if (mounts.split('\n').some((l) => (l.split(' ')[4] ?? '').startsWith(`${dir}/`))) {
    throw new ExternalError(`cannot remove the failed image build ${dir}: something is still mounted below it`, {
      hint: `unmount what is mounted below ${dir} (findmnt -R ${dir}) and run again`,
    });
  }
  await fs.rm(dir, { recursive: true, force: true });
}

/** `run` with extra environment variables (mmdebstrap passes its environment to the hooks). */
async function runWithEnv(cmd: string, args: string[], env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const saved: Record<string, string | undefined> = {};
  // exec.run takes the environment from process.env; mmdebstrap is started synchronously by spawn, so setting and
  // restoring around the call is enough (no other await happens in between).
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  let p: ReturnType<typeof run>;
  try {
    p = run(cmd, args, { allowFail: true, timeoutMs: BUILD_TIMEOUT_MS });
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  const r = await p;
  return { code: r.code, stderr: r.code === 0 ? r.stderr : tail(`${r.stdout}\n${r.stderr}`, 20) };
}
