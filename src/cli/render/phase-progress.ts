import type { Phase, SwarmformEvent } from '../../base/events.js';

type Outcome = 'ok' | 'fail' | 'skip';
type StepEvent = Extract<SwarmformEvent, { type: 'step' }>;

interface HostState {
  /** Steps started and not yet ended: a host is finished when this returns to 0. */
  active: number;
  outcome?: Outcome;
  /** The outcome this host is currently counted under, if finished. */
  counted?: Outcome;
}

/** A recent failure, for the lines under an aggregate progress line. */
export interface RecentFailure {
  host: string;
  step: string;
  message: string;
}

/**
 * Counts of one phase from its step events, per host rather than per step: a host that runs several steps (nested
 * actions, several fan-outs) counts once, as running while any step is open, then as failed if any step failed,
 * else by its last outcome. O(1) per event; per-host entries are dropped when the phase ends.
 */
export class PhaseProgress {
  ok = 0;
  failed = 0;
  skipped = 0;
  running = 0;
  /** Failures whose message was `cancelled`: items that never started. */
  cancelled = 0;
  ended = false;
  endMs?: number;
  readonly recent: RecentFailure[] = [];
  private hosts = new Map<string, HostState>();
  private samples: { t: number; finished: number }[] = [];

  constructor(
    readonly phase: Phase,
    public total: number,
    readonly startTs: number,
    private readonly keepRecent = 3,
  ) {}

  get finished(): number {
    return this.ok + this.failed + this.skipped;
  }

  /** Succeeded: done or nothing to do. */
  get done(): number {
    return this.ok + this.skipped;
  }

  /** Updates counts from a step event of this phase. */
  step(e: StepEvent): void {
    let h = this.hosts.get(e.host);
    if (!h) this.hosts.set(e.host, (h = { active: 0 }));
    if (e.status === 'start') {
      if (h.active === 0) {
        if (h.counted) this.uncount(h);
        this.running++;
      }
      h.active++;
      return;
    }
    if (e.status === 'retry') return;
    const o: Outcome = e.status;
    if (o === 'fail') {
      this.recent.push({ host: e.host, step: e.step, message: e.message ?? '' });
      if (this.recent.length > this.keepRecent) this.recent.shift();
      if (e.message === 'cancelled') this.cancelled++;
    }
    // Failed if any step failed; otherwise the last outcome (the outer step, e.g. the fan-out's, ends last).
    if (h.outcome !== 'fail') h.outcome = o;
    if (h.active > 0) {
      h.active--;
      if (h.active > 0) return;
      this.running--;
    }
    if (h.counted) this.uncount(h);
    this.count(h);
  }

  /** Takes the final counts from the phase's end event. */
  end(e: Extract<SwarmformEvent, { type: 'phase'; status: 'end' }>): void {
    this.ended = true;
    this.ok = e.ok;
    this.failed = e.failed;
    this.skipped = e.skipped;
    this.running = 0;
    this.endMs = e.ms;
    this.hosts = new Map();
    this.samples = [];
  }

  /** Finished hosts per second over the last ~10 s (since the start when younger). */
  rate(now: number): number {
    const f = this.finished;
    this.samples.push({ t: now, finished: f });
    while (this.samples.length > 2 && now - this.samples[1].t >= 10_000) this.samples.shift();
    const first = this.samples[0];
    if (now - first.t >= 1000) return (f - first.finished) / ((now - first.t) / 1000);
    const elapsed = (now - this.startTs) / 1000;
    return elapsed > 0 ? f / elapsed : 0;
  }

  /** Seconds left at `rate`, undefined when unknown. */
  eta(rate: number): number | undefined {
    const left = Math.max(0, this.total - this.finished);
    if (left === 0) return 0;
    return rate > 0 ? left / rate : undefined;
  }

  private count(h: HostState): void {
    const o = h.outcome ?? 'ok';
    h.counted = o;
    if (o === 'ok') this.ok++;
    else if (o === 'fail') this.failed++;
    else this.skipped++;
  }

  private uncount(h: HostState): void {
    if (h.counted === 'ok') this.ok--;
    else if (h.counted === 'fail') this.failed--;
    else if (h.counted === 'skip') this.skipped--;
    h.counted = undefined;
  }
}
