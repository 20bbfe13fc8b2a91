/**
 * `service` verbs through the Engine API of the leader (else any active manager), over swarmform's SSH connection:
 * no docker CLI on either side. Progress of create/update/scale/rollback goes on the context's EventBus as typed
 * `progress` events; the CLI renders them.
 */
import type Docker from 'dockerode';
import {
  buildCreateSpec,
  buildUpdateSpec,
  type CreateOptions,
  type EngineNodeLite,
  type EngineService,
  type EngineTask,
  parseScaleArgs,
  serviceRows,
  type ServiceRow,
  taskRows,
  type TaskRow,
  type UpdateOptions,
} from '../swarm/service-ops.js';
import { watchService, type WatchOutcome } from '../swarm/service-progress.js';
import type { Context } from '../cluster/context.js';
import { SwarmformError, UsageError } from '../base/errors.js';
import { type ManagerHandle, withManager } from '../cluster/manager.js';

/** What every progress-reporting verb takes. */
export interface ProgressOptions {
  /** Return once the engine accepted the change, without watching the tasks. */
  detach?: boolean;
  /** Stop watching after this long (the change goes on). */
  timeoutS?: number;
}

/** The engine's own message from a failed API call (`(HTTP code 409) ... - name conflicts` -> `name conflicts`). */
export function engineMessage(err: unknown): string {
  const e = err as { json?: { message?: string } | string; statusCode?: number; message?: string; reason?: string };
  const json = typeof e.json === 'string' ? safeJson(e.json) : e.json;
  return (json?.message ?? e.message ?? String(err)).trim();
}

function safeJson(text: string): { message?: string } | undefined {
  try {
    return JSON.parse(text) as { message?: string };
  } catch {
    return { message: text };
  }
}

/** Wraps an engine call: its error becomes a SwarmformError with the engine's message and what was being done. */
export async function engineCall<T>(what: string, fn: () => Promise<T>, hint?: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SwarmformError) throw err;
    const status = (err as { statusCode?: number }).statusCode;
    const msg = engineMessage(err);
    throw new SwarmformError(`${what}: ${msg}`, { hint: hint ?? (status === 404 ? 'list them with `swarmform service ls`' : undefined), cause: err });
  }
}

/** Finds a service by name, ID or ID prefix, as the engine resolves it. */
export async function inspectService(engine: Docker, ref: string): Promise<EngineService> {
  return engineCall(`service ${ref}`, () => engine.getService(ref).inspect() as Promise<EngineService>, 'list services with `swarmform service ls`');
}

async function watch(h: ManagerHandle, ctx: Context, id: string, o: ProgressOptions): Promise<WatchOutcome | undefined> {
  if (o.detach) return undefined;
  return watchService(h.engine, id, (e) => ctx.events.emit(e), { signal: ctx.signal, timeoutS: o.timeoutS });
}

export interface CreateResult {
  id: string;
  name: string;
  outcome?: WatchOutcome;
}

/**
 * `service create`: the spec goes to the engine as given, without asking a registry for the image's digest (the
 * API's equivalent of `--no-resolve-image`: API >= 1.30 leaves resolving to the client, and we do not resolve), so
 * images that exist only on the nodes work. `onCreated` is told the id before the watch starts.
 */
export async function serviceCreate(ctx: Context, opts: CreateOptions, o: ProgressOptions & { onCreated?: (id: string) => void } = {}): Promise<CreateResult> {
  const spec = buildCreateSpec(opts);
  warnLabIngress(ctx, spec);
  return withManager(ctx, async (h) => {
    const res = (await engineCall(`service create${spec.Name ? ` ${spec.Name}` : ''}`, () => h.engine.createService(spec as never) as Promise<{ ID?: string; id?: string }>)) as {
      ID?: string;
      id?: string;
    };
    const id = res.ID ?? res.id ?? '';
    o.onCreated?.(id);
    const svc = await inspectService(h.engine, id);
    const outcome = await watch(h, ctx, id, o);
    return { id, name: svc.Spec.Name ?? id, outcome };
  });
}

async function listAll(engine: Docker, filters?: Record<string, string[]>) {
  const [services, tasks, nodes] = await Promise.all([
    engineCall('service ls', () => engine.listServices({ status: true, ...(filters ? { filters: JSON.stringify(filters) } : {}) } as object) as unknown as Promise<EngineService[]>),
    engineCall('task ls', () => engine.listTasks({ filters: JSON.stringify({ 'desired-state': ['running'] }) } as object) as Promise<EngineTask[]>),
    engineCall('node ls', () => engine.listNodes() as Promise<EngineNodeLite[]>),
  ]);
  return { services, tasks, nodes };
}

/** `service ls`: one row per service, docker's columns. */
export function serviceLs(ctx: Context, opts: { filter?: string[] } = {}): Promise<ServiceRow[]> {
  return withManager(ctx, async (h) => {
    const { services, tasks, nodes } = await listAll(h.engine, opts.filter?.length ? filtersOf(opts.filter) : undefined);
    return serviceRows(services, tasks, nodes);
  });
}

/** `--filter key=value` flags into Engine API filters. */
export function filtersOf(items: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of items) {
    const i = f.indexOf('=');
    if (i <= 0) throw new UsageError(`--filter: invalid "${f}" (expected KEY=VALUE, e.g. desired-state=running)`);
    (out[f.slice(0, i)] ??= []).push(f.slice(i + 1));
  }
  return out;
}

/** `service ps SERVICE...`: tasks of the services, docker's columns, newest first per slot. */
export function servicePs(ctx: Context, refs: string[], opts: { filter?: string[]; noTrunc?: boolean } = {}): Promise<{ rows: TaskRow[]; tasks: EngineTask[] }> {
  return withManager(ctx, async (h) => {
    const services = await Promise.all(refs.map((r) => inspectService(h.engine, r)));
    const names = new Map(services.map((s) => [s.ID, s.Spec.Name ?? s.ID]));
    const filters = { ...(opts.filter?.length ? filtersOf(opts.filter) : {}), service: services.map((s) => s.ID) };
    const [tasks, nodes] = await Promise.all([
      engineCall('service ps', () => h.engine.listTasks({ filters: JSON.stringify(filters) } as object) as Promise<EngineTask[]>),
      engineCall('node ls', () => h.engine.listNodes() as Promise<EngineNodeLite[]>),
    ]);
    return { rows: taskRows(tasks, names, nodes, { noTrunc: opts.noTrunc }), tasks };
  });
}

/** `service inspect`: the engine's objects, and network names for `--pretty`. */
export function serviceInspect(ctx: Context, refs: string[]): Promise<{ services: EngineService[]; networks: Map<string, string> }> {
  return withManager(ctx, async (h) => {
    const services = await Promise.all(refs.map((r) => inspectService(h.engine, r)));
    const nets = (await h.engine.listNetworks().catch(() => [])) as { Id: string; Name: string }[];
    return { services, networks: new Map(nets.map((n) => [n.Id, n.Name])) };
  });
}

/** `service scale NAME=N...`: each service's replica count, then progress for each (unless detached). */
export function serviceScale(ctx: Context, args: string[], o: ProgressOptions & { onScaled?: (name: string, n: number) => void } = {}) {
  const wanted = parseScaleArgs(args);
  return withManager(ctx, async (h) => {
    const done: { name: string; replicas: number; outcome?: WatchOutcome }[] = [];
    const failures: string[] = [];
    for (const w of wanted) {
      try {
        const svc = await inspectService(h.engine, w.service);
        if (!svc.Spec.Mode?.Replicated) throw new SwarmformError(`${w.service}: scale can only be used with replicated mode`);
        const spec = buildUpdateSpec(svc.Spec, { ...emptyUpdate(), replicas: w.replicas });
        await engineCall(`scale ${w.service}`, () => h.engine.getService(svc.ID).update({ _query: { version: svc.Version.Index }, _body: spec } as never));
        o.onScaled?.(svc.Spec.Name ?? w.service, w.replicas);
        done.push({ name: svc.Spec.Name ?? w.service, replicas: w.replicas });
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    for (const d of done) d.outcome = await watch(h, ctx, d.name, o);
    if (failures.length) throw new SwarmformError(failures.join('\n'));
    return done;
  });
}

/** An UpdateOptions that changes nothing. */
export function emptyUpdate(): UpdateOptions {
  return {
    envAdd: [], envRm: [], labelAdd: [], labelRm: [], constraintAdd: [], constraintRm: [], publishAdd: [], publishRm: [], networkAdd: [], networkRm: [],
    force: false, update: {}, rollback: {},
  };
}

export interface UpdateResult {
  name: string;
  id: string;
  outcome?: WatchOutcome;
  warnings: string[];
}

/** Fails when the engine rolled an update back by itself: the change did not happen. */
function checkOutcome(name: string, outcome: WatchOutcome | undefined, manual: boolean): void {
  if (outcome?.rolledBack && !manual) {
    throw new SwarmformError(`service ${name}: the update failed and was rolled back (${outcome.rolledBack})`, {
      hint: `look at the failed tasks with \`swarmform service ps ${name}\``,
    });
  }
}

/** `service update`: the current spec with the changes; progress until converged (or rolled back). */
export function serviceUpdate(ctx: Context, ref: string, opts: UpdateOptions, o: ProgressOptions & { onUpdated?: (name: string) => void } = {}): Promise<UpdateResult> {
  return withManager(ctx, async (h) => {
    const svc = await inspectService(h.engine, ref);
    const name = svc.Spec.Name ?? ref;
    const spec = buildUpdateSpec(svc.Spec, opts);
    const res = (await engineCall(`service update ${name}`, () =>
      h.engine.getService(svc.ID).update({ _query: { version: svc.Version.Index }, _body: spec } as never),
    )) as { Warnings?: string[] | null } | undefined;
    o.onUpdated?.(name);
    const outcome = await watch(h, ctx, svc.ID, o);
    checkOutcome(name, outcome, false);
    return { name, id: svc.ID, outcome, warnings: res?.Warnings ?? [] };
  });
}

/** `service rollback`: back to the previous spec (the engine keeps one), with progress. */
export function serviceRollback(ctx: Context, ref: string, o: ProgressOptions & { onUpdated?: (name: string) => void } = {}): Promise<UpdateResult> {
  return withManager(ctx, async (h) => {
    const svc = await inspectService(h.engine, ref);
    const name = svc.Spec.Name ?? ref;
    if (!svc.PreviousSpec) throw new SwarmformError(`service ${name}: nothing to roll back to (it was never updated)`);
    await engineCall(`service rollback ${name}`, () =>
      h.engine.getService(svc.ID).update({ _query: { version: svc.Version.Index, rollback: 'previous' }, _body: svc.Spec } as never),
    );
    o.onUpdated?.(name);
    const outcome = await watch(h, ctx, svc.ID, o);
    return { name, id: svc.ID, outcome, warnings: [] };
  });
}

/** `service rm SERVICE...`: removes each; names the ones that could not be removed. */
export function serviceRm(ctx: Context, refs: string[]): Promise<string[]> {
  return withManager(ctx, async (h) => {
    const removed: string[] = [];
    const failures: string[] = [];
    for (const r of refs) {
      try {
        await engineCall(`service rm ${r}`, () => h.engine.getService(r).remove());
        removed.push(r);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    if (failures.length) throw Object.assign(new SwarmformError(failures.join('\n')), { removed });
    return removed;
  });
}

/** Metadata the engine puts in front of each log line with `details=true`. */
interface LogDetails {
  node?: string;
  service?: string;
  task?: string;
}

/** Parses `com.docker.swarm.node.id=...,com.docker.swarm.service.id=...,com.docker.swarm.task.id=...` (URL-encoded). */
export function parseLogDetails(text: string): LogDetails {
  const out: LogDetails = {};
  for (const pair of text.split(',')) {
    const i = pair.indexOf('=');
    if (i < 0) continue;
    const k = decodeURIComponent(pair.slice(0, i));
    const v = decodeURIComponent(pair.slice(i + 1));
    if (k === 'com.docker.swarm.node.id') out.node = v;
    else if (k === 'com.docker.swarm.service.id') out.service = v;
    else if (k === 'com.docker.swarm.task.id') out.task = v;
  }
  return out;
}

/**
 * Splits Docker's multiplexed log stream (8-byte headers: stream 1 = stdout, 2 = stderr, then a big-endian length)
 * into whole lines per stream. Feed it chunks as they arrive; a frame split across chunks is kept until complete.
 */
export class LogDemuxer {
  private buf: Buffer = Buffer.alloc(0);
  private partial: Record<1 | 2, string> = { 1: '', 2: '' };

  constructor(private readonly onLine: (stream: 'stdout' | 'stderr', line: string) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 8) {
      const type = this.buf[0];
      const size = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + size) break;
      const payload = this.buf.subarray(8, 8 + size).toString('utf8');
      this.buf = this.buf.subarray(8 + size);
      const s: 1 | 2 = type === 2 ? 2 : 1;
      const text = this.partial[s] + payload;
      const lines = text.split('\n');
      this.partial[s] = lines.pop()!;
      for (const l of lines) this.onLine(s === 2 ? 'stderr' : 'stdout', l);
    }
  }

  /** Flushes lines that did not end with a newline. */
  end(): void {
    for (const s of [1, 2] as const) {
      if (this.partial[s]) this.onLine(s === 2 ? 'stderr' : 'stdout', this.partial[s]);
      this.partial[s] = '';
    }
  }
}

export interface LogLine {
  stream: 'stdout' | 'stderr';
  /** `web.1.abc123def456@worker-1` like the docker CLI's prefix, without padding. */
  source: string;
  timestamp?: string;
  message: string;
}

/**
 * `service logs`: streams the service's task logs from the engine (`-f` follows until Ctrl-C), each line with the
 * task it came from, as `docker service logs` prints it.
 */
export function serviceLogs(
  ctx: Context,
  ref: string,
  opts: { follow?: boolean; timestamps?: boolean; tail?: string; since?: string; noTaskIds?: boolean; noTrunc?: boolean },
  onLine: (l: LogLine) => void,
): Promise<void> {
  return withManager(ctx, async (h) => {
    const svc = await inspectService(h.engine, ref);
    const name = svc.Spec.Name ?? ref;
    const [tasks, nodes] = await Promise.all([
      h.engine.listTasks({ filters: JSON.stringify({ service: [svc.ID] }) } as object) as Promise<EngineTask[]>,
      h.engine.listNodes() as Promise<EngineNodeLite[]>,
    ]);
    const taskById = new Map(tasks.map((t) => [t.ID, t]));
    const nodeName = new Map(nodes.map((n) => [n.ID, n.Description?.Hostname ?? n.ID]));
    const query = {
      stdout: true,
      stderr: true,
      details: true,
      follow: Boolean(opts.follow),
      timestamps: Boolean(opts.timestamps),
      tail: opts.tail ?? 'all',
      ...(opts.since ? { since: opts.since } : {}),
    };
    const stream = (await engineCall(`service logs ${name}`, () =>
      new Promise<NodeJS.ReadableStream>((resolve, reject) =>
        // Untimed: a followed log may stay quiet for longer than the engine client's idle limit.
        h.remote.engine({ untimed: true }).modem.dial(
          { path: `/services/${svc.ID}/logs?`, method: 'GET', isStream: true, options: query, statusCodes: { 200: true, 404: 'no such service', 500: 'server error', 503: 'node is not part of a swarm' } },
          (err: unknown, data: unknown) => (err ? reject(err) : resolve(data as NodeJS.ReadableStream)),
        ),
      ),
    )) as NodeJS.ReadableStream & { destroy?: () => void };
    const demux = new LogDemuxer((s, raw) => {
      // With timestamps: "<ts> <details> <message>", else "<details> <message>".
      let rest = raw;
      let timestamp: string | undefined;
      if (opts.timestamps) {
        const i = rest.indexOf(' ');
        timestamp = rest.slice(0, i);
        rest = rest.slice(i + 1);
      }
      const j = rest.indexOf(' ');
      const details = parseLogDetails(j < 0 ? rest : rest.slice(0, j));
      const message = j < 0 ? '' : rest.slice(j + 1);
      const task = details.task ? taskById.get(details.task) : undefined;
      const taskName = task?.Slot ? `${name}.${task.Slot}` : `${name}.${details.node ?? ''}`;
      const taskId = details.task ? (opts.noTrunc ? details.task : details.task.slice(0, 12)) : '';
      const node = details.node ? (nodeName.get(details.node) ?? details.node.slice(0, 12)) : '';
      const source = `${opts.noTaskIds || !taskId ? taskName : `${taskName}.${taskId}`}${node ? `@${node}` : ''}`;
      onLine({ stream: s, source, timestamp, message });
    });
    await new Promise<void>((resolve, reject) => {
      const stop = () => {
        stream.destroy?.();
        resolve();
      };
      ctx.signal?.addEventListener('abort', stop, { once: true });
      stream.on('data', (c: Buffer) => demux.push(c));
      stream.on('end', () => {
        demux.end();
        resolve();
      });
      stream.on('close', () => {
        demux.end();
        resolve();
      });
      stream.on('error', (e: Error) => (ctx.signal?.aborted ? resolve() : reject(e)));
    });
  });
}

/** The lab kernel has no IPVS: an ingress-mode published port is accepted by the engine but never answers there. */
function warnLabIngress(ctx: Context, spec: { Name?: string; EndpointSpec?: { Ports?: { PublishMode?: string; PublishedPort?: number }[] } }): void {
  if (ctx.providers.every((p) => p.provider.info().ingressMesh)) return;
  const ingress = (spec.EndpointSpec?.Ports ?? []).filter((p) => (p.PublishMode ?? 'ingress') === 'ingress');
  if (ingress.length === 0) return;
  ctx.events.warn(
    `service ${spec.Name ?? ''} publishes ${ingress.map((p) => p.PublishedPort ?? '?').join(', ')} in ingress mode: the lab kernel has no IPVS, so the routing mesh does not answer there; use --publish mode=host,published=P,target=T`,
  );
}
