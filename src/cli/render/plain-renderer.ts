/**
 * Plain log lines for pipes and CI: one line per phase start and end, per failure, per warning; for small clusters
 * also one line per host step outcome, for large ones a progress line at most every 5 s. Lines carry the time since
 * the start: `[  12.3s] swarm: 3 ok, 1 failed, 0 skipped (4.1s)`. Steps skipped because there was nothing to do are
 * summed up in one line per phase at its end (`bootstrap: nothing to do for 6 hosts: engine 28.2.2, nothing to
 * change`) unless `--verbose`: a re-run that changes nothing stays short.
 */
import type { Phase, SwarmformEvent } from '../../base/events.js';
import { redact } from '../../state/redact.js';
import { FailureLog } from './failures.js';
import { bareMessage, clock, duration, plural, stamp } from './format.js';
import { PhaseProgress } from './phase-progress.js';
import type { Renderer, RendererSettings } from './types.js';

/** Clusters up to this size get a line per host step. */
export const SMALL_CLUSTER = 30;
/** Least time between two progress lines of a large cluster. */
export const PROGRESS_EVERY_MS = 5000;

export function createPlainRenderer(s: RendererSettings): Renderer {
  const small = s.hosts <= SMALL_CLUSTER;
  const phases = new Map<Phase, PhaseProgress>();
  const lastProgress = new Map<Phase, number>();
  const failures = new FailureLog();
  /** Skipped steps of phases that started, held back for their phase's summary line (not with --verbose). */
  const skipped = new Map<Phase, SkipTally>();
  const line = (ts: number, text: string): void => {
    s.stream.write(`${stamp(ts - s.startTs)} ${redact(text)}\n`);
  };
  const progressOf = (phase: Phase, ts: number): PhaseProgress => {
    let p = phases.get(phase);
    if (!p) phases.set(phase, (p = new PhaseProgress(phase, s.hosts, ts)));
    return p;
  };
  /** Phases between their start and end events. */
  const open = new Set<Phase>();
  const started = (phase: Phase) => open.has(phase);

  const listener = (e: SwarmformEvent): void => {
    failures.add(e);
    switch (e.type) {
      case 'phase': {
        if (e.status === 'start') {
          phases.set(e.phase, new PhaseProgress(e.phase, e.total, e.ts));
          open.add(e.phase);
          lastProgress.set(e.phase, e.ts);
          line(e.ts, `${e.phase}: started, ${plural(e.total, unitOf(e.phase))}`);
          return;
        }
        const p = phases.get(e.phase);
        if (p && p.cancelled > 0) line(e.ts, `${e.phase}: ${plural(p.cancelled, 'host')} not started: cancelled`);
        phases.delete(e.phase);
        open.delete(e.phase);
        lastProgress.delete(e.phase);
        const tally = skipped.get(e.phase);
        skipped.delete(e.phase);
        if (tally) line(e.ts, skipSummary(e.phase, tally));
        line(e.ts, `${e.phase}: ${e.ok} ok, ${e.failed} failed, ${e.skipped} skipped (${duration(e.ms)})`);
        return;
      }
      case 'step': {
        const p = progressOf(e.phase, e.ts);
        p.step(e);
        const what = `${e.host}: ${e.step}`;
        const msg = bareMessage(e.message, e.host, e.step);
        if (e.status === 'fail') {
          if (e.message !== 'cancelled') line(e.ts, `${what}: failed: ${msg || 'no message'}${e.ms !== undefined && e.ms > 0 ? ` (${duration(e.ms)})` : ''}`);
        } else if (small && e.status === 'skip' && !s.verbose && started(e.phase)) {
          tallySkip(skipped, e.phase, e.host, msg || e.step);
        } else if (small) {
          if (e.status === 'ok') line(e.ts, `${what}: ok${msg ? `: ${msg}` : ''}${e.ms !== undefined ? ` (${duration(e.ms)})` : ''}`);
          else if (e.status === 'skip') line(e.ts, `${what}: skipped${msg ? `: ${msg}` : ''}`);
          else if (e.status === 'retry') line(e.ts, `${what}: retry ${e.attempt ?? ''}${e.ms !== undefined ? ` in ${duration(e.ms)}` : ''}: ${msg}`);
        }
        if (!small) {
          const last = lastProgress.get(e.phase) ?? p.startTs;
          if (e.ts - last >= PROGRESS_EVERY_MS) {
            lastProgress.set(e.phase, e.ts);
            line(e.ts, progressText(p, e.ts));
          }
        }
        return;
      }
      case 'log': {
        const who = e.host ? `${e.host}: ` : '';
        if (e.level === 'warn') line(e.ts, `warning: ${who}${e.message}`);
        else if (!e.host || small) line(e.ts, `${who}${e.message}`);
        return;
      }
      case 'result':
        return; // the command prints its result itself
    }
  };

  return {
    mode: 'plain',
    listener,
    done: async () => {
      // A phase cut short never sent its end: its skipped steps are still said.
      for (const [phase, tally] of skipped) line(s.now(), skipSummary(phase, tally));
      skipped.clear();
    },
    summary: () => failures.lines(),
  };
}

/** `swarm: 1532/2384 done, 3 failed, 12 running, 41.2/s, ETA 0:21`. */
export function progressText(p: PhaseProgress, now: number): string {
  const rate = p.rate(now);
  const eta = p.eta(rate);
  return `${p.phase}: ${p.done}/${p.total} done, ${p.failed} failed, ${p.running} running, ${rate.toFixed(1)}/s, ETA ${eta === undefined ? '?' : clock(eta)}`;
}

/** What a phase's total counts. */
export function unitOf(phase: Phase): string {
  return phase === 'workloads' ? 'service' : 'host';
}

/** Skipped steps of one phase: the hosts, and how many skips said each reason. */
interface SkipTally {
  hosts: Set<string>;
  reasons: Map<string, number>;
}

function tallySkip(all: Map<Phase, SkipTally>, phase: Phase, host: string, reason: string): void {
  let t = all.get(phase);
  if (!t) all.set(phase, (t = { hosts: new Set(), reasons: new Map() }));
  t.hosts.add(host);
  t.reasons.set(reason, (t.reasons.get(reason) ?? 0) + 1);
}

/** `bootstrap: nothing to do for 6 hosts: engine 28.2.2, nothing to change (6); ... (--verbose lists each)`. */
export function skipSummary(phase: Phase, t: SkipTally): string {
  const reasons = [...t.reasons.entries()].sort((a, b) => b[1] - a[1]);
  const shown = reasons.slice(0, 3).map(([r, n]) => (n > 1 ? `${r} (${n})` : r));
  const more = reasons.length > 3 ? `; ${reasons.length - 3} more reason(s)` : '';
  return `${phase}: skipped for ${plural(t.hosts.size, 'host')}: ${shown.join('; ')}${more} (--verbose lists each)`;
}
