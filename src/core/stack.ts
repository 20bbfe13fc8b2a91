/**
 * `stack deploy|ls|services|ps|rm`: compose stacks through a manager's Engine API (withManager), as the docker CLI's
 * `docker stack` commands do. Compose files are loaded and validated in full before any connection is made.
 */
import { convertStack, type StackPlan } from '../swarm/compose/convert.js';
import { loadStack } from '../swarm/compose/load.js';
import type { LoadedStack } from '../swarm/compose/model.js';
import type { Member } from '../swarm/members.js';
import { waitServicesConverged } from '../swarm/services.js';
import { type DeployResult, deployStack, listStacks, removeStack, type RemoveResult, type StackServiceRow, type StackSummary, stackServices, stackTasks, type StackTaskRow } from '../swarm/stacks.js';
import { phase } from '../run/phase.js';
import type { Context } from '../cluster/context.js';
import type { EventBus, Phase } from '../base/events.js';
import { withManager } from '../cluster/manager.js';

export interface StackDeployOptions {
  name: string;
  files: string[];
  /** Extra interpolation variables (the inventory's `env:`). */
  env?: Record<string, string>;
  /** Remove services of the stack that the files no longer name. */
  prune?: boolean;
  /** Return once the engine has the specs, without waiting for tasks to run. */
  detach?: boolean;
  /** Seconds to wait for every task to run. */
  timeoutS?: number;
}

export interface StackDeployResult extends DeployResult {
  warnings: string[];
  /** Services, networks, secrets and configs created, updated or removed. */
  changed: number;
}

/** Loads and converts a stack; throws InventoryError (exit 2) naming file, line and key on any problem. */
export function planStack(name: string, files: string[], env: Record<string, string> = {}): { loaded: LoadedStack; plan: StackPlan } {
  const loaded = loadStack(name, files, { env });
  return { loaded, plan: convertStack(name, loaded.project) };
}

/** Warnings for the lab, whose kernel has no IPVS: the routing mesh and virtual IPs do not answer there. */
export function labWarnings(plan: StackPlan): string[] {
  const out: string[] = [];
  for (const s of plan.services) {
    const ports = ((s.spec.EndpointSpec as { Ports?: { PublishMode?: string; PublishedPort?: number }[] }).Ports ?? []).filter((p) => p.PublishMode !== 'host');
    if (ports.length) {
      out.push(`service ${s.name} publishes ${ports.map((p) => p.PublishedPort ?? 'a port').join(', ')} in ingress mode: the lab kernel has no IPVS, so the routing mesh does not answer there; use mode: host`);
    }
  }
  const vip = plan.services.filter((s) => (s.spec.EndpointSpec as { Mode?: string }).Mode !== 'dnsrr').map((s) => s.name);
  if (vip.length && plan.services.length > 1) {
    out.push(`service(s) ${vip.join(', ')} use endpoint_mode vip (the default): the lab kernel has no IPVS, so their virtual IPs do not answer other services; set deploy.endpoint_mode: dnsrr`);
  }
  return out;
}

/** Some of the cluster's hosts have no IPVS (the lab's): no routing mesh, no virtual IPs. */
const lacksIpvs = (ctx: Context) => ctx.providers.some((p) => !p.provider.info().ingressMesh);

/** `stack deploy`: validate everything, then create or update through the leader and (unless detached) wait for tasks. */
export async function stackDeploy(ctx: Context, opts: StackDeployOptions): Promise<StackDeployResult> {
  const { loaded, plan } = planStack(opts.name, opts.files, opts.env);
  const warnings = [...loaded.warnings, ...(lacksIpvs(ctx) ? labWarnings(plan) : [])];
  for (const w of warnings) ctx.events.warn(`stack ${opts.name}: ${w}`);
  return withManager(ctx, async (h) => {
    const lead: Member = { machine: h.machine, remote: h.remote, advertise: h.machine.privateAddress };
    const r = await applyStack(lead, plan, ctx.events, { phase: 'stack', prune: opts.prune, wait: !opts.detach, timeoutS: opts.timeoutS });
    return { ...r, warnings };
  });
}

/** Deploys one converted stack through `lead` and waits for its services' tasks (shared by `stack deploy` and `up`). */
export async function applyStack(
  lead: Member,
  plan: StackPlan,
  events: EventBus,
  opts: { phase: Phase; prune?: boolean; wait: boolean; timeoutS?: number; ownPhase?: boolean },
): Promise<DeployResult & { changed: number }> {
  const run = () => deployStack(lead.remote.engine(), plan, { events, phase: opts.phase, prune: opts.prune });
  const total = plan.services.length + plan.networks.length + plan.secrets.length + plan.configs.length;
  const r = opts.ownPhase === false ? await run() : await phase(events, opts.phase, total, run);
  const changed = r.created.length + r.updated.length + r.removed.length + r.networks.length + r.secrets.length + r.configs.length;
  if (opts.wait) {
    const names = plan.services.filter((s) => !isJobOrZero(s.spec)).map((s) => s.name);
    if (names.length) await waitServicesConverged(lead, names, events, opts.timeoutS);
  }
  return { ...r, changed };
}

function isJobOrZero(spec: Record<string, unknown>): boolean {
  const mode = spec.Mode as { Replicated?: { Replicas?: number }; ReplicatedJob?: object; GlobalJob?: object };
  return Boolean(mode.ReplicatedJob || mode.GlobalJob || (mode.Replicated && mode.Replicated.Replicas === 0));
}

/** `up`'s part: deploys each inventory stack in the workloads phase, waits for it, and returns how many things changed. */
export async function applyInventoryStacks(lead: Member, stacks: ReturnType<typeof planInventoryStacks>, events: EventBus): Promise<number> {
  let changed = 0;
  for (const s of stacks) {
    for (const w of s.warnings) events.warn(`stack ${s.name}: ${w}`);
    const r = await applyStack(lead, s.plan, events, { phase: 'workloads', wait: true, ownPhase: false });
    changed += r.changed;
    events.emit({ type: 'step', phase: 'workloads', host: s.name, step: 'stack', status: r.changed ? 'ok' : 'skip', message: r.changed ? `stack ${s.name}: ${r.changed} change(s)` : `stack ${s.name}: unchanged` });
  }
  return changed;
}

/** Loads every stack of the inventory (before anything changes); throws InventoryError on any problem. */
export function planInventoryStacks(ctx: Context): { name: string; plan: StackPlan; warnings: string[] }[] {
  return ctx.inventory.stacks.map((s) => {
    const { loaded, plan } = planStack(s.name, s.files, s.env);
    return { name: s.name, plan, warnings: [...loaded.warnings, ...(lacksIpvs(ctx) ? labWarnings(plan) : [])] };
  });
}

export function stackLs(ctx: Context): Promise<StackSummary[]> {
  return withManager(ctx, (h) => listStacks(h.engine));
}

export function stackServicesOf(ctx: Context, name: string): Promise<StackServiceRow[]> {
  return withManager(ctx, (h) => stackServices(h.engine, name));
}

export function stackPs(ctx: Context, name: string): Promise<StackTaskRow[]> {
  return withManager(ctx, (h) => stackTasks(h.engine, name));
}

export function stackRm(ctx: Context, name: string): Promise<RemoveResult> {
  return withManager(ctx, (h) => removeStack(h.engine, name, { events: ctx.events }));
}
