/**
 * The `providers.lab` settings of an inventory. The subnet must stay inside 198.18.0.0/15 (RFC 2544 benchmarking
 * space): it cannot collide with a real network, and tests may only ever send traffic to lab addresses.
 */
import { z } from 'zod';
import { UsageError } from '../../base/errors.js';
import type { HostSpec, Inventory } from '../../inventory/types.js';
import { capacity, contains, parseCidr, type Subnet } from './addresses.js';
import { defaultBridgeName } from './names.js';

/** The only space lab subnets may come from. */
export const LAB_SPACE = '198.18.0.0/15';
/** OS releases a lab host can boot (`os:` values), by what users call them. */
export const OS_NAMES = ['debian-12', 'debian-13'] as const;
export type OsName = (typeof OS_NAMES)[number];
/** Image variants: the firewall tooling shipped enabled in the image. */
export const FIREWALLS = ['nftables', 'ufw', 'firewalld'] as const;
export type Firewall = (typeof FIREWALLS)[number];

/** Subnet used when the inventory gives none. */
export const DEFAULT_SUBNET = '198.18.0.0/24';

const labSpace = parseCidr(LAB_SPACE)!;

/** Schema of `providers.lab`, checked with positions by the inventory loader. */
export const labSettingsSchema = z.strictObject({
  subnet: z
    .string()
    .default(DEFAULT_SUBNET)
    .superRefine((value, ctx) => {
      const problem = subnetProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  bridge: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,15}$/, 'must be a Linux interface name: 1-15 of A-Z, a-z, 0-9, "_", ".", "-"')
    .optional(),
  /**
   * `install` (default): hosts start without an engine and bootstrap uploads and extracts the bundle on each.
   * `preinstalled`: hosts start with the engine's binaries in /usr/local from one read-only layer shared by every host
   * (a machine image with Docker baked in); bootstrap finds them, writes the service and starts the engine. For large
   * labs: one copy of the binaries in memory and on disk instead of one per host.
   */
  engine: z.enum(['install', 'preinstalled']).default('install'),
  /**
   * Absent (default): namespace hosts (no init system, root login). `debian-12` / `debian-13`: every lab host of the
   * cluster boots that Debian release under systemd (see os-host.ts); a group's `options.os` overrides it.
   */
  os: z.enum(OS_NAMES).optional(),
});

/** A Linux user name the image's useradd accepts (and that is safe in paths and sudoers). */
const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

/** A Debian package name (policy 5.6.7): lower case, digits, + - . ; two characters at least. */
const PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]+$/;

/**
 * Schema of a lab group's `options`: the OS a group's hosts boot (`os`), the login user of that OS image (`user`,
 * default `admin`, with passwordless sudo), which firewall tooling the image ships enabled (`firewall`) and extra
 * Debian packages baked into the image (`packages`, e.g. python3 for Ansible; each list is its own cached image).
 */
export const labOptionsSchema = z.strictObject({
  os: z.enum(OS_NAMES).optional(),
  user: z
    .string()
    .regex(USER_RE, 'must be a Linux user name: a-z or "_" first, then up to 31 of a-z, 0-9, "_", "-"')
    .refine((u) => u !== 'root', 'may not be root: OS hosts refuse root logins like a cloud image; pick a login user')
    .optional(),
  firewall: z.enum(FIREWALLS).optional(),
  packages: z.array(z.string().regex(PACKAGE_RE, 'must be a Debian package name (a-z, 0-9, "+", "-", ".")')).max(64).optional(),
});

/** Resolved lab settings. */
export interface LabSettings {
  subnet: Subnet;
  bridge: string;
  engine: 'install' | 'preinstalled';
  /** The cluster-wide default OS of its hosts; undefined: namespace hosts. */
  os?: OsName;
}

/** What one OS host boots: Debian release, login user, image variant. */
export interface OsChoice {
  os: OsName;
  user: string;
  firewall: Firewall;
  /** Extra packages in the image, sorted, without repeats ([] for none). */
  packages: string[];
}

/** The login user of OS hosts when a group names none. */
export const DEFAULT_OS_USER = 'admin';

/**
 * The OS a host boots, from its group's options over the cluster's `providers.lab.os`; undefined for a namespace
 * host. Throws UsageError naming the key, also for `user`/`firewall` given to a namespace host (they would be ignored).
 */
export function osChoice(host: HostSpec, settings: Pick<LabSettings, 'os'>): OsChoice | undefined {
  const parsed = labOptionsSchema.safeParse(host.options ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = ['groups', host.group, 'options', ...issue.path.map(String)].join('.');
    throw new UsageError(`${key}: ${issue.message}`);
  }
  const os = parsed.data.os ?? settings.os;
  if (!os) {
    const extra = (['user', 'firewall', 'packages'] as const).find((k) => parsed.data[k] !== undefined);
    if (extra) {
      throw new UsageError(`groups.${host.group}.options.${extra}: only OS hosts have a login user, firewall tooling and image packages`, {
        hint: `add options.os (${OS_NAMES.join(' or ')}) to the group, or providers.lab.os for the whole cluster`,
      });
    }
    return undefined;
  }
  const packages = [...new Set(parsed.data.packages ?? [])].sort();
  return { os, user: parsed.data.user ?? DEFAULT_OS_USER, firewall: parsed.data.firewall ?? 'nftables', packages };
}

/**
 * Why `hosts` lab hosts do not fit the (validated) settings' subnet, with the subnet that would fit; undefined when
 * they fit. Read by the inventory loader through the provider's `hostLimit`.
 */
export function labHostLimit(hosts: number, settings: Record<string, unknown>, given: (key: string) => boolean): string | undefined {
  const subnet = typeof settings.subnet === 'string' ? parseCidr(settings.subnet) : undefined;
  if (subnet === undefined || hosts <= capacity(subnet)) return undefined;
  const fit = prefixFor(hosts);
  return (
    `providers.lab.subnet ${subnet.cidr}${given('subnet') ? '' : ' (the default)'} holds ` +
    `${capacity(subnet)} (${2 ** (32 - subnet.prefix)} addresses less the network, the bridge's .1 and the broadcast): ` +
    (fit === undefined
      ? `the lab holds at most ${capacity(labSpace)} hosts (${LAB_SPACE}); use fewer hosts`
      : `set providers.lab.subnet to a /${fit}${fit > labSpace.prefix ? ' or larger' : ''} inside ${LAB_SPACE} ` +
        `(e.g. ${LAB_SPACE.split('/')[0]}/${fit}), or use fewer hosts`)
  );
}

/** The longest prefix inside the lab space whose subnet holds `hosts`; undefined when none does. */
function prefixFor(hosts: number): number | undefined {
  for (let p = 30; p >= labSpace.prefix; p--) {
    if (capacity({ cidr: '', network: 0, prefix: p, broadcast: 2 ** (32 - p) - 1 }) >= hosts) return p;
  }
  return undefined;
}

/** Why a subnet string cannot be used, or undefined when it can. */
export function subnetProblem(value: string): string | undefined {
  const s = parseCidr(value);
  if (!s) return `"${value}" is not an IPv4 network in CIDR form with the host bits zero (e.g. ${DEFAULT_SUBNET})`;
  if (!contains(labSpace, s)) {
    return `${value} is outside ${LAB_SPACE}: the lab only uses the benchmarking range so it never collides with real networks`;
  }
  if (s.prefix > 30) return `${value} is too small: use /30 or larger (e.g. /24)`;
  return undefined;
}

/** Reads and checks `inventory.providers.lab`; throws UsageError naming the key. */
export function labSettings(inventory: Inventory): LabSettings {
  const raw = inventory.providers?.lab ?? {};
  const parsed = labSettingsSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = ['providers', 'lab', ...issue.path.map(String)].join('.');
    throw new UsageError(`${key}: ${issue.message}`);
  }
  return {
    subnet: parseCidr(parsed.data.subnet)!,
    bridge: parsed.data.bridge ?? defaultBridgeName(inventory.cluster),
    engine: parsed.data.engine,
    os: parsed.data.os,
  };
}
