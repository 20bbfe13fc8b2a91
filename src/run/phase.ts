import type { EventBus, Phase, SwarmformEvent } from '../base/events.js';

type Outcome = 'ok' | 'fail' | 'skip';

/**
 * Emits the phase's start and end events around `fn`. The end counts hosts, not steps: a host counts once, as
 * failed if any of its steps in this phase failed, else ok if any step was done, else skipped. Rethrows fn's error
 * after emitting the end event.
 */
export async function phase<R>(events: EventBus, name: Phase, total: number, fn: () => Promise<R>): Promise<R> {
  const outcomes = new Map<string, Outcome>();
  const off = events.on((e: SwarmformEvent) => {
    if (e.type !== 'step' || e.phase !== name) return;
    if (e.status !== 'ok' && e.status !== 'fail' && e.status !== 'skip') return;
    if (outcomes.get(e.host) !== 'fail') outcomes.set(e.host, e.status);
  });
  const t0 = performance.now();
  events.emit({ type: 'phase', phase: name, status: 'start', total });
  const end = (): void => {
    off();
    let ok = 0;
    let failed = 0;
    let skipped = 0;
    for (const o of outcomes.values()) {
      if (o === 'ok') ok++;
      else if (o === 'fail') failed++;
      else skipped++;
    }
    outcomes.clear();
    events.emit({ type: 'phase', phase: name, status: 'end', ok, failed, skipped, ms: Math.round(performance.now() - t0) });
  };
  try {
    const value = await fn();
    end();
    return value;
  } catch (err) {
    end();
    throw err;
  }
}
