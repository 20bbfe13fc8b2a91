/**
 * Typed events: the core never prints. Renderers (listr2 rows, an aggregate line, JSON lines) subscribe to a bus.
 * Messages never carry secrets: join tokens and keys stay in the state files.
 */
export type Phase = 'plan' | 'provision' | 'bootstrap' | 'swarm' | 'images' | 'workloads' | 'status' | 'teardown' | 'exec' | 'raft' | 'service' | 'stack' | 'node';

export type StepStatus = 'start' | 'ok' | 'skip' | 'fail' | 'retry';

export type SwarmformEvent =
  | { type: 'phase'; phase: Phase; status: 'start'; total: number; ts: number }
  | { type: 'phase'; phase: Phase; status: 'end'; ok: number; failed: number; skipped: number; ms: number; ts: number }
  | {
      type: 'step';
      phase: Phase;
      host: string;
      step: string;
      status: StepStatus;
      /** What was done or skipped, or why it failed. */
      message?: string;
      attempt?: number;
      ms?: number;
      ts: number;
    }
  | { type: 'log'; level: 'info' | 'warn'; message: string; host?: string; ts: number }
  | {
      /** A line of a service's convergence progress, keyed like docker's JSON progress messages (swarm/service-progress). */
      type: 'progress';
      service: string;
      /** Which line this updates: `overall progress`, `1/3`, a node id, `verify`, `rollback`. */
      id: string;
      /** What the line says after `id: `. */
      action: string;
      /** Task state as a step of 9 (new .. running), for a bar; only on task lines. */
      current?: number;
      total?: number;
      /** The line reports a task error. */
      error?: boolean;
      ts: number;
    }
  | { type: 'result'; command: string; data: unknown; ts: number };

/** Distributes events to listeners; listeners must be fast (they run inline). */
export class EventBus {
  private listeners: ((e: SwarmformEvent) => void)[] = [];

  on(listener: (e: SwarmformEvent) => void): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  emit(e: DistributiveOmit<SwarmformEvent, 'ts'>): void {
    const full = { ...e, ts: Date.now() } as SwarmformEvent;
    for (const l of this.listeners) l(full);
  }

  info(message: string, host?: string): void {
    this.emit({ type: 'log', level: 'info', message, host });
  }

  warn(message: string, host?: string): void {
    this.emit({ type: 'log', level: 'warn', message, host });
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
