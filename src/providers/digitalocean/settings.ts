/** `providers.digitalocean` settings and a digitalocean group's `options`. The token is never a setting. */
import { z } from 'zod';
import { UsageError } from '../../base/errors.js';
import type { HostSpec, Inventory } from '../../inventory/types.js';
import { cidrProblem } from '../cloud/common.js';

const cidr = (world: boolean) =>
  z.string().superRefine((v, ctx) => {
    const p = cidrProblem(v, world);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  });

const tagName = z.string().regex(/^[A-Za-z0-9:_-]{1,255}$/, 'must be a DigitalOcean tag: letters, digits, ":", "-", "_"');

const shape = {
  size: z.string().regex(/^[a-z0-9-]+$/, 'must be a size slug like s-2vcpu-4gb').optional(),
  image: z.string().min(1).optional(),
  userData: z.string().min(1).optional(),
  tags: z.array(tagName).optional(),
};

/** Schema of `providers.digitalocean`. */
export const doSettingsSchema = z.strictObject({
  region: z.string().regex(/^[a-z]{3}\d$/, 'must be a region slug like fra1'),
  /** API base URL (tests point it at a loopback stub). */
  endpoint: z.url().optional(),
  ...shape,
  size: shape.size.default('s-2vcpu-4gb'),
  image: shape.image.default('ubuntu-24-04-x64'),
  tags: shape.tags.default([]),
  /** VPC UUID; the region's default VPC when absent. */
  vpc: z.uuid().optional(),
  /** Fingerprint of an SSH key already in the account; otherwise the operator's key is uploaded as swarmform-<cluster>. */
  sshKey: z.string().regex(/^([0-9a-f]{2}:){15}[0-9a-f]{2}$/, 'must be an MD5 fingerprint like 3b:16:bf:...').optional(),
  sshFrom: z.array(cidr(true)).min(1, 'list at least one CIDR, e.g. your address as 203.0.113.7/32'),
  swarmFrom: z.array(cidr(false)).default([]),
  sshVia: z.enum(['public', 'private']).default('public'),
  /** Names per create call: the API takes at most 10. */
  batchSize: z.number().int().min(1).max(10).default(10),
  concurrency: z.number().int().min(1).max(16).default(2),
  retries: z.number().int().min(0).max(10).default(2),
  rateLimit: z
    .strictObject({
      maxRetries: z.number().int().min(0).max(20).default(8),
      baseDelayMs: z.number().int().min(1).max(60_000).default(1000),
    })
    .prefault({}),
  waitTimeout: z.number().int().min(1).max(7200).default(600),
});

export const doOptionsSchema = z.strictObject(shape);

export type DoSettings = z.output<typeof doSettingsSchema>;
export type DoOptions = z.output<typeof doOptionsSchema>;

export function doSettings(inventory: Inventory): DoSettings {
  const parsed = doSettingsSchema.safeParse(inventory.providers?.digitalocean ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`providers.digitalocean.${issue.path.map(String).join('.')}: ${issue.message}`);
  }
  return parsed.data;
}

export function doShape(s: DoSettings, h: HostSpec): { size: string; image: string; userData?: string; tags: string[] } {
  const o = (h.options ?? {}) as DoOptions;
  return { size: o.size ?? s.size, image: o.image ?? s.image, userData: o.userData ?? s.userData, tags: [...s.tags, ...(o.tags ?? [])] };
}

/** Tags swarmform puts on droplets and the firewall: the cluster's, and per role and group ones under it. */
export function doTags(cluster: string) {
  const base = `swarmform:${cluster}`;
  return { cluster: base, role: (r: string) => `${base}:role:${r}`, group: (g: string) => `${base}:group:${g.replace(/[^A-Za-z0-9:_-]/g, '_')}` };
}
