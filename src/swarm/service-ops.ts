/**
 * `service` verbs as the docker CLI has them, turned into Engine API specs and back into docker-like rows.
 * Everything here is pure (no engine calls), so flags, specs and rows are unit-tested without a cluster.
 */
import { UsageError } from '../base/errors.js';

/** Engine API types, as far as these commands read them. */
export interface EnginePort {
  Protocol?: string;
  TargetPort?: number;
  PublishedPort?: number;
  PublishMode?: string;
}

export interface EngineServiceSpec {
  Name?: string;
  Labels?: Record<string, string>;
  TaskTemplate?: {
    ContainerSpec?: { Image?: string; Command?: string[]; Args?: string[]; Env?: string[]; Labels?: Record<string, string>; [k: string]: unknown };
    Resources?: { Limits?: { NanoCPUs?: number; MemoryBytes?: number }; Reservations?: { NanoCPUs?: number; MemoryBytes?: number } };
    RestartPolicy?: { Condition?: string; Delay?: number; MaxAttempts?: number; Window?: number };
    Placement?: { Constraints?: string[]; [k: string]: unknown };
    Networks?: { Target: string; Aliases?: string[] }[];
    ForceUpdate?: number;
    [k: string]: unknown;
  };
  Mode?: { Replicated?: { Replicas?: number }; Global?: object; ReplicatedJob?: object; GlobalJob?: object };
  UpdateConfig?: UpdateConfig;
  RollbackConfig?: UpdateConfig;
  EndpointSpec?: { Mode?: string; Ports?: EnginePort[] };
  [k: string]: unknown;
}

export interface UpdateConfig {
  Parallelism?: number;
  Delay?: number;
  FailureAction?: string;
  Monitor?: number;
  MaxFailureRatio?: number;
  Order?: string;
}

export interface EngineService {
  ID: string;
  Version: { Index: number };
  CreatedAt?: string;
  UpdatedAt?: string;
  Spec: EngineServiceSpec;
  PreviousSpec?: EngineServiceSpec;
  Endpoint?: { Ports?: EnginePort[]; VirtualIPs?: { NetworkID: string; Addr: string }[] };
  UpdateStatus?: { State?: string; StartedAt?: string; CompletedAt?: string; Message?: string };
  ServiceStatus?: { RunningTasks?: number; DesiredTasks?: number };
}

export interface EngineTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  Slot?: number;
  CreatedAt?: string;
  DesiredState: string;
  Spec?: { ContainerSpec?: { Image?: string } };
  Status: { State: string; Err?: string; Message?: string; Timestamp?: string; PortStatus?: { Ports?: EnginePort[] } };
}

export interface EngineNodeLite {
  ID: string;
  Description?: { Hostname?: string };
  Spec?: { Labels?: Record<string, string> };
  Status?: { State?: string };
}

/** Flags shared by `service create` and `service update` for the update and rollback configs. */
export interface UpdateFlags {
  parallelism?: number;
  delay?: string;
  failureAction?: string;
  monitor?: string;
  maxFailureRatio?: number;
  order?: string;
}

/** Options `service create` and `service update` share, mapped onto the spec by one function (`applySpecFlags`). */
export interface SpecFlags {
  update: UpdateFlags;
  rollback: UpdateFlags;
  restartCondition?: string;
  limitCpu?: string;
  limitMemory?: string;
  reserveCpu?: string;
  reserveMemory?: string;
}

/** `service create` options, as the docker CLI names them. */
export interface CreateOptions extends SpecFlags {
  name?: string;
  image: string;
  command: string[];
  replicas?: number;
  mode: 'replicated' | 'global';
  publish: string[];
  env: string[];
  label: string[];
  containerLabel: string[];
  constraint: string[];
  network: string[];
  restartDelay?: string;
  restartMaxAttempts?: number;
  workdir?: string;
  user?: string;
}

/** `service update` options. */
export interface UpdateOptions extends SpecFlags {
  image?: string;
  replicas?: number;
  envAdd: string[];
  envRm: string[];
  labelAdd: string[];
  labelRm: string[];
  constraintAdd: string[];
  constraintRm: string[];
  publishAdd: string[];
  publishRm: string[];
  networkAdd: string[];
  networkRm: string[];
  force: boolean;
  /** Replaces the command (`--args` in docker replaces args; here the whole command). */
  command?: string[];
}

const NS_PER = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 } as const;

/** A Go duration (`10s`, `1m30s`, `500ms`, `0`) in nanoseconds, as the Engine API wants it. */
export function parseDuration(text: string, flag: string): number {
  const t = text.trim();
  if (t === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    total += Number(m[1]) * NS_PER[m[2] as keyof typeof NS_PER];
    matched = re.lastIndex;
  }
  if (!t || matched !== t.length) throw new UsageError(`${flag}: invalid duration "${text}" (expected e.g. 10s, 1m30s, 500ms)`);
  return Math.round(total);
}

/** Nanoseconds back to a Go-style duration (`1m30s`, `500ms`). */
export function formatDuration(ns: number | undefined): string {
  if (!ns) return '0s';
  if (ns < 1e9) return ns % 1e6 === 0 ? `${ns / 1e6}ms` : `${ns / 1e3}µs`;
  let s = ns / 1e9;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const sec = Number.isInteger(s) ? String(s) : s.toFixed(3).replace(/0+$/, '');
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${sec}s`;
}

/** `128M`, `1g`, `512k`, `1073741824`: bytes with docker's binary units. */
export function parseMemory(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${flag}: invalid size "${text}" (expected e.g. 128M, 1G)`);
  const power = ' kmgtp'.indexOf((m[2] || ' ').toLowerCase());
  return Math.round(Number(m[1]) * 1024 ** power);
}

/** `0.5`, `2`: CPUs in the Engine API's nano CPUs. */
export function parseCpus(text: string, flag: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !Number.isFinite(n)) throw new UsageError(`${flag}: invalid CPU count "${text}" (expected e.g. 0.5 or 2)`);
  return Math.round(n * 1e9);
}

/** `KEY=value` pairs (a bare `KEY` means an empty value for labels) into a mapping. */
export function parseKeyValues(items: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    const key = i < 0 ? item : item.slice(0, i);
    if (!key) throw new UsageError(`${flag}: invalid "${item}" (expected KEY=value)`);
    out[key] = i < 0 ? '' : item.slice(i + 1);
  }
  return out;
}

/**
 * A `--publish` value: short `[published:]target[/protocol]`, or the long form
 * `published=8080,target=80,protocol=tcp,mode=host` (a short part may be mixed in: `mode=host,8080:80`).
 */
export function parsePublish(text: string): Required<EnginePort> {
  const port: { Protocol: string; TargetPort?: number; PublishedPort: number; PublishMode: string } = { Protocol: 'tcp', PublishedPort: 0, PublishMode: 'ingress' };
  const bad = (why: string) => new UsageError(`--publish: invalid "${text}": ${why} (expected [published:]target[/tcp|udp] or mode=host,published=P,target=T)`);
  const num = (v: string, what: string) => {
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw bad(`${what} must be a port number 1..65535`);
    return Number(v);
  };
  const short = (part: string) => {
    const [ports, proto] = part.split('/');
    if (proto !== undefined) port.Protocol = proto;
    const pieces = ports!.split(':');
    if (pieces.length > 2) throw bad('too many ":"');
    if (pieces.length === 2) {
      if (pieces[0]) port.PublishedPort = num(pieces[0], 'published');
      port.TargetPort = num(pieces[1]!, 'target');
    } else port.TargetPort = num(pieces[0]!, 'target');
  };
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      short(part);
      continue;
    }
    const k = part.slice(0, eq).toLowerCase();
    const v = part.slice(eq + 1);
    if (k === 'published') port.PublishedPort = num(v, 'published');
    else if (k === 'target') port.TargetPort = num(v, 'target');
    else if (k === 'protocol') port.Protocol = v;
    else if (k === 'mode') port.PublishMode = v;
    else throw bad(`unknown field "${k}"`);
  }
  if (port.TargetPort === undefined) throw bad('no target port');
  if (!['tcp', 'udp', 'sctp'].includes(port.Protocol)) throw bad(`protocol must be tcp, udp or sctp`);
  if (!['ingress', 'host'].includes(port.PublishMode)) throw bad('mode must be ingress or host');
  return port as Required<EnginePort>;
}

function oneOf(value: string | undefined, allowed: string[], flag: string): string | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value)) throw new UsageError(`${flag}: invalid "${value}" (expected one of: ${allowed.join(', ')})`);
  return value;
}

/** Applies update/rollback config flags over an existing config. */
export function applyUpdateFlags(base: UpdateConfig | undefined, f: UpdateFlags, prefix: '--update' | '--rollback'): UpdateConfig | undefined {
  const touched = Object.values(f).some((v) => v !== undefined);
  if (!touched) return base;
  const out: UpdateConfig = { ...(base ?? { Parallelism: 1, FailureAction: 'pause', Order: 'stop-first' }) };
  if (f.parallelism !== undefined) {
    if (!Number.isInteger(f.parallelism) || f.parallelism < 0) throw new UsageError(`${prefix}-parallelism: expected a whole number >= 0 (0 = all at once)`);
    out.Parallelism = f.parallelism;
  }
  if (f.delay !== undefined) out.Delay = parseDuration(f.delay, `${prefix}-delay`);
  if (f.monitor !== undefined) out.Monitor = parseDuration(f.monitor, `${prefix}-monitor`);
  const actions = prefix === '--update' ? ['pause', 'continue', 'rollback'] : ['pause', 'continue'];
  if (f.failureAction !== undefined) out.FailureAction = oneOf(f.failureAction, actions, `${prefix}-failure-action`);
  if (f.order !== undefined) out.Order = oneOf(f.order, ['stop-first', 'start-first'], `${prefix}-order`);
  if (f.maxFailureRatio !== undefined) {
    if (!(f.maxFailureRatio >= 0 && f.maxFailureRatio <= 1)) throw new UsageError(`${prefix}-max-failure-ratio: expected a number from 0 to 1`);
    out.MaxFailureRatio = f.maxFailureRatio;
  }
  return out;
}

function resources(o: { limitCpu?: string; limitMemory?: string; reserveCpu?: string; reserveMemory?: string }, base: NonNullable<EngineServiceSpec['TaskTemplate']>['Resources']) {
  if (![o.limitCpu, o.limitMemory, o.reserveCpu, o.reserveMemory].some((v) => v !== undefined)) return base;
  const limits = { ...(base?.Limits ?? {}) };
  const reservations = { ...(base?.Reservations ?? {}) };
  if (o.limitCpu !== undefined) limits.NanoCPUs = parseCpus(o.limitCpu, '--limit-cpu');
  if (o.limitMemory !== undefined) limits.MemoryBytes = parseMemory(o.limitMemory, '--limit-memory');
  if (o.reserveCpu !== undefined) reservations.NanoCPUs = parseCpus(o.reserveCpu, '--reserve-cpu');
  if (o.reserveMemory !== undefined) reservations.MemoryBytes = parseMemory(o.reserveMemory, '--reserve-memory');
  return { Limits: limits, Reservations: reservations };
}

type TaskTemplate = NonNullable<EngineServiceSpec['TaskTemplate']>;

/** The restart flags over a restart policy (create: none yet); the policy as it was when no flag is given. */
function restartPolicy(base: TaskTemplate['RestartPolicy'], o: { restartCondition?: string; restartDelay?: string; restartMaxAttempts?: number }): TaskTemplate['RestartPolicy'] {
  if (o.restartCondition === undefined && o.restartDelay === undefined && o.restartMaxAttempts === undefined) return base;
  const out = { ...(base ?? {}) };
  if (o.restartCondition !== undefined) out.Condition = oneOf(o.restartCondition, ['none', 'on-failure', 'any'], '--restart-condition');
  if (o.restartDelay !== undefined) out.Delay = parseDuration(o.restartDelay, '--restart-delay');
  if (o.restartMaxAttempts !== undefined) out.MaxAttempts = o.restartMaxAttempts;
  return out;
}

/**
 * Maps the flags `service create` and `service update` share onto the spec, over what it already has (the current
 * spec on update, nothing on create): restart policy, resources, update and rollback configs.
 */
function applySpecFlags(spec: EngineServiceSpec, o: SpecFlags & { restartDelay?: string; restartMaxAttempts?: number }): void {
  const task = (spec.TaskTemplate ??= {});
  const restart = restartPolicy(task.RestartPolicy, o);
  if (restart) task.RestartPolicy = restart;
  const res = resources(o, task.Resources);
  if (res) task.Resources = res;
  const up = applyUpdateFlags(spec.UpdateConfig, o.update, '--update');
  if (up) spec.UpdateConfig = up;
  const rb = applyUpdateFlags(spec.RollbackConfig, o.rollback, '--rollback');
  if (rb) spec.RollbackConfig = rb;
}

const SERVICE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** The Engine API spec for `service create`; throws UsageError naming the flag on bad input. */
export function buildCreateSpec(o: CreateOptions): EngineServiceSpec {
  if (!o.image) throw new UsageError('service create: an image is required, e.g. swarmform service create --name web nginx:alpine');
  if (o.name !== undefined && !SERVICE_NAME.test(o.name)) throw new UsageError(`--name: invalid service name "${o.name}" (letters, digits, "_", "." and "-", at most 63)`);
  if (o.mode === 'global' && o.replicas !== undefined) throw new UsageError('--replicas: not allowed with --mode global');
  if (!['replicated', 'global'].includes(o.mode)) throw new UsageError(`--mode: invalid "${o.mode}" (expected replicated or global)`);
  if (o.replicas !== undefined && (!Number.isInteger(o.replicas) || o.replicas < 0)) throw new UsageError('--replicas: expected a whole number >= 0');
  const spec: EngineServiceSpec = {
    ...(o.name ? { Name: o.name } : {}),
    Labels: parseKeyValues(o.label, '--label'),
    TaskTemplate: {
      ContainerSpec: {
        Image: o.image,
        ...(o.command.length ? { Args: o.command } : {}),
        Env: o.env,
        Labels: parseKeyValues(o.containerLabel, '--container-label'),
        ...(o.workdir ? { Dir: o.workdir } : {}),
        ...(o.user ? { User: o.user } : {}),
      },
      Placement: { Constraints: o.constraint },
      ...(o.network.length ? { Networks: o.network.map((n) => ({ Target: n })) } : {}),
      ForceUpdate: 0,
    },
    Mode: o.mode === 'global' ? { Global: {} } : { Replicated: { Replicas: o.replicas ?? 1 } },
    EndpointSpec: { Mode: 'vip', Ports: o.publish.map(parsePublish) },
  };
  applySpecFlags(spec, o);
  return spec;
}

/** A port's identity for `--publish-rm`: `published[/protocol]`, or the target when nothing is published. */
function portMatches(p: EnginePort, ref: string): boolean {
  const [num, proto] = ref.split('/');
  const n = Number(num);
  if (proto && proto !== (p.Protocol ?? 'tcp')) return false;
  return p.PublishedPort === n || (!p.PublishedPort && p.TargetPort === n);
}

/** The spec `service update` sends: the current spec with the requested changes (never mutates `current`). */
export function buildUpdateSpec(current: EngineServiceSpec, o: UpdateOptions): EngineServiceSpec {
  const spec = structuredClone(current);
  const task = (spec.TaskTemplate ??= {});
  const cs = (task.ContainerSpec ??= {});
  if (o.image !== undefined) cs.Image = o.image;
  if (o.command !== undefined) {
    delete cs.Command;
    cs.Args = o.command;
  }
  if (o.replicas !== undefined) {
    if (!spec.Mode?.Replicated) throw new UsageError('--replicas: only replicated services have a replica count');
    if (!Number.isInteger(o.replicas) || o.replicas < 0) throw new UsageError('--replicas: expected a whole number >= 0');
    spec.Mode.Replicated.Replicas = o.replicas;
  }
  if (o.envAdd.length || o.envRm.length) {
    const added = new Set(o.envAdd.map((e) => e.split('=')[0]!));
    const removed = new Set(o.envRm.map((e) => e.split('=')[0]!));
    cs.Env = [...(cs.Env ?? []).filter((e) => !added.has(e.split('=')[0]!) && !removed.has(e.split('=')[0]!)), ...o.envAdd];
  }
  if (o.labelAdd.length || o.labelRm.length) {
    const labels = { ...(spec.Labels ?? {}) };
    for (const k of o.labelRm) delete labels[k];
    Object.assign(labels, parseKeyValues(o.labelAdd, '--label-add'));
    spec.Labels = labels;
  }
  if (o.constraintAdd.length || o.constraintRm.length) {
    const norm = (c: string) => c.replace(/\s+/g, '');
    const rm = new Set(o.constraintRm.map(norm));
    const kept = (task.Placement?.Constraints ?? []).filter((c) => !rm.has(norm(c)));
    for (const c of o.constraintAdd) if (!kept.some((k) => norm(k) === norm(c))) kept.push(c);
    task.Placement = { ...(task.Placement ?? {}), Constraints: kept };
  }
  if (o.publishAdd.length || o.publishRm.length) {
    const ports = (spec.EndpointSpec?.Ports ?? []).filter((p) => !o.publishRm.some((r) => portMatches(p, r)));
    for (const add of o.publishAdd.map(parsePublish)) {
      const i = ports.findIndex((p) => p.TargetPort === add.TargetPort && (p.Protocol ?? 'tcp') === add.Protocol && (p.PublishedPort === add.PublishedPort || !add.PublishedPort));
      if (i >= 0) ports[i] = add;
      else ports.push(add);
    }
    spec.EndpointSpec = { ...(spec.EndpointSpec ?? {}), Ports: ports };
  }
  if (o.networkAdd.length || o.networkRm.length) {
    const nets = (task.Networks ?? []).filter((n) => !o.networkRm.includes(n.Target));
    for (const n of o.networkAdd) if (!nets.some((x) => x.Target === n)) nets.push({ Target: n });
    task.Networks = nets;
  }
  applySpecFlags(spec, o);
  if (o.force) task.ForceUpdate = (task.ForceUpdate ?? 0) + 1;
  return spec;
}

/** `NAME=N` arguments of `service scale`. */
export function parseScaleArgs(args: string[]): { service: string; replicas: number }[] {
  if (!args.length) throw new UsageError('service scale: name at least one SERVICE=REPLICAS, e.g. swarmform service scale web=4');
  return args.map((a) => {
    const m = /^([^=]+)=(\d+)$/.exec(a);
    if (!m) throw new UsageError(`service scale: invalid "${a}" (expected SERVICE=REPLICAS, e.g. web=4)`);
    return { service: m[1]!, replicas: Number(m[2]) };
  });
}

/** The image reference without its digest, as `docker service ls` shows it. */
export function shortImage(image: string | undefined): string {
  return (image ?? '').replace(/@sha256:[0-9a-f]+$/, '');
}

/** Ports as the docker CLI prints them: `*:8080->80/tcp`. */
export function formatPorts(ports: EnginePort[] | undefined): string {
  return (ports ?? [])
    .filter((p) => p.PublishedPort)
    .map((p) => `*:${p.PublishedPort}->${p.TargetPort}/${p.Protocol ?? 'tcp'}`)
    .join(', ');
}

/** A row of `service ls`. */
export interface ServiceRow {
  id: string;
  name: string;
  mode: string;
  running: number;
  desired: number;
  replicas: string;
  image: string;
  ports: string;
}

/**
 * Rows of `service ls`. Counts come from the engine's ServiceStatus when it has them (API 1.41), else from the
 * tasks that should run on nodes that are not down, as the docker CLI counts them.
 */
export function serviceRows(services: EngineService[], tasks: EngineTask[], nodes: EngineNodeLite[]): ServiceRow[] {
  const up = new Set(nodes.filter((n) => n.Status?.State !== 'down').map((n) => n.ID));
  const running = new Map<string, number>();
  const desiredGlobal = new Map<string, number>();
  for (const t of tasks) {
    if (t.NodeID && !up.has(t.NodeID)) continue;
    if (t.DesiredState === 'running') desiredGlobal.set(t.ServiceID, (desiredGlobal.get(t.ServiceID) ?? 0) + 1);
    if (t.Status.State === 'running') running.set(t.ServiceID, (running.get(t.ServiceID) ?? 0) + 1);
  }
  return services
    .map((s) => {
      const global = Boolean(s.Spec.Mode?.Global);
      const r = s.ServiceStatus?.RunningTasks ?? running.get(s.ID) ?? 0;
      const d = s.ServiceStatus?.DesiredTasks ?? (global ? (desiredGlobal.get(s.ID) ?? 0) : (s.Spec.Mode?.Replicated?.Replicas ?? 0));
      const hostPorts = (s.Spec.EndpointSpec?.Ports ?? []).filter((p) => p.PublishMode === 'host');
      const ports = [formatPorts(s.Endpoint?.Ports?.filter((p) => p.PublishMode !== 'host')), hostPorts.length ? `${formatPorts(hostPorts)} (host)` : '']
        .filter(Boolean)
        .join(', ');
      return {
        id: s.ID,
        name: s.Spec.Name ?? '',
        mode: global ? 'global' : 'replicated',
        running: r,
        desired: d,
        replicas: `${r}/${d}`,
        image: shortImage(s.Spec.TaskTemplate?.ContainerSpec?.Image),
        ports,
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** A row of `service ps`. */
export interface TaskRow {
  id: string;
  /** `web.1`, or `\_ web.1` for an older task of the same slot. */
  name: string;
  image: string;
  node: string;
  desiredState: string;
  currentState: string;
  error: string;
  ports: string;
}

/** Go's units.HumanDuration, which the docker CLI uses for "Running 5 minutes ago". */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(m / 60);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(h / 24 / 365)} years`;
}

const cap = (s: string) => (s ? s[0]!.toUpperCase() + s.slice(1) : s);

/**
 * Rows of `service ps`, ordered like the docker CLI: by service, slot (or node), newest task first, older tasks
 * of the same slot marked `\_`.
 */
export function taskRows(
  tasks: EngineTask[],
  serviceNames: Map<string, string>,
  nodes: EngineNodeLite[],
  opts: { noTrunc?: boolean; now?: number } = {},
): TaskRow[] {
  const nodeName = new Map(nodes.map((n) => [n.ID, n.Description?.Hostname ?? n.ID]));
  const now = opts.now ?? Date.now();
  const key = (t: EngineTask) => `${serviceNames.get(t.ServiceID) ?? t.ServiceID}\0${t.Slot ? String(t.Slot).padStart(8, '0') : (t.NodeID ?? '')}`;
  const sorted = [...tasks].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka !== kb) return ka < kb ? -1 : 1;
    return (b.Status.Timestamp ?? b.CreatedAt ?? '').localeCompare(a.Status.Timestamp ?? a.CreatedAt ?? '');
  });
  let prev = '';
  return sorted.map((t) => {
    const k = key(t);
    const svc = serviceNames.get(t.ServiceID) ?? t.ServiceID;
    const base = t.Slot ? `${svc}.${t.Slot}` : `${svc}.${t.NodeID ?? ''}`;
    const name = k === prev ? ` \\_ ${base}` : base;
    prev = k;
    const ts = Date.parse(t.Status.Timestamp ?? t.CreatedAt ?? '');
    const err = t.Status.Err ?? '';
    return {
      id: opts.noTrunc ? t.ID : t.ID.slice(0, 12),
      name,
      image: opts.noTrunc ? (t.Spec?.ContainerSpec?.Image ?? '') : shortImage(t.Spec?.ContainerSpec?.Image),
      node: t.NodeID ? (nodeName.get(t.NodeID) ?? t.NodeID.slice(0, 12)) : '',
      desiredState: cap(t.DesiredState),
      currentState: `${cap(t.Status.State)}${Number.isFinite(ts) ? ` ${humanDuration(now - ts)} ago` : ''}`,
      error: err ? `"${opts.noTrunc || err.length <= 30 ? err : `${err.slice(0, 29)}…`}"` : '',
      ports: formatPorts(t.Status.PortStatus?.Ports),
    };
  });
}

/** `docker service inspect --pretty`, for the fields operators read most. */
export function prettyService(s: EngineService, networkNames: Map<string, string> = new Map()): string {
  const spec = s.Spec;
  const cs = spec.TaskTemplate?.ContainerSpec ?? {};
  const out: string[] = [];
  const kv = (k: string, v: string | number | undefined, indent = '') => out.push(`${`${indent}${k}:`.padEnd(indent ? 16 : 16)}${v ?? ''}`);
  kv('ID', s.ID);
  kv('Name', spec.Name);
  const labels = Object.entries(spec.Labels ?? {});
  if (labels.length) {
    out.push('Labels:');
    for (const [k, v] of labels) out.push(` ${k}=${v}`);
  }
  if (spec.Mode?.Global) kv('Service Mode', 'Global');
  else {
    kv('Service Mode', 'Replicated');
    kv('Replicas', spec.Mode?.Replicated?.Replicas ?? 0, ' ');
  }
  if (s.UpdateStatus?.State) {
    out.push('UpdateStatus:');
    kv('State', s.UpdateStatus.State, ' ');
    if (s.UpdateStatus.StartedAt) kv('Started', s.UpdateStatus.StartedAt, ' ');
    if (s.UpdateStatus.CompletedAt) kv('Completed', s.UpdateStatus.CompletedAt, ' ');
    if (s.UpdateStatus.Message) kv('Message', s.UpdateStatus.Message, ' ');
  }
  out.push('Placement:');
  const constraints = spec.TaskTemplate?.Placement?.Constraints ?? [];
  if (constraints.length) kv('Constraints', `[${constraints.join(' ')}]`, ' ');
  for (const [title, c] of [['UpdateConfig', spec.UpdateConfig], ['RollbackConfig', spec.RollbackConfig]] as const) {
    if (!c) continue;
    out.push(`${title}:`);
    kv('Parallelism', c.Parallelism ?? 1, ' ');
    if (c.Delay) kv('Delay', formatDuration(c.Delay), ' ');
    kv('On failure', c.FailureAction ?? 'pause', ' ');
    kv('Monitoring Period', formatDuration(c.Monitor ?? 5e9), ' ');
    kv('Max failure ratio', c.MaxFailureRatio ?? 0, ' ');
    kv(title === 'UpdateConfig' ? 'Update order' : 'Rollback order', c.Order ?? 'stop-first', ' ');
  }
  out.push('ContainerSpec:');
  kv('Image', cs.Image, ' ');
  if (cs.Command?.length) kv('Command', cs.Command.join(' '), ' ');
  if (cs.Args?.length) kv('Args', cs.Args.join(' '), ' ');
  if (cs.Env?.length) {
    out.push(' Env:');
    for (const e of cs.Env) out.push(`  ${e}`);
  }
  const res = spec.TaskTemplate?.Resources;
  if (res?.Limits || res?.Reservations) {
    out.push('Resources:');
    for (const [title, r] of [['Reservations', res.Reservations], ['Limits', res.Limits]] as const) {
      if (!r || (!r.NanoCPUs && !r.MemoryBytes)) continue;
      out.push(` ${title}:`);
      if (r.NanoCPUs) kv('CPU', r.NanoCPUs / 1e9, '  ');
      if (r.MemoryBytes) kv('Memory', humanBytes(r.MemoryBytes), '  ');
    }
  }
  const nets = spec.TaskTemplate?.Networks ?? [];
  if (nets.length) kv('Networks', nets.map((n) => networkNames.get(n.Target) ?? n.Target).join(' '));
  kv('Endpoint Mode', spec.EndpointSpec?.Mode ?? 'vip');
  const ports = spec.EndpointSpec?.Ports ?? [];
  if (ports.length) {
    out.push('Ports:');
    for (const p of ports) {
      out.push(` PublishedPort = ${p.PublishedPort ?? 0}`, `  Protocol = ${p.Protocol ?? 'tcp'}`, `  TargetPort = ${p.TargetPort}`, `  PublishMode = ${p.PublishMode ?? 'ingress'}`);
    }
  }
  return out.join('\n');
}

/** Bytes as the docker CLI prints sizes: 128MiB, 1GiB. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(3).replace(/0+$/, '')}${units[i]}`;
}
