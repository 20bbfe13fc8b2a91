/** Creates or updates the inventory's services through a manager's Engine API and waits for their tasks to run. */
import { SwarmformError } from '../base/errors.js';
import type { EventBus } from '../base/events.js';
import { sleep } from '../run/retry.js';
import type { ServiceSpec } from '../inventory/types.js';
import type { Member } from './members.js';
import type { EngineTask } from './service-ops.js';
import { SPEC_HASH_LABEL, toEngineSpec } from './service-spec.js';

interface EngineService {
  ID: string;
  Version: { Index: number };
  Spec: { Name: string; Labels?: Record<string, string>; Mode?: { Replicated?: { Replicas?: number }; Global?: object } };
}

/** Applies every service; returns names created, updated and unchanged. */
export async function applyServices(lead: Member, services: ServiceSpec[], cluster: string, events: EventBus) {
  const engine = lead.remote.engine();
  const existing = (await engine.listServices()) as EngineService[];
  const byName = new Map(existing.map((s) => [s.Spec.Name, s]));
  const result = { created: [] as string[], updated: [] as string[], unchanged: [] as string[] };
  for (const s of services) {
    const spec = toEngineSpec(s, cluster);
    const have = byName.get(s.name);
    const hash = (spec.Labels as Record<string, string>)[SPEC_HASH_LABEL];
    if (!have) {
      // No registry query: the image must already be on the nodes (lab hosts reach no registry).
      await engine.createService(spec);
      result.created.push(s.name);
      events.emit({ type: 'step', phase: 'workloads', host: s.name, step: 'service', status: 'ok', message: `created ${describe(s)}` });
    } else if (have.Spec.Labels?.[SPEC_HASH_LABEL] !== hash) {
      await engine.getService(have.ID).update({ _query: { version: have.Version.Index }, _body: spec });
      result.updated.push(s.name);
      events.emit({ type: 'step', phase: 'workloads', host: s.name, step: 'service', status: 'ok', message: `updated ${describe(s)}` });
    } else {
      result.unchanged.push(s.name);
      events.emit({ type: 'step', phase: 'workloads', host: s.name, step: 'service', status: 'skip', message: 'unchanged' });
    }
  }
  return result;
}

/** Waits until every named service has all its tasks running; fails naming the tasks' errors. */
export async function waitServicesConverged(lead: Member, names: string[], events: EventBus, timeoutS = 180): Promise<void> {
  const engine = lead.remote.engine();
  const deadline = Date.now() + timeoutS * 1000;
  const lastReport = new Map<string, string>();
  let pollMs = 100;
  const started = Date.now();
  for (;;) {
    const services = ((await engine.listServices()) as EngineService[]).filter((s) => names.includes(s.Spec.Name));
    const tasks = (await engine.listTasks({ filters: JSON.stringify({ 'desired-state': ['running'] }) } as object)) as EngineTask[];
    const pending: string[] = [];
    for (const svc of services) {
      const mine = tasks.filter((t) => t.ServiceID === svc.ID);
      const running = mine.filter((t) => t.Status.State === 'running').length;
      const desired = svc.Spec.Mode?.Replicated ? (svc.Spec.Mode.Replicated.Replicas ?? 0) : mine.length;
      const line = `${running}/${desired} tasks running`;
      if (lastReport.get(svc.Spec.Name) !== line) {
        lastReport.set(svc.Spec.Name, line);
        events.emit({ type: 'step', phase: 'workloads', host: svc.Spec.Name, step: 'converge', status: running >= desired && desired > 0 ? 'ok' : 'start', message: line });
      }
      if (running < desired || desired === 0) pending.push(svc.Spec.Name);
    }
    if (pending.length === 0) return;
    if (Date.now() > deadline) {
      const errors = await taskErrors(lead, services.filter((s) => pending.includes(s.Spec.Name)));
      throw new SwarmformError(`services not converged after ${timeoutS} s: ${pending.map((n) => `${n} (${lastReport.get(n)})`).join(', ')}${errors ? `\n${errors}` : ''}`, {
        hint: 'look at `swarmform ssh <manager> -- docker service ps --no-trunc <service>`',
      });
    }
    // A look every 100 ms for the first 3 s (most tasks start within a second), then slowing to once a second: a
    // short `up` is not padded to the next whole second, and a long convergence does not list every task 10 times a second.
    await sleep(pollMs);
    if (Date.now() - started > 3000) pollMs = Math.min(1000, pollMs * 1.5);
  }
}

async function taskErrors(lead: Member, services: EngineService[]): Promise<string> {
  const lines: string[] = [];
  for (const svc of services) {
    const tasks = (await lead.remote.engine().listTasks({ filters: JSON.stringify({ service: [svc.ID] }) } as object)) as EngineTask[];
    for (const t of tasks.filter((t) => t.Status.Err).slice(-3)) lines.push(`  ${svc.Spec.Name}.${t.Slot ?? ''} on ${t.NodeID?.slice(0, 12) ?? '?'}: ${t.Status.State}: ${t.Status.Err}`);
  }
  return lines.join('\n');
}

function describe(s: ServiceSpec): string {
  const mode = s.mode === 'global' ? 'global' : `${s.replicas} replicas`;
  const ports = s.ports.map((p) => `${p.published}:${p.target}/${p.protocol} (${p.mode})`).join(', ');
  return `${s.image}, ${mode}${ports ? `, ports ${ports}` : ''}`;
}
