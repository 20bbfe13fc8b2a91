/**
 * The Compose file format 3.x as `docker stack deploy` reads it, as zod schemas. Keys outside the format are errors
 * (with a "did you mean"); keys of the format that swarm ignores are accepted here and reported as warnings by the
 * loader. Values may be strings produced by interpolation where numbers or booleans are expected (`replicas: ${N}`).
 */
import { z } from 'zod';
import { expecting } from '../../inventory/zod-issues.js';
import { parseBytes, parseCpus, parseDuration } from './units.js';

/** Top-level keys other than `x-` extensions. */
export const TOP_LEVEL_KEYS = ['version', 'name', 'services', 'networks', 'volumes', 'secrets', 'configs'] as const;

/** Service keys the docker CLI warns about and swarm ignores ("Ignoring unsupported options: ..."). */
export const UNSUPPORTED_SERVICE_KEYS = [
  'build',
  'cgroupns_mode',
  'cgroup_parent',
  'devices',
  'domainname',
  'external_links',
  'ipc',
  'links',
  'mac_address',
  'network_mode',
  'pid',
  'privileged',
  'restart',
  'security_opt',
  'shm_size',
  'userns_mode',
] as const;

/** Service keys the docker CLI calls deprecated, with its reasons. */
export const DEPRECATED_SERVICE_KEYS: Record<string, string> = {
  container_name: 'Setting the container name is not supported.',
  expose: "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
};

/** Service keys of the format that swarmform accepts but does not convert (said in a warning). */
export const NOT_CONVERTED_SERVICE_KEYS = ['credential_spec'] as const;

/** Service keys swarm has no use for and the docker CLI ignores without a word (start order is not a swarm concept). */
export const SILENT_SERVICE_KEYS = ['depends_on'] as const;

const intLike = (what: string, min = 0) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
    z.number(expecting(what)).int(expecting(what)).min(min, expecting(what)),
  );
const numberLike = (what: string) =>
  z.preprocess((v) => (typeof v === 'string' && /^\s*-?\d*\.?\d+\s*$/.test(v) ? Number(v) : v), z.number(expecting(what)));
const boolLike = (what = 'true or false') =>
  z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean(expecting(what)));
const str = (what: string) => z.string(expecting(what));
const nonEmpty = (what: string) => z.string(expecting(what)).min(1, expecting(what));
const duration = z
  .string(expecting('a duration such as 10s, 1m30s or 500ms'))
  .refine((s) => parseDuration(s) !== undefined, expecting('a duration such as 10s, 1m30s or 500ms'));
const bytes = z
  .union([z.string(), z.number()], expecting('a size such as 512M, 1G or a number of bytes'))
  .refine((v) => parseBytes(v) !== undefined, expecting('a size such as 512M, 1G or a number of bytes'));
const cpus = z
  .union([z.string(), z.number()], expecting('a number of CPUs such as 0.5 or "2"'))
  .refine((v) => parseCpus(v) !== undefined, expecting('a number of CPUs such as 0.5 or "2"'));
const scalar = z.union([z.string(), z.number(), z.boolean()]);
const stringOrList = (what: string) => z.union([z.string(), z.array(z.string(expecting(what)))], expecting(`${what}, or a list of them`));
/** `{KEY: value}` or `["KEY=value"]`; values may be empty (null). */
const mapOrList = (what: string) =>
  z.union([z.record(z.string(), z.union([scalar, z.null()], expecting(`a ${what} value (a string, number or boolean)`))), z.array(z.string(expecting(`"KEY=value"`)))], expecting(`a mapping of ${what}s or a list of "KEY=value"`));
const labels = mapOrList('label');
const external = z.union([boolLike(), z.strictObject({ name: str('a name').optional() })], expecting('true, false or {name: ...}'));

const updateConfig = z.strictObject(
  {
    parallelism: intLike('a number of tasks (0 = all at once)').optional(),
    delay: duration.optional(),
    failure_action: z.enum(['continue', 'pause', 'rollback'], expecting('continue, pause or rollback')).optional(),
    monitor: duration.optional(),
    max_failure_ratio: numberLike('a ratio between 0 and 1').optional(),
    order: z.enum(['stop-first', 'start-first'], expecting('stop-first or start-first')).optional(),
  },
  expecting('a mapping (parallelism, delay, failure_action, monitor, max_failure_ratio, order)'),
);

const resourceSet = (reservation: boolean) =>
  z.strictObject(
    {
      cpus: cpus.optional(),
      memory: bytes.optional(),
      ...(reservation
        ? {
            generic_resources: z
              .array(
                z.strictObject({
                  discrete_resource_spec: z.strictObject({ kind: nonEmpty('a resource kind'), value: intLike('a count') }).optional(),
                }),
              )
              .optional(),
            devices: z.array(z.unknown()).optional(),
          }
        : { pids: intLike('a number of processes').optional() }),
    },
    expecting('a mapping (cpus, memory, ...)'),
  );

const deploy = z.strictObject(
  {
    mode: z.enum(['replicated', 'global', 'replicated-job', 'global-job'], expecting('replicated or global')).optional(),
    replicas: intLike('a number of replicas').optional(),
    labels: labels.optional(),
    endpoint_mode: z.enum(['vip', 'dnsrr'], expecting('vip or dnsrr')).optional(),
    placement: z
      .strictObject(
        {
          constraints: z.array(nonEmpty('a constraint such as node.role == manager'), expecting('a list of constraints')).optional(),
          preferences: z
            .array(z.strictObject({ spread: nonEmpty('a label such as node.labels.zone') }, expecting('a mapping {spread: LABEL}')), expecting('a list of preferences'))
            .optional(),
          max_replicas_per_node: intLike('a number of replicas per node').optional(),
        },
        expecting('a mapping (constraints, preferences, max_replicas_per_node)'),
      )
      .optional(),
    resources: z.strictObject({ limits: resourceSet(false).optional(), reservations: resourceSet(true).optional() }, expecting('a mapping (limits, reservations)')).optional(),
    restart_policy: z
      .strictObject(
        {
          condition: z.enum(['none', 'on-failure', 'any'], expecting('none, on-failure or any')).optional(),
          delay: duration.optional(),
          max_attempts: intLike('a number of attempts').optional(),
          window: duration.optional(),
        },
        expecting('a mapping (condition, delay, max_attempts, window)'),
      )
      .optional(),
    update_config: updateConfig.optional(),
    rollback_config: updateConfig.optional(),
  },
  expecting('a mapping (mode, replicas, placement, resources, ...)'),
);

const portLong = z.strictObject(
  {
    target: intLike('a port number (1-65535)', 1),
    published: z.union([intLike('a port number (1-65535)', 1), z.string()]).optional(),
    protocol: z.enum(['tcp', 'udp', 'sctp'], expecting('tcp, udp or sctp')).optional(),
    mode: z.enum(['ingress', 'host'], expecting('ingress or host')).optional(),
    host_ip: str('an address').optional(),
    name: str('a name').optional(),
    app_protocol: str('a protocol').optional(),
  },
  expecting('a port mapping (target, published, protocol, mode)'),
);

const volumeLong = z.strictObject(
  {
    type: z.enum(['volume', 'bind', 'tmpfs', 'npipe'], expecting('volume, bind or tmpfs')),
    source: str('a volume name or host path').optional(),
    target: nonEmpty('a path in the container'),
    read_only: boolLike().optional(),
    consistency: str('a consistency').optional(),
    bind: z.strictObject({ propagation: str('a propagation mode').optional(), create_host_path: boolLike().optional() }).optional(),
    volume: z.strictObject({ nocopy: boolLike().optional() }).optional(),
    tmpfs: z.strictObject({ size: bytes.optional(), mode: intLike('a file mode').optional() }).optional(),
  },
  expecting('a mount (type, source, target, ...)'),
);

const fileRef = z.union(
  [
    z.string(),
    z.strictObject(
      {
        source: nonEmpty('the name of a top-level secret or config'),
        target: str('a file name or path').optional(),
        uid: z.union([z.string(), z.number()]).transform(String).optional(),
        gid: z.union([z.string(), z.number()]).transform(String).optional(),
        mode: intLike('a file mode such as 0440').optional(),
      },
      expecting('a reference (source, target, uid, gid, mode)'),
    ),
  ],
  expecting('a name, or a mapping with source, target, uid, gid and mode'),
);

const healthcheck = z.strictObject(
  {
    test: stringOrList('a command').optional(),
    interval: duration.optional(),
    timeout: duration.optional(),
    retries: intLike('a number of retries').optional(),
    start_period: duration.optional(),
    start_interval: duration.optional(),
    disable: boolLike().optional(),
  },
  expecting('a mapping (test, interval, timeout, retries, start_period, disable)'),
);

const ignored = z.unknown().optional();

export const serviceSchema = z.strictObject(
  {
    // Required after merging (an override file may leave it out); checked by the loader.
    image: nonEmpty('an image reference').optional(),
    command: stringOrList('a word').optional(),
    entrypoint: stringOrList('a word').optional(),
    environment: mapOrList('variable').optional(),
    env_file: stringOrList('a file path').optional(),
    labels: labels.optional(),
    ports: z
      .array(z.union([intLike('a port'), z.string(), portLong], expecting('a port ("8080:80", "80/udp") or a mapping with target, published, protocol, mode')), expecting('a list of ports'))
      .optional(),
    healthcheck: healthcheck.optional(),
    stop_grace_period: duration.optional(),
    stop_signal: str('a signal name').optional(),
    deploy: deploy.optional(),
    networks: z
      .union(
        [
          z.array(nonEmpty('a network name')),
          z.record(
            z.string(),
            z.union([
              z.null(),
              z.strictObject({ aliases: z.array(str('an alias')).optional(), ipv4_address: str('an address').optional(), ipv6_address: str('an address').optional() }),
            ]),
          ),
        ],
        expecting('a list of network names or a mapping of networks'),
      )
      .optional(),
    volumes: z.array(z.union([z.string(), volumeLong], expecting('a volume ("name:/path", "./dir:/path:ro") or a mapping with type, source, target')), expecting('a list of volumes')).optional(),
    secrets: z.array(fileRef, expecting('a list of secrets')).optional(),
    configs: z.array(fileRef, expecting('a list of configs')).optional(),
    hostname: str('a host name').optional(),
    user: str('a user').optional(),
    working_dir: str('a path').optional(),
    tty: boolLike().optional(),
    stdin_open: boolLike().optional(),
    read_only: boolLike().optional(),
    init: boolLike().optional(),
    extra_hosts: mapOrList('host').optional(),
    dns: stringOrList('an address').optional(),
    dns_search: stringOrList('a domain').optional(),
    cap_add: z.array(str('a capability')).optional(),
    cap_drop: z.array(str('a capability')).optional(),
    sysctls: mapOrList('sysctl').optional(),
    ulimits: z
      .record(z.string(), z.union([intLike('a limit'), z.strictObject({ soft: intLike('a limit'), hard: intLike('a limit') })], expecting('a number or {soft, hard}')))
      .optional(),
    tmpfs: stringOrList('a path').optional(),
    logging: z.strictObject({ driver: str('a log driver').optional(), options: z.record(z.string(), z.union([z.string(), z.number()]).transform(String)).optional() }).optional(),
    // Accepted by the format, not used by swarm (warned about by the loader).
    dns_opt: z.array(str('a resolver option')).optional(),
    isolation: str('an isolation technology').optional(),
    ...Object.fromEntries([...UNSUPPORTED_SERVICE_KEYS, ...Object.keys(DEPRECATED_SERVICE_KEYS), ...NOT_CONVERTED_SERVICE_KEYS, ...SILENT_SERVICE_KEYS].map((k) => [k, ignored])),
  },
  expecting('a service (a mapping with at least image)'),
);

const networkSchema = z.strictObject(
  {
    driver: str('a network driver').optional(),
    driver_opts: z.record(z.string(), z.union([z.string(), z.number()]).transform(String)).optional(),
    ipam: z
      .strictObject({
        driver: str('an IPAM driver').optional(),
        config: z.array(z.strictObject({ subnet: str('a subnet such as 10.0.9.0/24').optional(), gateway: str('an address').optional(), ip_range: str('a range').optional(), aux_addresses: z.record(z.string(), z.string()).optional() })).optional(),
        options: z.record(z.string(), z.string()).optional(),
      })
      .optional(),
    external: external.optional(),
    internal: boolLike().optional(),
    attachable: boolLike().optional(),
    labels: labels.optional(),
    name: nonEmpty('a network name').optional(),
    enable_ipv6: boolLike().optional(),
  },
  expecting('a network (driver, driver_opts, ipam, external, internal, attachable, labels, name)'),
);

const volumeSchema = z.strictObject(
  {
    driver: str('a volume driver').optional(),
    driver_opts: z.record(z.string(), z.union([z.string(), z.number()]).transform(String)).optional(),
    external: external.optional(),
    labels: labels.optional(),
    name: nonEmpty('a volume name').optional(),
  },
  expecting('a volume (driver, driver_opts, external, labels, name)'),
);

const fileObjectSchema = (kind: string) =>
  z.strictObject(
    {
      file: nonEmpty('a file path').optional(),
      external: external.optional(),
      labels: labels.optional(),
      name: nonEmpty(`a ${kind} name`).optional(),
      driver: str('a driver').optional(),
      driver_opts: z.record(z.string(), z.string()).optional(),
      template_driver: str('a template driver').optional(),
      environment: str('a variable name').optional(),
    },
    expecting(`a ${kind} (file, external, labels, name)`),
  );

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const named = <T extends z.ZodType>(what: string, value: T) =>
  z.record(z.string().regex(NAME_RE, { error: `invalid ${what} name: use letters, digits, "_", "." and "-"` }), z.preprocess((v) => v ?? {}, value), expecting(`a mapping of ${what}s by name`));

export const composeSchema = z.strictObject(
  {
    version: z.union([z.string(), z.number()]).transform(String).optional(),
    name: str('a project name').optional(),
    services: named('service', serviceSchema).optional(),
    networks: named('network', networkSchema).optional(),
    volumes: named('volume', volumeSchema).optional(),
    secrets: named('secret', fileObjectSchema('secret')).optional(),
    configs: named('config', fileObjectSchema('config')).optional(),
  },
  expecting('a compose file (a mapping with services, networks, volumes, secrets, configs)'),
);

export type ComposeFile = z.output<typeof composeSchema>;
export type ComposeService = z.output<typeof serviceSchema>;
export type ComposeNetwork = z.output<typeof networkSchema>;
export type ComposeVolume = z.output<typeof volumeSchema>;
export type ComposeFileObject = z.output<ReturnType<typeof fileObjectSchema>>;
