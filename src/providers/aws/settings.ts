/**
 * `providers.aws` settings and an aws group's `options`. Credentials are never settings: they come from the AWS
 * default chain (environment, shared config and credentials files, SSO, instance roles).
 */
import { z } from 'zod';
import { UsageError } from '../../base/errors.js';
import type { HostSpec, Inventory } from '../../inventory/types.js';
import { cidrProblem } from '../cloud/common.js';

const cidr = (world: boolean) =>
  z.string().superRefine((v, ctx) => {
    const p = cidrProblem(v, world);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  });

const amiId = z.string().regex(/^ami-[0-9a-f]{8,17}$/, 'must be an AMI id like ami-0123456789abcdef0');

/** What a group may override: the machine's shape. */
const shape = {
  instanceType: z.string().regex(/^[a-z0-9-]+\.[a-z0-9-]+$/, 'must be an instance type like t3.medium').optional(),
  /** AMI by id. */
  ami: amiId.optional(),
  /** AMI by name filter (wildcards allowed); the newest match of `amiOwners` is used. */
  amiName: z.string().min(1).optional(),
  subnet: z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'must be a subnet id like subnet-0123456789abcdef0').optional(),
  /** Ask for spot capacity (one-time, terminate on interruption). */
  spot: z.boolean().optional(),
  /** Root volume size in GiB. */
  volumeSize: z.number().int().min(8).max(16384).optional(),
  /** Cloud-init user data: a nunjucks template path (relative to the inventory) or a name in templates/cloud-init. */
  userData: z.string().min(1).optional(),
};

/** Schema of `providers.aws`. */
export const awsSettingsSchema = z.strictObject({
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be a region like eu-west-1'),
  /** API endpoint override (a VPC endpoint, or a local stub in tests). */
  endpoint: z.url().optional(),
  ...shape,
  instanceType: shape.instanceType.default('t3.medium'),
  amiOwners: z.array(z.string().min(1)).min(1).default(['099720109477']),
  vpc: z.string().regex(/^vpc-[0-9a-f]{8,17}$/, 'must be a VPC id like vpc-0123456789abcdef0').optional(),
  /** Key pair name; imported from the operator's public key (ssh.key + ".pub") when absent. */
  keyName: z.string().min(1).max(255).optional(),
  /** Who may reach SSH (22/tcp): the operator's network. */
  sshFrom: z.array(cidr(true)).min(1, 'list at least one CIDR, e.g. your address as 203.0.113.7/32'),
  /** Extra sources for the swarm ports (e.g. another cloud's NAT addresses over a VPN); never 0.0.0.0/0. */
  swarmFrom: z.array(cidr(false)).default([]),
  /** How swarmform reaches the instances over SSH. */
  sshVia: z.enum(['public', 'private']).default('public'),
  /** Instances asked for per RunInstances call (MinCount=1, MaxCount=batchSize). */
  batchSize: z.number().int().min(1).max(1000).default(100),
  /** RunInstances calls in flight at once. */
  concurrency: z.number().int().min(1).max(32).default(2),
  /** Times a host whose instance failed is tried again before it is reported. */
  retries: z.number().int().min(0).max(10).default(2),
  /** The SDK's retry strategy for throttling and transient errors. */
  retry: z
    .strictObject({
      mode: z.enum(['adaptive', 'standard']).default('adaptive'),
      maxAttempts: z.number().int().min(1).max(20).default(8),
      baseDelayMs: z.number().int().min(1).max(60_000).default(500),
      maxDelayMs: z.number().int().min(1).max(300_000).default(20_000),
    })
    .prefault({}),
  /** Seconds to wait for instances to run and answer SSH. */
  waitTimeout: z.number().int().min(1).max(7200).default(600),
});

/** Schema of an aws group's `options`. */
export const awsOptionsSchema = z.strictObject(shape);

export type AwsSettings = z.output<typeof awsSettingsSchema>;
export type AwsOptions = z.output<typeof awsOptionsSchema>;

/** The settings of `providers.aws`, already validated by the loader (defaults applied again here for safety). */
export function awsSettings(inventory: Inventory): AwsSettings {
  const parsed = awsSettingsSchema.safeParse(inventory.providers?.aws ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`providers.aws.${issue.path.map(String).join('.')}: ${issue.message}`);
  }
  return parsed.data;
}

/** A host's machine shape: its options over the provider settings. */
export function awsShape(s: AwsSettings, h: HostSpec): Required<Pick<AwsOptions, 'instanceType'>> & AwsOptions {
  const o = (h.options ?? {}) as AwsOptions;
  return {
    instanceType: o.instanceType ?? s.instanceType,
    ami: o.ami ?? (o.amiName ? undefined : s.ami),
    amiName: o.amiName ?? (o.ami ? undefined : s.amiName),
    subnet: o.subnet ?? s.subnet,
    spot: o.spot ?? s.spot ?? false,
    volumeSize: o.volumeSize ?? s.volumeSize,
    userData: o.userData ?? s.userData,
  };
}

/** Default key pair name of a cluster. */
export function keyNameOf(s: AwsSettings, cluster: string): string {
  return s.keyName ?? `swarmform-${cluster}`;
}

/** Tag keys on every resource swarmform makes in EC2. */
export const TAG = { cluster: 'swarmform:cluster', role: 'swarmform:role', group: 'swarmform:group', name: 'Name' } as const;
