/**
 * The inventory file's schema: shapes, types and value rules of every key. Rules that span keys (host name
 * uniqueness, one manager at least, provider schemas) are checked after this, on the parsed result.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import type { AdvertiseChoice, PublishedPort } from './types.js';
import { ShellWordsError, splitShellWords } from './shell-words.js';
import { expectedMessage, expecting } from './zod-issues.js';
import { parseProxyJump } from '../remote/ssh-config.js';

const nonEmpty = (what: string) => z.string(expecting(what)).min(1, expecting(what));

const intBetween = (min: number, max: number, what: string) =>
  z.number(expecting(what)).int(expecting(what)).min(min, expecting(what)).max(max, expecting(what));

const positiveInt = (what = 'a positive integer') =>
  z.number(expecting(what)).int(expecting(what)).positive(expecting(what));

const portNumber = intBetween(1, 65535, 'a port number (1-65535)');

/** A string; numbers and booleans (`zone: 1`, `ssd: true`) are taken as their text. */
const scalarString = (what = 'a string') =>
  z.union([z.string(), z.number(), z.boolean()], expecting(what)).transform((v) => String(v));

const stringMap = (what: string) => z.record(nonEmpty('a non-empty key'), scalarString(what), expecting('a mapping (key: value)'));

/** Node labels: string values, numbers and booleans coerced. */
export const labelsSchema = stringMap('a label value (a string)');

/** An IP address, or a DNS name for `address`. */
const hostAddress = z.string(expecting('an IP address or DNS name')).refine(
  (v) => isIP(v) !== 0 || /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*$/.test(v),
  expecting('an IP address or DNS name'),
);

const ipAddress = z.string(expecting('an IP address')).refine((v) => isIP(v) !== 0, expecting('an IP address'));

/** True for `10.0.0.0/8`, `fd00::/8`: an IP address and a prefix length that fits it. */
export function isCidr(v: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(v);
  if (!m) return false;
  const family = isIP(m[1]);
  const bits = Number(m[2]);
  return (family === 4 && bits <= 32) || (family === 6 && bits <= 128);
}

const ADVERTISE = 'private, public or a CIDR like 10.0.0.0/8';

const advertiseSchema = z.string(expecting(ADVERTISE)).transform((v, ctx): AdvertiseChoice => {
  if (v === 'private' || v === 'public') return { kind: v };
  if (isCidr(v)) return { kind: 'cidr', cidr: v };
  ctx.addIssue({ code: 'custom', message: expectedMessage(ADVERTISE, v), input: v });
  return z.NEVER;
});

/** SSH settings at any level; defaults are applied when levels are merged. */
export const sshSchema = z.strictObject(
  {
    user: nonEmpty('a user name').optional(),
    port: portNumber.optional(),
    key: nonEmpty('the path of a private key file').optional(),
    connectTimeout: positiveInt('a positive number of seconds').optional(),
    become: z.enum(['sudo', 'none'], expecting('"sudo" or "none"')).optional(),
    jump: z
      .union(
        [
          z.string().transform((v, ctx) => {
            try {
              return parseProxyJump(v);
            } catch (err) {
              ctx.addIssue({ code: 'custom', message: `expected [user@]host[:port][,...] (OpenSSH ProxyJump): ${(err as Error).message}`, input: v });
              return z.NEVER;
            }
          }),
          z.array(
            z.strictObject(
              {
                host: nonEmpty('a bastion host name or address'),
                user: nonEmpty('a user name').optional(),
                port: portNumber.optional(),
                key: nonEmpty('the path of a private key file').optional(),
              },
              expecting('a bastion (a mapping with host and optional user, port, key)'),
            ),
            expecting('a list of bastions'),
          ),
        ],
        expecting('bastions: "[user@]host[:port],..." (OpenSSH ProxyJump) or a list of {host, user, port, key}'),
      )
      .optional(),
    config: z
      .union([nonEmpty('the path of an OpenSSH client config'), z.literal(false)], expecting('the path of an OpenSSH client config, or false'))
      .optional(),
  },
  expecting('a mapping of ssh settings (user, port, key, connectTimeout, become, jump, config)'),
);

const optionsSchema = z.record(z.string(), z.unknown(), expecting('a mapping of provider options'));

const hostSchema = z.strictObject(
  {
    name: nonEmpty('a host name'),
    address: hostAddress.optional(),
    privateAddress: ipAddress.optional(),
    labels: labelsSchema.optional(),
    ssh: sshSchema.optional(),
    options: optionsSchema.optional(),
  },
  expecting('a host (a mapping with at least a name)'),
);

const groupSchema = z.strictObject(
  {
    role: z.enum(['manager', 'worker'], expecting('"manager" or "worker"')),
    count: positiveInt().optional(),
    name: nonEmpty('a host name or a name range like web-[1:3]').optional(),
    provider: nonEmpty('a provider name').optional(),
    labels: labelsSchema.optional(),
    ssh: sshSchema.optional(),
    options: optionsSchema.optional(),
    hosts: z.array(hostSchema, expecting('a list of hosts')).min(1, expecting('a list of at least one host')).optional(),
  },
  expecting('a group (a mapping with role and count, name or hosts)'),
);

/** Most hosts one inventory may have unless `swarm.maxHosts` says otherwise (far above Swarm3k's 4,700 nodes). */
export const MAX_HOSTS_DEFAULT = 100_000;
/** What `swarm.maxHosts` may be raised to: a bound on every loop over hosts (expansion, validation, planning). */
export const MAX_HOSTS_CEILING = 1_000_000;

const swarmSchema = z
  .strictObject(
    {
      advertise: advertiseSchema.default({ kind: 'private' }),
      joinConcurrency: intBetween(1, 1000, 'a whole number from 1 to 1000').default(12),
      maxHosts: intBetween(1, MAX_HOSTS_CEILING, `a whole number from 1 to ${MAX_HOSTS_CEILING}`).default(MAX_HOSTS_DEFAULT),
      bootstrapConcurrency: intBetween(1, 1000, 'a whole number from 1 to 1000').default(32),
      joinPacing: z.enum(['adaptive', 'fixed'], expecting('"adaptive" or "fixed"')).default('adaptive'),
      install: z.enum(['auto', 'packages', 'bundle'], expecting('"auto", "packages" or "bundle"')).default('auto'),
      bundle: nonEmpty('the path of an engine bundle (.tar.gz of bin/dockerd, bin/containerd, ...)').optional(),
      packages: z
        .strictObject(
          {
            from: z.enum(['distribution', 'docker'], expecting('"distribution" (docker.io) or "docker" (docker-ce from Docker\'s repository)')).default('distribution'),
            mirror: z
              .string(expecting('an http or https URL'))
              .regex(/^https?:\/\/[^\s'"]+$/, expecting('an http or https URL like http://mirror.example.org/debian'))
              .optional(),
            suite: z.string(expecting('an apt suite')).regex(/^[A-Za-z0-9./_-]+$/, expecting('an apt suite like bookworm, or ./ for a flat repository')).optional(),
            components: z.array(z.string().regex(/^[A-Za-z0-9_-]+$/, expecting('an apt component like main')), expecting('a list of apt components')).optional(),
            key: nonEmpty('the path of an ASCII-armoured signing key').optional(),
            trusted: z.boolean(expecting('true or false')).default(false),
          },
          expecting('a mapping of package settings (from, mirror, suite, components, key, trusted)'),
        )
        .optional(),
      firewall: z.boolean(expecting('true or false')).default(true),
      drainManagers: z.boolean(expecting('true or false')).default(false),
      ingress: z.boolean(expecting('true or false')).default(true),
      daemon: z.record(z.string(), z.unknown(), expecting('a mapping of daemon.json keys')).default(() => ({})),
      autolock: z.boolean(expecting('true or false')).default(false),
      profile: z.enum(['default', 'large'], expecting('"default" or "large"')).default('default'),
      raft: z
        .strictObject(
          {
            snapshotInterval: positiveInt('a positive number of log entries').optional(),
            keepOldSnapshots: intBetween(0, 1000, 'a whole number from 0 to 1000').optional(),
            logEntriesForSlowFollowers: intBetween(0, 10_000_000, 'a whole number of log entries').optional(),
            electionTick: intBetween(2, 1000, 'a whole number of ticks from 2 to 1000').optional(),
            heartbeatTick: intBetween(1, 1000, 'a whole number of ticks from 1 to 1000').optional(),
          },
          expecting('a mapping of raft settings (snapshotInterval, keepOldSnapshots, logEntriesForSlowFollowers, electionTick, heartbeatTick)'),
        )
        .optional(),
      dispatcher: z
        .strictObject(
          { heartbeatPeriod: z.number(expecting('a number of seconds')).positive(expecting('a positive number of seconds')).optional() },
          expecting('a mapping with heartbeatPeriod (seconds)'),
        )
        .optional(),
      certExpiryHours: intBetween(1, 24 * 365 * 10, 'a whole number of hours (at least 1)').optional(),
      taskHistoryLimit: intBetween(0, 1000, 'a whole number from 0 to 1000').optional(),
    },
    expecting('a mapping of swarm settings'),
  )
  .prefault({});

const imageSchema = z.union(
  [
    nonEmpty('an image file').transform((file) => ({ file, import: false as boolean, tag: undefined as string | undefined })),
    z.strictObject({
      file: nonEmpty('the path of an image tarball'),
      import: z.boolean(expecting('true or false')).default(false),
      tag: z
        .string(expecting('an image tag like myorg/base:1'))
        .regex(/^[^\s]+$/, expecting('an image tag like myorg/base:1'))
        .optional(),
    }),
  ],
  expecting('an image file, or a mapping with file, import and tag'),
);

/** A command or args: a list of words, or one string split like a shell would (without running one). */
const wordsSchema = z.union(
  [
    z.string().transform((v, ctx) => {
      try {
        return splitShellWords(v);
      } catch (err) {
        if (!(err instanceof ShellWordsError)) throw err;
        ctx.addIssue({ code: 'custom', message: err.message, input: v });
        return z.NEVER;
      }
    }),
    z.array(scalarString('a string')),
  ],
  expecting('a string or a list of strings'),
);

/** Environment: a mapping, or a list of "KEY=value". */
const envSchema = z.union(
  [
    stringMap('an environment value (a string)'),
    z.array(
      z.string(expecting('"KEY=value"')).transform((v, ctx) => {
        const eq = v.indexOf('=');
        if (eq <= 0) {
          ctx.addIssue({ code: 'custom', message: expectedMessage('"KEY=value"', v), input: v });
          return z.NEVER;
        }
        return [v.slice(0, eq), v.slice(eq + 1)] as const;
      }),
    ).transform((pairs) => Object.fromEntries(pairs) as Record<string, string>),
  ],
  expecting('a mapping or a list of "KEY=value"'),
);

const SHORT_PORT = '"[published:]target[/udp]" like "8080:80"';

const portSchema = z.union(
  [
    z.string().transform((v, ctx): PublishedPort => {
      const m = /^(?:(\d+):)?(\d+)(?:\/(tcp|udp))?$/.exec(v.trim());
      const published = m?.[1] === undefined ? 0 : Number(m[1]);
      const target = Number(m?.[2]);
      if (!m || target < 1 || target > 65535 || (m[1] !== undefined && (published < 1 || published > 65535))) {
        const range = m ? ' with ports from 1 to 65535' : '';
        ctx.addIssue({ code: 'custom', message: expectedMessage(`${SHORT_PORT}${range}`, v), input: v });
        return z.NEVER;
      }
      return { published, target, protocol: (m[3] ?? 'tcp') as 'tcp' | 'udp', mode: 'ingress' };
    }),
    portNumber.transform((target): PublishedPort => ({ published: 0, target, protocol: 'tcp', mode: 'ingress' })),
    z
      .strictObject({
        published: portNumber.optional(),
        target: portNumber,
        protocol: z.enum(['tcp', 'udp'], expecting('"tcp" or "udp"')).default('tcp'),
        mode: z.enum(['ingress', 'host'], expecting('"ingress" or "host"')).default('ingress'),
      })
      .transform((p): PublishedPort => ({ published: p.published ?? 0, target: p.target, protocol: p.protocol, mode: p.mode })),
  ],
  expecting(`${SHORT_PORT} or a mapping with published, target, protocol, mode`),
);

const CONSTRAINT = 'a placement constraint like "node.role == worker"';

const serviceSchema = z.strictObject(
  {
    name: z
      .string(expecting('a service name'))
      .regex(/^[a-z0-9][a-z0-9_.-]*$/, expecting('a service name: lowercase letters, digits, "_", "." and "-"'))
      .max(63, expecting('a service name of at most 63 characters')),
    image: nonEmpty('an image reference like alpine:3.20'),
    mode: z.enum(['replicated', 'global'], expecting('"replicated" or "global"')).optional(),
    replicas: intBetween(0, 1_000_000, 'a whole number of replicas (0 or more)').optional(),
    command: wordsSchema.optional(),
    args: wordsSchema.optional(),
    env: envSchema.optional(),
    ports: z.array(portSchema, expecting('a list of ports')).optional(),
    constraints: z
      .array(z.string(expecting(CONSTRAINT)).regex(/^\s*[\w.-]+\s*(==|!=)\s*\S.*$/, expecting(CONSTRAINT)), expecting('a list of constraints'))
      .optional(),
    labels: labelsSchema.optional(),
  },
  expecting('a service (a mapping with at least name and image)'),
);

/** A compose stack: a name and one or more compose files (later files override earlier ones, as with -c). */
const stackSchema = z.strictObject(
  {
    name: z
      .string(expecting('a stack name'))
      .regex(/^[a-z0-9][a-z0-9_-]*$/, expecting('a stack name: lowercase letters, digits, "_" and "-"'))
      .max(40, expecting('a stack name of at most 40 characters')),
    compose: z.union(
      [nonEmpty('the path of a compose file').transform((f) => [f]), z.array(nonEmpty('the path of a compose file')).min(1)],
      expecting('a compose file path or a list of them'),
    ),
    env: stringMap('a variable value (a string)').optional(),
  },
  expecting('a stack (a mapping with name and compose)'),
);

/** The whole inventory file. */
export const inventorySchema = z.strictObject(
  {
    cluster: z
      .string(expecting('a cluster name'))
      .regex(/^[a-z0-9][a-z0-9-]*$/, expecting('a cluster name: lowercase letters, digits and "-"'))
      .max(32, expecting('a cluster name of at most 32 characters')),
    provider: nonEmpty('a provider name').optional(),
    providers: z.record(z.string(), z.unknown(), expecting('a mapping of provider settings by provider name')).optional(),
    ssh: sshSchema.optional(),
    swarm: swarmSchema,
    groups: z.record(z.string(), groupSchema, expecting('a mapping of groups by name')),
    images: z.array(imageSchema, expecting('a list of images')).optional(),
    workloads: z
      .strictObject(
        {
          services: z.array(serviceSchema, expecting('a list of services')).optional(),
          stacks: z.array(stackSchema, expecting('a list of stacks')).optional(),
        },
        expecting('a mapping with services and stacks'),
      )
      .optional(),
  },
  expecting('a mapping with at least cluster and groups'),
);

/** The inventory file as validated by the schema, before groups are expanded. */
export type InventoryFile = z.output<typeof inventorySchema>;
export type GroupEntry = z.output<typeof groupSchema>;
export type HostEntry = z.output<typeof hostSchema>;
export type SshEntry = z.output<typeof sshSchema>;
export type ServiceEntry = z.output<typeof serviceSchema>;
export type ImageEntry = z.output<typeof imageSchema>;
export type StackEntry = z.output<typeof stackSchema>;
