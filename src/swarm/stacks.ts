/**
 * Stacks against a manager's Engine API, as `docker stack deploy/ls/services/ps/rm` do: objects are found by the
 * `com.docker.stack.namespace` label, so stacks deployed by the docker CLI and by swarmform are the same thing.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type Docker from 'dockerode';
import { SwarmformError } from '../base/errors.js';
import type { EventBus, Phase } from '../base/events.js';
import { sleep } from '../run/retry.js';
import { LABEL_NAMESPACE, SPEC_HASH_LABEL, type FileObjectPlan, type StackPlan } from './compose/convert.js';
import { type EnginePort, type EngineTask, humanDuration, type ServiceRow, type TaskRow } from './service-ops.js';

/** Label on secrets and configs: an HMAC of the content keyed by the swarm's ID (readable only where the secret is). */
export const CONTENT_HASH_LABEL = 'swarmform.content-hash';

export interface DeployResult {
  stack: string;
  created: string[];
  updated: string[];
  unchanged: string[];
  /** Services of the stack no longer in the files, removed with --prune. */
  removed: string[];
  networks: string[];
  secrets: string[];
  configs: string[];
}

interface EngineObject {
  ID: string;
  Version: { Index: number };
  Spec: { Name: string; Labels?: Record<string, string>; Data?: string };
}

interface EngineService {
  ID: string;
  Version: { Index: number };
  Spec: {
    Name: string;
    Labels?: Record<string, string>;
    Mode?: { Replicated?: { Replicas?: number }; Global?: object; ReplicatedJob?: object; GlobalJob?: object };
    TaskTemplate?: { ForceUpdate?: number; ContainerSpec?: { Image?: string } };
    EndpointSpec?: { Ports?: EnginePort[] };
  };
  Endpoint?: { Ports?: EnginePort[] };
}

const nsFilter = (ns?: string) => JSON.stringify({ label: [ns === undefined ? LABEL_NAMESPACE : `${LABEL_NAMESPACE}=${ns}`] });

/**
 * Deploys a converted stack: checks external objects and immutable secrets/configs first (nothing changes when one
 * is wrong), then creates missing networks, secrets and configs, and creates or updates services whose spec hash
 * differs. Unchanged services are not touched.
 */
export async function deployStack(engine: Docker, plan: StackPlan, opts: { events: EventBus; phase?: Phase; prune?: boolean }): Promise<DeployResult> {
  const { events } = opts;
  const phase = opts.phase ?? 'stack';
  const ns = plan.namespace;
  const result: DeployResult = { stack: ns, created: [], updated: [], unchanged: [], removed: [], networks: [], secrets: [], configs: [] };
  const swarm = (await engine.swarmInspect()) as { ID: string };

  // 1. Check everything before changing anything.
  const problems: string[] = [];
  const networks = (await engine.listNetworks()) as { Id: string; Name: string; Scope: string }[];
  for (const name of plan.externalNetworks) {
    const n = networks.find((x) => x.Name === name);
    if (!n) problems.push(`network ${JSON.stringify(name)} is declared as external, but could not be found: create a swarm-scoped network (docker network create -d overlay ${name}) before deploying the stack`);
    else if (n.Scope !== 'swarm') problems.push(`network ${JSON.stringify(name)} is declared as external, but it is not in the right scope: "${n.Scope}" instead of "swarm"`);
  }
  const secrets = (await engine.listSecrets()) as EngineObject[];
  const configs = (await engine.listConfigs()) as EngineObject[];
  for (const [kind, names, have] of [['secret', plan.externalSecrets, secrets], ['config', plan.externalConfigs, configs]] as const) {
    for (const name of names) if (!have.some((o) => o.Spec.Name === name)) problems.push(`${kind} ${JSON.stringify(name)} is declared as external, but could not be found`);
  }
  const contents = new Map<string, { data: Buffer; hash: string }>();
  const objectActions: { kind: 'secret' | 'config'; plan: FileObjectPlan; existing?: EngineObject; relabel: boolean }[] = [];
  for (const [kind, list, have] of [['secret', plan.secrets, secrets], ['config', plan.configs, configs]] as const) {
    for (const p of list) {
      let data: Buffer;
      try {
        data = readFileSync(p.file);
      } catch (err) {
        problems.push(`${kind} ${p.key}: cannot read ${p.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        continue;
      }
      const hash = createHmac('sha256', swarm.ID).update(data).digest('hex').slice(0, 32);
      contents.set(`${kind}:${p.name}`, { data, hash });
      const existing = have.find((o) => o.Spec.Name === p.name);
      if (!existing) {
        objectActions.push({ kind, plan: p, relabel: false });
        continue;
      }
      const known = existing.Spec.Labels?.[CONTENT_HASH_LABEL];
      // Configs can be read back; secrets only through our label (a secret made by the docker CLI has none: the
      // engine itself refuses a changed content when we update it below).
      const same = known !== undefined ? known === hash : kind === 'config' ? Buffer.from(existing.Spec.Data ?? '', 'base64').equals(data) : undefined;
      if (same === false) {
        problems.push(
          `${kind} ${p.name} already exists with different content, and swarm ${kind}s cannot change: give the new content a new name ` +
            `(e.g. name: ${p.name}_v2 under ${kind}s.${p.key}, and services pick it up on this deploy) or remove the stack first (swarmform stack rm ${ns})`,
        );
        continue;
      }
      const labels = { ...p.labels, [CONTENT_HASH_LABEL]: hash };
      const relabel = same === undefined || JSON.stringify(sortKeys(existing.Spec.Labels ?? {})) !== JSON.stringify(sortKeys(labels));
      objectActions.push({ kind, plan: p, existing, relabel });
    }
  }
  if (problems.length > 0) throw new SwarmformError(`stack ${ns} not deployed (nothing was changed):\n  ${problems.join('\n  ')}`);

  // 2. Secrets and configs (content is sent to the engine only; never logged).
  const ids = new Map<string, string>();
  for (const o of secrets) ids.set(`secret:${o.Spec.Name}`, o.ID);
  for (const o of configs) ids.set(`config:${o.Spec.Name}`, o.ID);
  for (const a of objectActions) {
    const c = contents.get(`${a.kind}:${a.plan.name}`)!;
    const spec = {
      Name: a.plan.name,
      Labels: { ...a.plan.labels, [CONTENT_HASH_LABEL]: c.hash },
      Data: c.data.toString('base64'),
      ...(a.plan.driver ? { Driver: { Name: a.plan.driver } } : {}),
      ...(a.plan.templateDriver ? { Templating: { Name: a.plan.templateDriver } } : {}),
    };
    if (!a.existing) {
      // dockerode answers with a Secret/Config handle whose `id` is the new object's ID.
      const created = (a.kind === 'secret' ? await engine.createSecret(spec) : await engine.createConfig(spec)) as unknown as { id: string };
      ids.set(`${a.kind}:${a.plan.name}`, created.id);
      (a.kind === 'secret' ? result.secrets : result.configs).push(a.plan.name);
      events.emit({ type: 'step', phase, host: a.plan.name, step: a.kind, status: 'ok', message: `created ${a.kind} ${a.plan.name}` });
    } else if (a.relabel) {
      // Same content (or, for a secret the docker CLI made, content the engine checks): update the labels only.
      const obj = a.kind === 'secret' ? engine.getSecret(a.existing.ID) : engine.getConfig(a.existing.ID);
      try {
        await obj.update({ _query: { version: a.existing.Version.Index }, _body: spec } as never);
      } catch (err) {
        throw new SwarmformError(
          `${a.kind} ${a.plan.name}: the engine refused the update (${(err as Error).message.replace(/\s+/g, ' ').trim()}); its content probably changed, and swarm ${a.kind}s cannot change`,
          { hint: `give the new content a new name (name: ${a.plan.name}_v2 under ${a.kind}s.${a.plan.key}) or run swarmform stack rm ${ns} first` },
        );
      }
      events.emit({ type: 'step', phase, host: a.plan.name, step: a.kind, status: 'skip', message: 'same content, labels updated' });
    } else {
      events.emit({ type: 'step', phase, host: a.plan.name, step: a.kind, status: 'skip', message: 'unchanged' });
    }
  }

  // 3. Networks: created when missing, existing ones left alone (as the docker CLI does).
  for (const n of plan.networks) {
    if (networks.some((x) => x.Name === n.name)) {
      events.emit({ type: 'step', phase, host: n.name, step: 'network', status: 'skip', message: 'exists' });
      continue;
    }
    await engine.createNetwork({ Name: n.name, ...n.spec } as Docker.NetworkCreateOptions);
    result.networks.push(n.name);
    events.emit({ type: 'step', phase, host: n.name, step: 'network', status: 'ok', message: `created network ${n.name} (${String(n.spec.Driver)})` });
  }

  // 4. Services: created, updated when the spec hash differs, else left alone.
  const existing = (await engine.listServices({ filters: nsFilter(ns) } as object)) as EngineService[];
  const byName = new Map(existing.map((s) => [s.Spec.Name, s]));
  for (const svc of plan.services) {
    const spec = withObjectIds(svc.spec, ids);
    const have = byName.get(svc.name);
    if (!have) {
      await engine.createService(spec);
      result.created.push(svc.name);
      events.emit({ type: 'step', phase, host: svc.name, step: 'service', status: 'ok', message: `created service ${svc.name}` });
    } else if (have.Spec.Labels?.[SPEC_HASH_LABEL] !== svc.hash) {
      // Keep ForceUpdate so tasks are not redeployed for that alone (as the docker CLI does).
      const body = { ...spec, TaskTemplate: { ...(spec.TaskTemplate as object), ForceUpdate: have.Spec.TaskTemplate?.ForceUpdate ?? 0 } };
      await engine.getService(have.ID).update({ _query: { version: have.Version.Index }, _body: body } as never);
      result.updated.push(svc.name);
      events.emit({ type: 'step', phase, host: svc.name, step: 'service', status: 'ok', message: `updated service ${svc.name}` });
    } else {
      result.unchanged.push(svc.name);
      events.emit({ type: 'step', phase, host: svc.name, step: 'service', status: 'skip', message: 'unchanged' });
    }
  }
  if (opts.prune) {
    const wanted = new Set(plan.services.map((s) => s.name));
    for (const s of existing.filter((x) => !wanted.has(x.Spec.Name))) {
      await engine.getService(s.ID).remove();
      result.removed.push(s.Spec.Name);
      events.emit({ type: 'step', phase, host: s.Spec.Name, step: 'service', status: 'ok', message: `removed service ${s.Spec.Name} (--prune)` });
    }
  }
  return result;
}

/** Fills SecretID/ConfigID from engine names (the plan names them; IDs exist only once the objects do). */
function withObjectIds(spec: Record<string, unknown>, ids: Map<string, string>): Record<string, unknown> {
  const copy = structuredClone(spec) as { TaskTemplate: { ContainerSpec: { Secrets?: { SecretID: string; SecretName: string }[]; Configs?: { ConfigID: string; ConfigName: string }[] } } };
  const cs = copy.TaskTemplate.ContainerSpec;
  for (const s of cs.Secrets ?? []) s.SecretID = ids.get(`secret:${s.SecretName}`) ?? '';
  for (const c of cs.Configs ?? []) c.ConfigID = ids.get(`config:${c.ConfigName}`) ?? '';
  return copy as unknown as Record<string, unknown>;
}

function sortKeys(o: Record<string, string>): [string, string][] {
  return Object.entries(o).sort(([a], [b]) => a.localeCompare(b));
}

export interface StackSummary {
  name: string;
  services: number;
}

/** Stacks as `docker stack ls` lists them: by the namespace label of services. */
export async function listStacks(engine: Docker): Promise<StackSummary[]> {
  const services = (await engine.listServices({ filters: nsFilter() } as object)) as EngineService[];
  const counts = new Map<string, number>();
  for (const s of services) {
    const ns = s.Spec.Labels?.[LABEL_NAMESPACE];
    if (ns !== undefined) counts.set(ns, (counts.get(ns) ?? 0) + 1);
  }
  return [...counts].map(([name, services]) => ({ name, services })).sort((a, b) => a.name.localeCompare(b.name));
}

/** A row of `stack services`: the same columns as `service ls`. */
export type StackServiceRow = ServiceRow;

/** Services of a stack as `docker stack services` shows them (two Engine API calls). */
export async function stackServices(engine: Docker, ns: string): Promise<StackServiceRow[]> {
  const services = (await engine.listServices({ filters: nsFilter(ns) } as object)) as EngineService[];
  if (services.length === 0) return [];
  const tasks = (await engine.listTasks({ filters: JSON.stringify({ service: services.map((s) => s.ID), 'desired-state': ['running'] }) } as object)) as EngineTask[];
  const nodes = (await engine.listNodes()) as { ID: string; Status?: { State?: string } }[];
  const up = new Set(nodes.filter((n) => n.Status?.State !== 'down').map((n) => n.ID));
  return services
    .map((s) => {
      const mine = tasks.filter((t) => t.ServiceID === s.ID);
      const running = mine.filter((t) => t.Status.State === 'running' && (!t.NodeID || up.has(t.NodeID))).length;
      const mode = s.Spec.Mode?.Global ? 'global' : s.Spec.Mode?.ReplicatedJob ? 'replicated job' : s.Spec.Mode?.GlobalJob ? 'global job' : 'replicated';
      const desired = s.Spec.Mode?.Replicated ? (s.Spec.Mode.Replicated.Replicas ?? 0) : mine.length;
      const max = (s.Spec.TaskTemplate as { Placement?: { MaxReplicas?: number } } | undefined)?.Placement?.MaxReplicas;
      return {
        id: s.ID,
        name: s.Spec.Name,
        mode,
        running,
        desired,
        replicas: `${running}/${desired}${max ? ` (max ${max} per node)` : ''}`,
        image: (s.Spec.TaskTemplate?.ContainerSpec?.Image ?? '').replace(/@sha256:[0-9a-f]+$/, ''),
        ports: formatPorts(s.Endpoint?.Ports ?? s.Spec.EndpointSpec?.Ports ?? []),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** `*:8080->80/tcp`, with ` (host)` for ports published on the node running the task. */
export function formatPorts(ports: EnginePort[]): string {
  return ports
    .filter((p) => p.PublishedPort)
    .map((p) => `*:${p.PublishedPort}->${p.TargetPort}/${p.Protocol}${p.PublishMode === 'host' ? ' (host)' : ''}`)
    .join(', ');
}

/** A row of `stack ps`: a `service ps` row and the task's state. */
export interface StackTaskRow extends TaskRow {
  /** Task state, lowercase, as the engine reports it. */
  state: string;
}

/** Tasks of a stack as `docker stack ps` shows them: newest first in each slot, older ones marked `\_`. */
export async function stackTasks(engine: Docker, ns: string, now = Date.now()): Promise<StackTaskRow[]> {
  const services = (await engine.listServices({ filters: nsFilter(ns) } as object)) as EngineService[];
  if (services.length === 0) return [];
  const [tasks, nodes] = await Promise.all([
    engine.listTasks({ filters: JSON.stringify({ service: services.map((s) => s.ID) }) } as object) as Promise<EngineTask[]>,
    engine.listNodes() as Promise<{ ID: string; Description?: { Hostname?: string } }[]>,
  ]);
  const hostname = new Map(nodes.map((n) => [n.ID, n.Description?.Hostname ?? n.ID]));
  const svcName = new Map(services.map((s) => [s.ID, s.Spec.Name]));
  const groups = new Map<string, EngineTask[]>();
  for (const t of tasks) {
    const key = `${svcName.get(t.ServiceID) ?? t.ServiceID}.${t.Slot ? t.Slot : (t.NodeID ?? '')}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(t);
  }
  const rows: StackTaskRow[] = [];
  const keys = [...groups.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  for (const key of keys) {
    const list = groups.get(key)!.sort((a, b) => Date.parse(b.Status.Timestamp ?? b.CreatedAt ?? '') - Date.parse(a.Status.Timestamp ?? a.CreatedAt ?? ''));
    list.forEach((t, i) => {
      const state = t.Status.State;
      rows.push({
        id: t.ID,
        name: i === 0 ? key : ` \\_ ${key}`,
        image: (t.Spec?.ContainerSpec?.Image ?? '').replace(/@sha256:[0-9a-f]+$/, ''),
        node: t.NodeID ? (hostname.get(t.NodeID) ?? t.NodeID) : '',
        desiredState: cap(t.DesiredState),
        currentState: `${cap(state)} ${ago(now - Date.parse(t.Status.Timestamp ?? '')).toLowerCase()}`,
        state,
        error: t.Status.Err ?? '',
        ports: formatPorts(t.Status.PortStatus?.Ports ?? []).replace(/ \(host\)/g, ''),
      });
    });
  }
  return rows;
}

const cap = (s: string) => (s ? s[0]!.toUpperCase() + s.slice(1) : s);

/** As the docker CLI's HumanDuration: "Less than a second ago", "5 seconds ago", "About a minute ago", ... */
export function ago(ms: number): string {
  return Number.isFinite(ms) ? `${humanDuration(ms)} ago` : '';
}

export interface RemoveResult {
  stack: string;
  services: string[];
  secrets: string[];
  configs: string[];
  networks: string[];
}

/**
 * Removes a stack as `docker stack rm` does: services, secrets, configs, then networks (once the services' tasks
 * have let go of them). Volumes stay: they hold data and live on each node.
 */
export async function removeStack(engine: Docker, ns: string, opts: { events: EventBus; timeoutS?: number }): Promise<RemoveResult> {
  const { events } = opts;
  const filters = { filters: nsFilter(ns) } as object;
  const result: RemoveResult = { stack: ns, services: [], secrets: [], configs: [], networks: [] };
  const services = (await engine.listServices(filters)) as EngineService[];
  for (const s of services.sort((a, b) => a.Spec.Name.localeCompare(b.Spec.Name))) {
    await engine.getService(s.ID).remove();
    result.services.push(s.Spec.Name);
    events.emit({ type: 'step', phase: 'stack', host: s.Spec.Name, step: 'remove', status: 'ok', message: `removed service ${s.Spec.Name}` });
  }
  for (const [kind, list, get] of [
    ['secret', (await engine.listSecrets(filters)) as EngineObject[], (id: string) => engine.getSecret(id)],
    ['config', (await engine.listConfigs(filters)) as EngineObject[], (id: string) => engine.getConfig(id)],
  ] as const) {
    for (const o of list.sort((a, b) => a.Spec.Name.localeCompare(b.Spec.Name))) {
      await get(o.ID).remove();
      (kind === 'secret' ? result.secrets : result.configs).push(o.Spec.Name);
      events.emit({ type: 'step', phase: 'stack', host: o.Spec.Name, step: 'remove', status: 'ok', message: `removed ${kind} ${o.Spec.Name}` });
    }
  }
  const networks = ((await engine.listNetworks(filters)) as { Id: string; Name: string }[]).sort((a, b) => a.Name.localeCompare(b.Name));
  const deadline = Date.now() + (opts.timeoutS ?? 90) * 1000;
  for (const n of networks) {
    // A network is in use until the removed services' tasks have shut down: retry until they have.
    for (;;) {
      try {
        await engine.getNetwork(n.Id).remove();
        break;
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status === 404) break;
        if (Date.now() > deadline) throw new SwarmformError(`stack ${ns}: could not remove network ${n.Name}: ${(err as Error).message.trim()}`, { hint: 'run stack rm again once its tasks have stopped' });
        await sleep(1000);
      }
    }
    result.networks.push(n.Name);
    events.emit({ type: 'step', phase: 'stack', host: n.Name, step: 'remove', status: 'ok', message: `removed network ${n.Name}` });
  }
  return result;
}
