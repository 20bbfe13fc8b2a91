/**
 * Large clusters on a terminal: one line per running phase, redrawn in place at most 10 times a second, with what the
 * running hosts are doing and the last three failures under it. Finished phases, warnings and info lines scroll above
 * the live region. Cost per event is O(1) whatever the cluster size; nothing per host is drawn.
 *   bootstrap  1532/4700 done  3 failed  32 running  41.2/s  ETA 1:17
 *     now: install engine 29, start engine 3
 *     ✖ worker-0917: install engine: command failed (exit 100): E: Failed to fetch ...
 */
import type { Phase, SwarmformEvent } from '../../base/events.js';
import { redact } from '../../state/redact.js';
import { FailureLog } from './failures.js';
import { bareMessage, clock, duration, fit } from './format.js';
import { PhaseProgress } from './phase-progress.js';
import type { Renderer, RendererSettings } from './types.js';

/** Least time between two redraws. */
export const REDRAW_MS = 100;

export function createAggregateRenderer(s: RendererSettings): Renderer {
  const active = new Map<Phase, PhaseProgress>();
  const failures = new FailureLog();
  let drawn = 0; // lines of the live region currently on screen
  let dirty = false;
  let lastDraw = 0;
  let timer: NodeJS.Timeout | undefined;
  let finished = false;

  const width = (): number => (s.stream.columns && s.stream.columns > 0 ? s.stream.columns : 80) - 1;

  const steps = new StepCounts();

  const region = (now: number): string[] => {
    const lines: string[] = [];
    for (const p of active.values()) {
      lines.push(aggregateLine(p, now));
      const doing = steps.line(p.phase);
      if (doing) lines.push(`  now: ${doing}`);
      for (const f of p.recent) lines.push(`  ✖ ${f.host}: ${f.step}: ${bareMessage(f.message, f.host, f.step).split('\n')[0]}`);
    }
    return lines.map((l) => fit(redact(l), width()));
  };

  /** Rewrites the live region, with `above` printed permanently before it. One write, so no flicker. */
  const draw = (above: string[] = []): void => {
    const now = s.now();
    let out = drawn > 0 ? `\x1b[${drawn}A\r\x1b[0J` : '';
    for (const l of above) out += `${redact(l)}\n`;
    const lines = finished ? [] : region(now);
    for (const l of lines) out += `${l}\n`;
    drawn = lines.length;
    dirty = false;
    lastDraw = now;
    if (out) s.stream.write(out);
  };

  const ensureTimer = (): void => {
    if (timer || finished) return;
    timer = setInterval(() => {
      // Redraw when something changed, and once a second anyway so the rate and ETA move.
      if (dirty || s.now() - lastDraw >= 1000) draw();
    }, REDRAW_MS);
    timer.unref();
  };

  const progressOf = (phase: Phase, ts: number): PhaseProgress => {
    let p = active.get(phase);
    if (!p) active.set(phase, (p = new PhaseProgress(phase, s.hosts, ts)));
    return p;
  };

  const listener = (e: SwarmformEvent): void => {
    if (finished) return;
    failures.add(e);
    switch (e.type) {
      case 'phase':
        if (e.status === 'start') {
          active.set(e.phase, new PhaseProgress(e.phase, e.total, e.ts));
          ensureTimer();
          draw();
        } else {
          const p = active.get(e.phase);
          active.delete(e.phase);
          steps.clear(e.phase);
          const cancelled = p && p.cancelled > 0 ? `  (${p.cancelled} not started: cancelled)` : '';
          const total = p?.total ?? e.ok + e.failed + e.skipped;
          draw([`${e.phase.padEnd(10)} ${e.ok + e.skipped}/${total} done  ${e.failed} failed  in ${duration(e.ms)}${cancelled}`]);
        }
        return;
      case 'step':
        progressOf(e.phase, e.ts).step(e);
        steps.step(e);
        ensureTimer();
        dirty = true;
        return;
      case 'log':
        if (e.level === 'warn') draw([`warning: ${e.host ? `${e.host}: ` : ''}${e.message}`]);
        else if (!e.host) draw([e.message]);
        return;
      case 'result':
        return;
    }
  };

  return {
    mode: 'aggregate',
    listener,
    done: async () => {
      if (finished) return;
      if (timer) clearInterval(timer);
      timer = undefined;
      const now = s.now();
      // Phases that never ended (an error stopped the run): leave their last state on screen.
      const left = [...active.values()].map((p) => aggregateLine(p, now));
      finished = true;
      draw(left);
      active.clear();
    },
    summary: () => failures.lines(),
  };
}

/** `swarm      1532/2384 done  3 failed  12 running  41.2/s  ETA 0:21`. */
export function aggregateLine(p: PhaseProgress, now: number): string {
  const rate = p.rate(now);
  const eta = p.eta(rate);
  return `${p.phase.padEnd(10)} ${p.done}/${p.total} done  ${p.failed} failed  ${p.running} running  ${rate.toFixed(1)}/s  ETA ${eta === undefined ? '?:??' : clock(eta)}`;
}

type StepEvent = Extract<SwarmformEvent, { type: 'step' }>;

/**
 * Hosts in each step of each phase right now (`install engine 29, start engine 3`): counted from start and end
 * events, O(1) per event. A step named like its phase is the fan-out wrapping the others, and is left out.
 */
export class StepCounts {
  private readonly byPhase = new Map<Phase, Map<string, number>>();

  step(e: StepEvent): void {
    if (e.step === e.phase || e.status === 'retry') return;
    let m = this.byPhase.get(e.phase);
    if (!m) this.byPhase.set(e.phase, (m = new Map()));
    const n = m.get(e.step) ?? 0;
    if (e.status === 'start') m.set(e.step, n + 1);
    else if (n > 0) m.set(e.step, n - 1);
  }

  clear(phase: Phase): void {
    this.byPhase.delete(phase);
  }

  /** The busiest steps of a phase, most hosts first, at most `max`; empty when nothing runs. */
  line(phase: Phase, max = 4): string {
    const m = this.byPhase.get(phase);
    if (!m) return '';
    return [...m]
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1])
      .slice(0, max)
      .map(([step, n]) => `${step} ${n}`)
      .join(', ');
  }
}
