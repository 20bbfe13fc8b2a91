/**
 * `up`: inventory -> provision -> bootstrap -> images -> swarm -> workloads -> status, as a list of phase objects
 * sharing one run (kind's actions, k0sctl's phases; see ./phases); provision and bootstrap overlap (each machine is
 * bootstrapped as it arrives). Each phase observes before it changes, so a second run changes nothing; hosts that
 * fail are reported and left out of later phases while the rest go on (exit 3, partial). `plan` is the same list's
 * dry run.
 */
import { PartialError, UsageError } from '../base/errors.js';
import type { Machine } from '../base/machine.js';
import type { Context } from '../cluster/context.js';
import { Sessions } from '../cluster/sessions.js';
import { checkReachability } from '../providers/reachability.js';
import { throwIfCancelled } from '../run/cancelled.js';
import { Feed } from '../run/feed.js';
import { phase } from '../run/phase.js';
import type { Member } from '../swarm/members.js';
import { type ClusterStatus, readStatus } from '../swarm/status.js';
import { bootstrapPhase, preparePhase } from './phases/bootstrap.js';
import { imagesPhase } from './phases/images.js';
import { failureOf, reaches, type UpOptions, type UpPhaseStep, type UpResult, type UpRun } from './phases/phase.js';
import { provisionPhase } from './phases/provision.js';
import { swarmPhase } from './phases/swarm.js';
import { workloadsPhase } from './phases/workloads.js';
import { planInventoryStacks } from './stack.js';

export type { UpOptions, UpPhase, UpResult } from './phases/phase.js';

/** The phases of `up`, in order; `plan` describes the same list. */
export const UP_PHASES: readonly UpPhaseStep[] = [preparePhase, provisionPhase, bootstrapPhase, imagesPhase, swarmPhase, workloadsPhase];

/** Runs the pipeline; throws PartialError (exit 3) when some hosts failed but the rest are done. */
export async function up(ctx: Context, opts: UpOptions = {}): Promise<UpResult> {
  const { inventory, events, state } = ctx;
  // Hosts whose advertise addresses cannot reach each other would be created and then fail every join: refused
  // before anything is touched (the same offline check `plan` prints).
  const reach = checkReachability(inventory, ctx.providers.map(({ provider, hosts }) => ({ name: provider.name, hosts })));
  if (!reach.ok) {
    throw new UsageError(`${inventory.file}: the hosts could not reach each other over the swarm ports:\n  ${reach.lines.join('\n  ')}`, {
      hint: 'fix swarm.advertise or providers.<name>.swarmFrom as said above; `swarmform plan` shows the check',
    });
  }
  const result: UpResult = {
    cluster: inventory.cluster,
    changed: 0,
    changes: { provision: 0, bootstrap: 0, images: 0, swarm: 0, workloads: 0 },
    failures: [],
    endpoints: [],
    phaseMs: {},
  };
  const stop = new AbortController();
  // Compose stacks are loaded and validated in full before anything is touched.
  const stacks = reaches(opts, 'workloads') ? planInventoryStacks(ctx) : [];
  for (const { provider } of ctx.providers) await provider.preflight(ctx.providerContext);
  const release = await state.lock();
  const run: UpRun = {
    ctx,
    opts,
    result,
    sessions: new Sessions(await state.knownHosts(), events),
    stop,
    signal: ctx.signal ? AbortSignal.any([ctx.signal, stop.signal]) : stop.signal,
    fail: (host, step, err) => result.failures.push(failureOf(host, step, err)),
    memberCidrs: inventory.swarm.advertise.kind === 'cidr' ? [inventory.swarm.advertise.cidr] : undefined,
    prepared: { plans: new Map(), images: [] },
    arrived: new Feed<Machine>(),
    facts: new Map(),
    ready: [],
    stacks,
  };
  try {
    await runPhases(run, UP_PHASES);
    return await finish(run, run.lead);
  } finally {
    run.sessions.closeAll();
    await release();
  }
}

/**
 * Runs each phase that has work, in order. A phase that overlaps the next is started and awaited together with it;
 * whichever of them throws stops the other from starting more hosts, and the first phase's error wins.
 */
async function runPhases(run: UpRun, phases: readonly UpPhaseStep[]): Promise<void> {
  let overlapping: Promise<void>[] = [];
  let started = false;
  for (const p of phases) {
    if (!p.shouldRun(run)) continue;
    if (started && overlapping.length === 0) throwIfCancelled(run.ctx.signal);
    started = true;
    const running = timed(run, p).catch((err: unknown) => {
      run.stop.abort(err);
      throw err;
    });
    overlapping.push(running);
    if (p.overlapsNext) continue;
    const settled = await Promise.allSettled(overlapping);
    overlapping = [];
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
  }
  const settled = await Promise.allSettled(overlapping);
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
}

/** One phase: start and end events (hosts counted once each, from their step events) and its wall time. */
async function timed(run: UpRun, p: UpPhaseStep): Promise<void> {
  if (p.name === 'prepare') return p.run(run);
  const name = p.name;
  const t0 = Date.now();
  try {
    await phase(run.ctx.events, name, p.total?.(run) ?? 0, () => p.run(run));
  } finally {
    run.result.phaseMs[name] = Date.now() - t0;
  }
}

async function finish(run: UpRun, lead?: Member): Promise<UpResult> {
  const { result } = run;
  result.changed = Object.values(result.changes).reduce((a, b) => a + b, 0);
  if (lead) {
    result.status = await readStatus(lead.remote.engine(), run.ctx.inventory.cluster, lead.machine.name);
    result.endpoints = await endpoints(lead, result.status);
  }
  if (result.failures.length > 0) {
    const err = new PartialError(
      `${new Set(result.failures.map((f) => f.host)).size} host(s) failed; the rest are done and recorded. Run \`up\` again to finish them.`,
      result.failures,
    );
    (err as PartialError & { result?: UpResult }).result = result;
    throw err;
  }
  return result;
}

/** `http://address:port` for each host-mode port on each node running one of the service's tasks. */
async function endpoints(lead: Member, status: ClusterStatus): Promise<{ service: string; url: string }[]> {
  const engine = lead.remote.engine();
  const services = (await engine.listServices()) as {
    ID: string;
    Spec: { Name: string; EndpointSpec?: { Ports?: { PublishedPort: number; PublishMode?: string; Protocol: string }[] } };
  }[];
  const withHostPorts = services.filter((s) => s.Spec.EndpointSpec?.Ports?.some((p) => p.PublishMode === 'host' && p.Protocol === 'tcp'));
  if (withHostPorts.length === 0) return [];
  const tasks = (await engine.listTasks({ filters: JSON.stringify({ 'desired-state': ['running'] }) } as object)) as {
    ServiceID: string;
    NodeID: string;
    Status: { State: string };
  }[];
  const addr = new Map(status.nodes.map((n) => [n.id, n.address]));
  const out: { service: string; url: string }[] = [];
  for (const s of withHostPorts) {
    for (const t of tasks.filter((t) => t.ServiceID === s.ID && t.Status.State === 'running')) {
      for (const p of s.Spec.EndpointSpec!.Ports!.filter((p) => p.PublishMode === 'host' && p.Protocol === 'tcp')) {
        const a = addr.get(t.NodeID);
        if (a) out.push({ service: s.Spec.Name, url: `http://${a}:${p.PublishedPort}/` });
      }
    }
  }
  return out.sort((a, b) => a.url.localeCompare(b.url, undefined, { numeric: true }));
}
