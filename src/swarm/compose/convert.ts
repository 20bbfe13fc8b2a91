/**
 * Converts a loaded compose project into Engine API objects the way the docker CLI's cli/compose/convert does:
 * names scoped `STACK_name`, the `com.docker.stack.namespace` label on services, networks, secrets, configs and
 * volumes, the `com.docker.stack.image` label, network aliases of the short service name, a `STACK_default`
 * network for services that name none, and external objects referenced but never created.
 */
import { createHash } from 'node:crypto';
import { SPEC_HASH_LABEL } from '../service-spec.js';
import type { ComposeProject, FileRef, MountConfig, ServiceConfig, UpdatePolicy } from './model.js';
import { parseBytes, parseCpus, parseDuration } from './units.js';

export const LABEL_NAMESPACE = 'com.docker.stack.namespace';
export const LABEL_IMAGE = 'com.docker.stack.image';
export { SPEC_HASH_LABEL };

/** A network the stack creates when missing (existing ones are left as they are, as the docker CLI does). */
export interface NetworkPlan {
  name: string;
  /** Body of POST /networks/create. */
  spec: Record<string, unknown>;
}

/** A secret or config the stack creates; `file` is read at deploy time and its content never logged. */
export interface FileObjectPlan {
  /** Engine name (`STACK_key`, or the file's `name:`). */
  name: string;
  key: string;
  file: string;
  labels: Record<string, string>;
  driver?: string;
  templateDriver?: string;
}

export interface ServicePlan {
  /** Engine name: `STACK_service`. */
  name: string;
  /** Name in the compose file. */
  short: string;
  /** ServiceSpec with SecretID/ConfigID left empty (filled in when the objects exist), and the hash label set. */
  spec: Record<string, unknown>;
  hash: string;
}

export interface StackPlan {
  namespace: string;
  networks: NetworkPlan[];
  /** Engine names of external networks the services use: they must exist (swarm scope). */
  externalNetworks: string[];
  secrets: FileObjectPlan[];
  configs: FileObjectPlan[];
  externalSecrets: string[];
  externalConfigs: string[];
  services: ServicePlan[];
}

const scope = (ns: string, name: string) => `${ns}_${name}`;
const withNs = (ns: string, labels: Record<string, string>) => ({ ...labels, [LABEL_NAMESPACE]: ns });

/** The whole stack as Engine API objects; pure (reads no files, talks to no engine). */
export function convertStack(namespace: string, project: ComposeProject): StackPlan {
  const used = new Set<string>();
  for (const s of Object.values(project.services)) for (const n of Object.keys(s.networks ?? { default: {} })) used.add(n);
  const networks: NetworkPlan[] = [];
  const externalNetworks: string[] = [];
  for (const key of [...used].sort()) {
    const n = project.networks[key] ?? { labels: {} };
    if (n.external) {
      externalNetworks.push(n.external);
      continue;
    }
    const ipam = n.ipam && (n.ipam.driver || n.ipam.config?.length)
      ? { Driver: n.ipam.driver, Config: (n.ipam.config ?? []).map((c) => ({ Subnet: c.subnet, Gateway: c.gateway, IPRange: c.ip_range, AuxiliaryAddresses: c.aux_addresses })), Options: n.ipam.options }
      : undefined;
    networks.push({
      name: n.name ?? scope(namespace, key),
      spec: clean({
        Driver: n.driver || 'overlay',
        Options: n.driver_opts,
        Internal: n.internal,
        Attachable: n.attachable,
        Labels: withNs(namespace, n.labels),
        IPAM: ipam,
        CheckDuplicate: true,
      }),
    });
  }

  const objects = (kind: 'secrets' | 'configs') => {
    const wanted = new Set<string>();
    for (const s of Object.values(project.services)) for (const r of s[kind]) wanted.add(r.source);
    const create: FileObjectPlan[] = [];
    const external: string[] = [];
    for (const key of [...wanted].sort()) {
      const o = project[kind][key]!;
      if (o.external) external.push(o.external);
      else create.push({ name: o.name ?? scope(namespace, key), key, file: o.file ?? '', labels: withNs(namespace, o.labels), driver: o.driver, templateDriver: o.template_driver });
    }
    return { create, external };
  };
  const secrets = objects('secrets');
  const configs = objects('configs');

  const services = Object.values(project.services)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((s) => convertService(namespace, s, project));
  return { namespace, networks, externalNetworks, secrets: secrets.create, configs: configs.create, externalSecrets: secrets.external, externalConfigs: configs.external, services };
}

function convertService(ns: string, s: ServiceConfig, project: ComposeProject): ServicePlan {
  const name = scope(ns, s.name);
  const d = s.deploy;
  const nets = Object.entries(s.networks ?? { default: { aliases: [] } })
    .map(([key, cfg]) => {
      const n = project.networks[key];
      return { Target: n?.external ?? n?.name ?? scope(ns, key), Aliases: [...cfg.aliases, s.name] };
    })
    .sort((a, b) => a.Target.localeCompare(b.Target));
  const ref = (kind: 'secrets' | 'configs', r: FileRef) => {
    const o = project[kind][r.source]!;
    const objName = o.external ?? o.name ?? scope(ns, r.source);
    const file = { Name: r.target ?? r.source, UID: r.uid ?? '0', GID: r.gid ?? '0', Mode: r.mode ?? 0o444 };
    return kind === 'secrets' ? { File: file, SecretID: '', SecretName: objName } : { File: file, ConfigID: '', ConfigName: objName };
  };
  const byName = (a: { SecretName?: string; ConfigName?: string }, b: { SecretName?: string; ConfigName?: string }) =>
    (a.SecretName ?? a.ConfigName ?? '').localeCompare(b.SecretName ?? b.ConfigName ?? '');
  const env = Object.entries(s.environment)
    .map(([k, v]) => (v === null ? k : `${k}=${v}`))
    .sort();
  const mode = d.mode ?? 'replicated';
  const body = clean({
    Name: name,
    Labels: { ...withNs(ns, d.labels), [LABEL_IMAGE]: s.image },
    TaskTemplate: {
      ContainerSpec: {
        Image: s.image,
        Command: s.entrypoint,
        Args: s.command,
        Hostname: s.hostname,
        Hosts: Object.keys(s.extra_hosts).length ? Object.entries(s.extra_hosts).map(([h, ip]) => `${ip} ${h}`) : undefined,
        DNSConfig: s.dns || s.dns_search || s.dns_opt ? { Nameservers: s.dns, Search: s.dns_search, Options: s.dns_opt } : undefined,
        Healthcheck: healthcheck(s.healthcheck),
        Env: env.length ? env : undefined,
        Labels: withNs(ns, s.labels),
        Dir: s.working_dir,
        User: s.user,
        Mounts: s.volumes.length ? s.volumes.map((m) => mount(ns, m, project)) : undefined,
        StopGracePeriod: dur(s.stop_grace_period),
        StopSignal: s.stop_signal,
        TTY: s.tty,
        OpenStdin: s.stdin_open,
        Secrets: s.secrets.length ? s.secrets.map((r) => ref('secrets', r)).sort(byName) : undefined,
        Configs: s.configs.length ? s.configs.map((r) => ref('configs', r)).sort(byName) : undefined,
        ReadOnly: s.read_only,
        Init: s.init,
        Isolation: s.isolation,
        Sysctls: Object.keys(s.sysctls).length ? s.sysctls : undefined,
        CapabilityAdd: s.cap_add,
        CapabilityDrop: s.cap_drop,
        Ulimits: s.ulimits
          ? Object.entries(s.ulimits)
              .map(([n, v]) => (typeof v === 'number' ? { Name: n, Soft: v, Hard: v } : { Name: n, Soft: v.soft, Hard: v.hard }))
              .sort((a, b) => a.Name.localeCompare(b.Name))
          : undefined,
      },
      LogDriver: s.logging?.driver ? { Name: s.logging.driver, Options: s.logging.options } : undefined,
      Resources: resources(d.resources),
      RestartPolicy: restartPolicy(s.restart, d.restart_policy),
      Placement: {
        Constraints: d.placement?.constraints,
        Preferences: d.placement?.preferences?.map((p) => ({ Spread: { SpreadDescriptor: p.spread } })),
        MaxReplicas: d.placement?.max_replicas_per_node,
      },
      Networks: nets,
    },
    Mode:
      mode === 'global' ? { Global: {} } : mode === 'global-job' ? { GlobalJob: {} } : mode === 'replicated-job' ? { ReplicatedJob: { MaxConcurrent: d.replicas ?? 1, TotalCompletions: d.replicas ?? 1 } } : { Replicated: { Replicas: d.replicas ?? 1 } },
    UpdateConfig: updateConfig(d.update_config),
    RollbackConfig: updateConfig(d.rollback_config),
    EndpointSpec: {
      Mode: d.endpoint_mode ?? 'vip',
      Ports: [...s.ports]
        .sort((a, b) => a.published - b.published)
        .map((p) => ({ Protocol: p.protocol, TargetPort: p.target, PublishedPort: p.published || undefined, PublishMode: p.mode })),
    },
  });
  const hash = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 16);
  (body.Labels as Record<string, string>)[SPEC_HASH_LABEL] = hash;
  return { name, short: s.name, spec: body, hash };
}

function mount(ns: string, m: MountConfig, project: ComposeProject): Record<string, unknown> {
  const base: Record<string, unknown> = { Type: m.type, Target: m.target, ReadOnly: m.readOnly || undefined, Consistency: m.consistency };
  if (m.type === 'bind') return { ...base, Source: m.source, BindOptions: m.propagation ? { Propagation: m.propagation } : undefined };
  if (m.type === 'tmpfs') return { ...base, TmpfsOptions: m.tmpfsSize !== undefined || m.tmpfsMode !== undefined ? { SizeBytes: m.tmpfsSize, Mode: m.tmpfsMode } : undefined };
  if (m.type !== 'volume' || !m.source) return base;
  const v = project.volumes[m.source]!;
  if (v.external) return { ...base, Source: v.external, VolumeOptions: m.nocopy ? { NoCopy: true } : undefined };
  return {
    ...base,
    Source: v.name ?? scope(ns, m.source),
    VolumeOptions: {
      NoCopy: m.nocopy,
      Labels: withNs(ns, v.labels),
      DriverConfig: v.driver || v.driver_opts ? { Name: v.driver, Options: v.driver_opts } : undefined,
    },
  };
}

function healthcheck(h: ServiceConfig['healthcheck']): Record<string, unknown> | undefined {
  if (!h) return undefined;
  if (h.disable) return { Test: ['NONE'] };
  return { Test: h.test, Interval: dur(h.interval), Timeout: dur(h.timeout), Retries: h.retries, StartPeriod: dur(h.start_period), StartInterval: dur(h.start_interval) };
}

function resources(r: ServiceConfig['deploy']['resources']): Record<string, unknown> | undefined {
  if (!r) return undefined;
  const num = (v: string | number | undefined, f: (x: string | number) => number | undefined) => (v === undefined ? undefined : f(v));
  return {
    Limits: r.limits ? { NanoCPUs: num(r.limits.cpus, parseCpus), MemoryBytes: num(r.limits.memory, parseBytes), Pids: r.limits.pids } : undefined,
    Reservations: r.reservations
      ? {
          NanoCPUs: num(r.reservations.cpus, parseCpus),
          MemoryBytes: num(r.reservations.memory, parseBytes),
          GenericResources: r.reservations.generic_resources
            ?.filter((g) => g.discrete_resource_spec)
            .map((g) => ({ DiscreteResourceSpec: { Kind: g.discrete_resource_spec!.kind, Value: g.discrete_resource_spec!.value } })),
        }
      : undefined,
  };
}

/** As the docker CLI: deploy.restart_policy wins; else the service's `restart` (no -> engine default, always/unless-stopped -> any). */
function restartPolicy(restart: string | undefined, p: ServiceConfig['deploy']['restart_policy']): Record<string, unknown> | undefined {
  if (p) return { Condition: p.condition, Delay: dur(p.delay), MaxAttempts: p.max_attempts, Window: dur(p.window) };
  if (!restart || restart === 'no') return undefined;
  if (restart === 'always' || restart === 'unless-stopped') return { Condition: 'any' };
  const m = /^on-failure(?::(\d+))?$/.exec(restart);
  if (m) return { Condition: 'on-failure', MaxAttempts: Number(m[1] ?? 0) };
  return undefined;
}

function updateConfig(u: UpdatePolicy | undefined): Record<string, unknown> | undefined {
  if (!u) return undefined;
  return { Parallelism: u.parallelism ?? 1, Delay: dur(u.delay), FailureAction: u.failure_action, Monitor: dur(u.monitor), MaxFailureRatio: u.max_failure_ratio, Order: u.order };
}

function dur(s: string | undefined): number | undefined {
  return s === undefined ? undefined : parseDuration(s);
}

/** Drops undefined values and empty objects, so equal specs serialize (and hash) equally. */
function clean<T>(v: T): T {
  if (Array.isArray(v)) return v.map(clean) as T;
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      const c = clean(x);
      if (c && typeof c === 'object' && !Array.isArray(c) && Object.keys(c).length === 0 && !['Global', 'GlobalJob', 'Labels'].includes(k)) continue;
      out[k] = c;
    }
    return out as T;
  }
  return v;
}
