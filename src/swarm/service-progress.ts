/**
 * Convergence progress of a service, as the docker CLI shows it after `service create/update/scale/rollback`:
 * one line per slot (replicated) or node (global) with the task's state, "overall progress: N out of M tasks",
 * then "verify: Waiting N seconds to verify that tasks are stable..." and "verify: Service converged". Updates and
 * rollbacks follow the service's UpdateStatus (updating, completed, paused, rollback_started, rollback_completed).
 *
 * The tracker is pure (service + up-to-date tasks + nodes in, progress events out); `watchService` polls the engine.
 */
import type Docker from 'dockerode';
import { SwarmformError } from '../base/errors.js';
import type { SwarmformEvent } from '../base/events.js';
import { sleep } from '../run/retry.js';
import type { EngineService, EngineTask } from './service-ops.js';

/** One progress line as the tracker makes it: the EventBus's `progress` event without its timestamp. */
export type ServiceProgressEvent = Omit<Extract<SwarmformEvent, { type: 'progress' }>, 'ts'>;

export type ProgressSink = (e: ServiceProgressEvent) => void;

const STATES = ['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running', 'complete', 'shutdown', 'failed', 'rejected'];
/** docker's numbered states: new=1 .. running=9, then terminal states. */
export const stateNumber = (s: string): number => STATES.indexOf(s) + 1;
const RUNNING = stateNumber('running');
const terminal = (s: string) => stateNumber(s) > RUNNING;
const LONGEST_STATE = Math.max(...STATES.filter((s) => !terminal(s) || s === 'complete').map((s) => s.length));
/** Beyond this many tasks the per-task lines are left out, as in the docker CLI. */
export const MAX_TASK_LINES = 20;

/** docker truncates task errors to 75 characters on one line. */
export function truncError(msg: string): string {
  const one = msg.replace(/\n/g, ' ');
  return one.length > 75 ? `${one.slice(0, 74)}…` : one;
}

/** Picks per slot (or node) the task with the lowest desired state, then the most advanced observed state. */
function pick<K>(tasks: EngineTask[], keyOf: (t: EngineTask) => K, skip: (t: EngineTask) => boolean): Map<K, EngineTask> {
  const out = new Map<K, EngineTask>();
  for (const t of tasks) {
    if (!stateNumber(t.DesiredState) || !stateNumber(t.Status.State)) continue;
    const k = keyOf(t);
    const have = out.get(k);
    if (have) {
      if (stateNumber(have.DesiredState) < stateNumber(t.DesiredState)) continue;
      if (stateNumber(have.DesiredState) === stateNumber(t.DesiredState) && stateNumber(have.Status.State) <= stateNumber(t.Status.State)) continue;
    }
    if (skip(t)) continue;
    out.set(k, t);
  }
  return out;
}

/** Follows one service's tasks and says which lines change; `update` returns whether every task runs. */
export class ProgressTracker {
  private initialized = false;
  private done = false;
  private readonly slotMap = new Map<number, number>();
  private readonly last = new Map<string, string>();

  constructor(
    private readonly service: string,
    private readonly emit: ProgressSink,
  ) {}

  /** Emits a line unless it says exactly what it said last time. */
  line(id: string, action: string, extra: Partial<ServiceProgressEvent> = {}): void {
    const key = `${action}|${extra.current ?? ''}|${extra.error ?? ''}`;
    if (this.last.get(id) === key) return;
    this.last.set(id, key);
    this.emit({ type: 'progress', service: this.service, id, action, ...extra });
  }

  private overall(n: number, m: number, rollback: boolean): void {
    this.line('overall progress', rollback ? `rolling back update: ${n} out of ${m} tasks` : `${n} out of ${m} tasks`);
  }

  private task(id: string, t: EngineTask): void {
    if (t.Status.Err) this.line(id, truncError(t.Status.Err), { error: true });
    else if (!terminal(t.DesiredState) && !terminal(t.Status.State)) {
      this.line(id, t.Status.State.padEnd(LONGEST_STATE), { current: stateNumber(t.Status.State), total: RUNNING });
    }
  }

  /** One poll: the service, its up-to-date tasks, and the ids of nodes that are not down. */
  update(svc: EngineService, tasks: EngineTask[], activeNodes: Set<string>, rollback: boolean): boolean {
    return svc.Spec.Mode?.Global ? this.updateGlobal(tasks, activeNodes, rollback) : this.updateReplicated(svc, tasks, activeNodes, rollback);
  }

  private updateReplicated(svc: EngineService, tasks: EngineTask[], activeNodes: Set<string>, rollback: boolean): boolean {
    const replicas = svc.Spec.Mode?.Replicated?.Replicas ?? 0;
    if (!this.initialized) {
      this.overall(0, replicas, rollback);
      if (replicas <= MAX_TASK_LINES) for (let i = 1; i <= replicas; i++) this.line(`${i}/${replicas}`, ' ');
      this.initialized = true;
    }
    const bySlot = pick(tasks, (t) => t.Slot ?? 0, (t) => Boolean(t.NodeID && !activeNodes.has(t.NodeID)));
    if (this.done && [...bySlot.values()].some((t) => t.Status.State !== 'running')) this.done = false;
    let running = 0;
    for (const t of [...bySlot.values()].sort((a, b) => (a.Slot ?? 0) - (b.Slot ?? 0))) {
      let mapped = this.slotMap.get(t.Slot ?? 0);
      if (mapped === undefined) {
        mapped = this.slotMap.size + 1;
        this.slotMap.set(t.Slot ?? 0, mapped);
      }
      if (!terminal(t.DesiredState) && t.Status.State === 'running') running++;
      if (!this.done && replicas <= MAX_TASK_LINES && mapped <= replicas) this.task(`${mapped}/${replicas}`, t);
    }
    if (!this.done) {
      this.overall(running, replicas, rollback);
      if (running === replicas) this.done = true;
    }
    return running === replicas;
  }

  private updateGlobal(tasks: EngineTask[], activeNodes: Set<string>, rollback: boolean): boolean {
    const byNode = pick(tasks, (t) => t.NodeID ?? '', () => false);
    const nodeCount = byNode.size;
    if (!this.initialized) {
      if (nodeCount === 0) {
        this.line('overall progress', 'waiting for new tasks');
        return false;
      }
      this.overall(0, nodeCount, rollback);
      this.initialized = true;
    }
    if (this.done && [...byNode.values()].some((t) => t.Status.State !== 'running')) this.done = false;
    let running = 0;
    for (const t of [...byNode.values()].sort((a, b) => (a.NodeID ?? '').localeCompare(b.NodeID ?? ''))) {
      if (!activeNodes.has(t.NodeID ?? '')) continue;
      if (!terminal(t.DesiredState) && t.Status.State === 'running') running++;
      if (!this.done && nodeCount <= MAX_TASK_LINES) this.task((t.NodeID ?? '').slice(0, 12), t);
    }
    if (!this.done) {
      this.overall(running, nodeCount, rollback);
      if (running === nodeCount) this.done = true;
    }
    return running === nodeCount;
  }
}

/** How a watch ended. */
export interface WatchOutcome {
  /** Every task runs and stayed running for the monitor period. */
  converged: boolean;
  /** The update was rolled back (automatically or on request); the engine's message. */
  rolledBack?: string;
}

/** The engine reached a state the user must act on (update paused, rollback paused). */
export class UpdatePausedError extends SwarmformError {}

export interface WatchOptions {
  signal?: AbortSignal;
  /** Poll interval (docker: 200 ms). */
  pollMs?: number;
  /** Give up after this long and say the operation goes on in the background. */
  timeoutS?: number;
}

/**
 * Polls the service until it converges (docker CLI's algorithm), emitting progress lines. Throws UpdatePausedError
 * when the update or rollback paused; returns `rolledBack` when the engine rolled the update back.
 */
export async function watchService(engine: Docker, serviceId: string, emit: ProgressSink, opts: WatchOptions = {}): Promise<WatchOutcome> {
  const pollMs = opts.pollMs ?? 200;
  const deadline = Date.now() + (opts.timeoutS ?? 600) * 1000;
  let tracker: ProgressTracker | undefined;
  let converged = false;
  let convergedAt = 0;
  let rollback = false;
  let rolledBack: string | undefined;
  /** Why a rollback started (the engine's message): set for automatic and requested rollbacks alike. */
  let rollbackReason: string | undefined;
  let monitorMs = 5000;
  /** Tasks of the update's own spec, seen while it ran: if the engine rolls back between two polls, one of them failed. */
  const updateTasks = new Set<string>();
  for (;;) {
    const svc = (await engine.getService(serviceId).inspect()) as EngineService;
    const name = svc.Spec.Name ?? serviceId;
    tracker ??= new ProgressTracker(name, emit);
    if (svc.Spec.UpdateConfig?.Monitor) monitorMs = svc.Spec.UpdateConfig.Monitor / 1e6;
    const us = svc.UpdateStatus;
    switch (us?.State) {
      case 'updating':
        rollback = false;
        break;
      case 'completed':
        if (!converged) return { converged: true };
        break;
      case 'paused':
        throw new UpdatePausedError(`service ${name}: update paused: ${us.Message ?? ''}`.trim(), {
          hint: `look at \`swarmform service ps ${name}\`; then \`swarmform service update ${name}\` to resume, or \`swarmform service rollback ${name}\``,
        });
      case 'rollback_started':
        if (!rollback && us.Message) tracker.line('rollback', us.Message);
        rollbackReason ??= us.Message ?? 'rollback started';
        rollback = true;
        break;
      case 'rollback_paused':
        throw new UpdatePausedError(`service ${name}: rollback paused: ${us.Message ?? ''}`.trim(), { hint: `look at \`swarmform service ps ${name}\`` });
      case 'rollback_completed':
        // The whole rollback can fall between two polls on a busy manager: its reason (the engine's rollback_started
        // message) is then gone, and the task that failed says it instead.
        if (!rollback && !rollbackReason && updateTasks.size > 0) {
          const reason = await failedTaskReason(engine, svc.ID, updateTasks);
          if (reason) {
            tracker.line('rollback', reason);
            rollbackReason = reason;
          }
        }
        if (!converged) rolledBack = us.Message ?? 'rollback completed';
        rollbackReason ??= us.Message ?? 'rolled back';
        rollback = true;
        break;
      default:
    }
    // Unlike the docker CLI, an update still marked in progress is not called converged: the engine marks it
    // completed only after its own monitor period, and a script reading UpdateStatus right after us must see the end.
    const stillUpdating = us?.State === 'updating' || us?.State === 'rollback_started';
    if (converged && !stillUpdating && Date.now() - convergedAt >= monitorMs) {
      tracker.line('verify', 'Service converged');
      if (rolledBack) tracker.line('rollback', rolledBack);
      return { converged: true, rolledBack: rollbackReason ?? rolledBack };
    }
    const [tasks, nodes] = await Promise.all([
      engine.listTasks({ filters: JSON.stringify({ service: [svc.ID], '_up-to-date': ['true'] }) } as object) as Promise<EngineTask[]>,
      engine.listNodes() as Promise<{ ID: string; Status?: { State?: string } }[]>,
    ]);
    const active = new Set(nodes.filter((n) => n.Status?.State !== 'down').map((n) => n.ID));
    if (us?.State === 'updating') for (const t of tasks) updateTasks.add(t.ID);
    converged = tracker.update(svc, tasks, active, rollback);
    if (converged) {
      if (!convergedAt) convergedAt = Date.now();
      const wait = monitorMs - (Date.now() - convergedAt);
      if (wait >= 0) tracker.line('verify', `Waiting ${Math.floor(wait / 1000) + 1} seconds to verify that tasks are stable...`);
    } else {
      if (convergedAt) tracker.line('verify', 'Detected task failure');
      convergedAt = 0;
    }
    if (Date.now() > deadline) return { converged: false, rolledBack: rollbackReason ?? rolledBack };
    await sleep(pollMs, opts.signal);
  }
}

/**
 * Why an update was rolled back when its rollback_started state was never seen: the first of the update's tasks that
 * failed, in the words the engine uses for it, with the task's error.
 */
async function failedTaskReason(engine: Docker, serviceId: string, updateTasks: Set<string>): Promise<string | undefined> {
  const tasks = (await engine.listTasks({ filters: JSON.stringify({ service: [serviceId] }) } as object)) as EngineTask[];
  const failed = tasks
    .filter((t) => updateTasks.has(t.ID) && (['failed', 'rejected'].includes(t.Status.State) || t.Status.Err))
    .sort((a, b) => Date.parse(a.Status.Timestamp ?? '') - Date.parse(b.Status.Timestamp ?? ''));
  const t = failed[0];
  if (!t) return undefined;
  return `update rolled back due to failure or early termination of task ${t.ID}${t.Status.Err ? ` (${truncError(t.Status.Err)})` : ''}`;
}
