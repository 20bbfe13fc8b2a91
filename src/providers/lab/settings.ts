/**
 * The `providers.lab` settings of an inventory. The subnet must stay inside 198.18.0.0/15 (RFC 2544 benchmarking
 * space): it cannot collide with a real network, and tests may only ever send traffic to lab addresses.
 */
import { z } from 'zod';
import { UsageError } from '../../core/errors.js';
import type { Inventory } from '../../inventory/types.js';
import { contains, parseCidr, type Subnet } from './addresses.js';
import { defaultBridgeName } from './names.js';

/** The only space lab subnets may come from. */
export const LAB_SPACE = '198.18.0.0/15';
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
});

/** Schema of a lab group's `options`: the lab takes none yet. */
export const labOptionsSchema = z.strictObject({});

/** Resolved lab settings. */
export interface LabSettings {
  subnet: Subnet;
  bridge: string;
  engine: 'install' | 'preinstalled';
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
  };
}
