/**
 * Adaptive pacing of worker joins. Swarm2k showed the managers are the bottleneck of a large join: every join is a
 * certificate to sign and Raft writes to commit, and a 2-core lab with 117 workers joining at once lost its leader.
 * A fixed window is either too slow (10 in flight) or overloads the managers (25 in flight: joins time out).
 *
 * The pacer keeps one window per manager, AIMD-style like TCP congestion control, driven by what the joins show:
 * - a join that finishes faster than the slow threshold widens its manager's window (+1 per join while in slow start,
 *   +1/window per join afterwards, i.e. about +1 per round of joins);
 * - a slow join halves the window (at most once per round, so a burst of slow answers counts once);
 * - an overload signal ("Timeout was reached", "does not have a leader", "context deadline exceeded") drops the window
 *   to 1 and pauses that manager for a cool-down.
 * "Slow" is relative to the typical recent join (a multiple of the median latency of the last joins, never below a
 * floor), so it needs no knowledge of the machine: the same code paces a 2-core lab and a simulated 4,700-host swarm.
 * The median, not the fastest: on a busy machine join times spread widely whatever the window, and judging them
 * against the fastest one held every window at 1 (3+117 on the lab: 65 slow-downs, 380 s; see docs/scale.md). Windows never exceed
 * the per-manager cap, and the sum in flight never exceeds the global cap (the inventory's `swarm.joinConcurrency`).
 * New joins go to the manager with the most free room, so load spreads over every manager.
 *
 * Pure: time comes from an injected clock and timers from an injected scheduler, so tests drive it with a fake clock.
 */
import { InternalError } from '../base/errors.js';
import { CancelledError } from '../run/cancelled.js';

/** What a finished join tells the pacer. */
export type JoinSignal =
  /** The join finished (the node is active); `ms` is how long the manager took to take it in. */
  | { kind: 'ok'; ms: number }
  /** The join failed or timed out; `message` is the engine's error text. */
  | { kind: 'error'; ms: number; message: string }
  /** Nothing was asked of the manager (the node was already a member): the window is left as it is. */
  | { kind: 'skip' };

export interface PacerClock {
  now(): number;
  /** Calls `fn` after `ms`; returns a function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** Timers are not unref'd: when every remaining join waits out a cool-down, the timer is what keeps the run alive. */
export const realClock: PacerClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

export interface PacerOptions {
  /** Manager keys (names); joins are spread over them. */
  managers: readonly string[];
  /** Most joins in flight at once over all managers (the inventory's joinConcurrency). */
  maxInFlight: number;
  /** Most joins in flight through one manager; default ceil(maxInFlight / managers), at least 1. */
  perManagerCap?: number;
  /** Starting window per manager; default 2 (capped by perManagerCap). */
  initialWindow?: number;
  /** A join is slow when it takes longer than slowFactor x the median of the recent joins... default 3. */
  slowFactor?: number;
  /** ...and never below this many ms; default 2,500. */
  slowFloorMs?: number;
  /** How long a manager takes no new join after an overload signal; default 3,000 ms. */
  cooldownMs?: number;
  /** false: windows stay where they start (a fixed window, for comparison); default true. */
  adaptive?: boolean;
  clock?: PacerClock;
}

/** One granted join slot: join through `manager`, then call `done` exactly once. */
export interface Lease {
  manager: string;
  done(signal: JoinSignal): void;
}

/** Counters for reports and benchmarks. */
export interface PacerStats {
  /** Largest number of joins in flight at once. */
  peakInFlight: number;
  /** Window halvings after slow joins. */
  slowDowns: number;
  /** Overload signals (timeouts, leader loss) that reset a window to 1. */
  overloads: number;
  /** Per manager: final window and joins granted. */
  managers: Record<string, { window: number; granted: number }>;
}

/** A join slower than this many times the reference ends slow start (the managers begin to queue). */
const MILD_FACTOR = 1.5;
/** How many recent successful joins the reference latency is taken from. */
const RECENT = 32;

/** Error texts that mean the managers are overloaded rather than that this one join is wrong. */
export const OVERLOAD_PATTERN = /Timeout was reached|does not have a leader|lost leader status|context deadline exceeded|rpc error: code = (Unavailable|DeadlineExceeded)/i;
/** Of those, the ones that mean the Raft group itself is failing (start again from one join), not just queueing. */
const SEVERE_PATTERN = /does not have a leader|lost leader status|rpc error: code = Unavailable/i;

interface ManagerState {
  key: string;
  window: number;
  inFlight: number;
  granted: number;
  slowStart: boolean;
  /** No new joins until this time (after an overload signal). */
  pausedUntil: number;
  /** Only joins granted after this time may change the window again (once per round). */
  lastDecreaseAt: number;
  /** Grant times of the joins in flight, by lease number: a join still running past the slow threshold is a signal. */
  outstanding: Map<number, number>;
}

interface Waiter {
  resolve: (lease: Lease) => void;
  reject: (err: Error) => void;
}

export class JoinPacer {
  private readonly managers: ManagerState[];
  private readonly maxInFlight: number;
  private readonly cap: number;
  private readonly slowFactor: number;
  private readonly slowFloorMs: number;
  private readonly cooldownMs: number;
  private readonly adaptive: boolean;
  private readonly clock: PacerClock;
  private readonly queue: Waiter[] = [];
  private inFlight = 0;
  private nextLease = 0;
  /** Latencies of the most recent successful joins (all managers), oldest first. */
  private readonly recent: number[] = [];
  /** Median of `recent` (recomputed when a join is added, not on every look). */
  private base = Infinity;
  private wakeTimer: (() => void) | undefined;
  private closed: Error | undefined;
  private readonly counters = { peakInFlight: 0, slowDowns: 0, overloads: 0 };

  constructor(opts: PacerOptions) {
    if (opts.managers.length === 0) throw new InternalError('the join pacer needs at least one manager (form-swarm starts it only once a manager is up)');
    this.maxInFlight = Math.max(1, Math.floor(opts.maxInFlight));
    this.cap = Math.max(1, Math.floor(opts.perManagerCap ?? Math.ceil(this.maxInFlight / opts.managers.length)));
    const initial = Math.min(this.cap, Math.max(1, opts.initialWindow ?? 2));
    this.slowFactor = opts.slowFactor ?? 3;
    this.slowFloorMs = opts.slowFloorMs ?? 2_500;
    this.cooldownMs = opts.cooldownMs ?? 3_000;
    this.adaptive = opts.adaptive ?? true;
    this.clock = opts.clock ?? realClock;
    this.managers = opts.managers.map((key) => ({
      key, window: initial, inFlight: 0, granted: 0, slowStart: true, pausedUntil: -Infinity, lastDecreaseAt: -Infinity,
      outstanding: new Map(),
    }));
  }

  /** The latency above which a join counts as slow (ms). */
  slowThresholdMs(): number {
    const base = this.baseMs();
    return Number.isFinite(base) ? Math.max(this.slowFloorMs, this.slowFactor * base) : Infinity;
  }

  /**
   * The reference latency: the median of the last RECENT successful joins. Recent rather than all-time, because a
   * join into a swarm of 3 nodes is much cheaper than one into 300, and the reference must grow with the swarm.
   * Growing windows raise it too, but only as far as the timeouts allow: a join the engine gives up on (20 s) is an
   * overload signal whatever the reference.
   */
  private baseMs(): number {
    return this.base;
  }

  /** Waits for a join slot; leases are granted in request order. */
  acquire(signal?: AbortSignal): Promise<Lease> {
    if (this.closed) return Promise.reject(this.closed);
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      if (signal) {
        const onAbort = () => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) {
            this.queue.splice(i, 1);
            reject(abortError(signal));
          }
        };
        signal.addEventListener('abort', onAbort, { once: true });
        waiter.resolve = (lease) => {
          signal.removeEventListener('abort', onAbort);
          resolve(lease);
        };
      }
      this.queue.push(waiter);
      this.pump();
    });
  }

  /**
   * Takes a manager out of the rotation for the rest of the run (its engine died): no join is granted to it again,
   * unless it is the last manager left, which keeps its place (the joins then fail and are reported). Returns whether
   * it was taken out.
   */
  retire(key: string): boolean {
    const m = this.managers.find((x) => x.key === key);
    if (!m || m.pausedUntil === Infinity) return false;
    if (this.managers.filter((x) => x.pausedUntil !== Infinity).length <= 1) return false;
    m.pausedUntil = Infinity;
    this.pump();
    return true;
  }

  /** Rejects every waiting acquire (e.g. on cancel); leases already granted stay valid. */
  close(err: Error): void {
    this.closed = err;
    this.wakeTimer?.();
    this.wakeTimer = undefined;
    for (const w of this.queue.splice(0)) w.reject(err);
  }

  /** Current windows and counters. */
  stats(): PacerStats {
    const managers: PacerStats['managers'] = {};
    for (const m of this.managers) managers[m.key] = { window: Math.round(m.window * 100) / 100, granted: m.granted };
    return { ...this.counters, managers };
  }

  /** Joins in flight now (all managers). */
  get active(): number {
    return this.inFlight;
  }

  /** The manager with the most free room that may take a join now, if any. */
  private pick(now: number): ManagerState | undefined {
    let best: ManagerState | undefined;
    let bestRoom = 0;
    for (const m of this.managers) {
      if (m.pausedUntil > now) continue;
      const room = Math.floor(Math.min(m.window, this.cap)) - m.inFlight;
      // Ties go to the manager that has signed fewer joins, so every manager gets its share.
      if (room > bestRoom || (room === bestRoom && room > 0 && best && m.granted < best.granted)) {
        best = m;
        bestRoom = room;
      }
    }
    return best;
  }

  private pump(): void {
    const now = this.clock.now();
    for (const m of this.managers) this.checkStale(m, now);
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      const m = this.pick(now);
      if (!m) break;
      const waiter = this.queue.shift()!;
      this.grant(m, waiter, now);
    }
    this.scheduleWake(now);
  }

  private grant(m: ManagerState, waiter: Waiter, now: number): void {
    m.inFlight++;
    m.granted++;
    this.inFlight++;
    const id = this.nextLease++;
    m.outstanding.set(id, now);
    this.counters.peakInFlight = Math.max(this.counters.peakInFlight, this.inFlight);
    let settled = false;
    waiter.resolve({
      manager: m.key,
      done: (signal) => {
        if (settled) return;
        settled = true;
        m.outstanding.delete(id);
        m.inFlight--;
        this.inFlight--;
        this.observe(m, signal, now);
        this.pump();
      },
    });
  }

  /** Adjusts a manager's window from one finished join that was granted at `grantedAt`. */
  private observe(m: ManagerState, signal: JoinSignal, grantedAt: number): void {
    const now = this.clock.now();
    if (signal.kind === 'skip' || !this.adaptive) return;
    if (signal.kind === 'error') {
      if (!OVERLOAD_PATTERN.test(signal.message)) return; // This join's own problem says nothing about the manager.
      this.counters.overloads++;
      // Leader loss starts again from one join; a join the engine stopped waiting for (it goes on in the background)
      // halves the window, once per round like a slow join, and pauses the manager.
      if (!SEVERE_PATTERN.test(signal.message) && grantedAt < m.lastDecreaseAt) return;
      m.window = SEVERE_PATTERN.test(signal.message) ? 1 : Math.max(1, m.window / 2);
      m.slowStart = false;
      m.pausedUntil = now + this.cooldownMs;
      m.lastDecreaseAt = now;
      return;
    }
    const slow = signal.ms > this.slowThresholdMs();
    if (signal.ms > 0) {
      this.recent.push(signal.ms);
      if (this.recent.length > RECENT) this.recent.shift();
      const sorted = [...this.recent].sort((a, b) => a - b);
      this.base = sorted[Math.floor((sorted.length - 1) / 2)]!;
    }
    // Joins granted before the last decrease tell of the load that decrease already answered: one change per round.
    if (grantedAt < m.lastDecreaseAt) return;
    if (slow) {
      this.counters.slowDowns++;
      m.window = Math.max(1, m.window / 2);
      m.slowStart = false;
      m.lastDecreaseAt = now;
      return;
    }
    // Slow start ends at the first sign of queueing (twice the fastest join), before anything is actually slow.
    if (m.slowStart && signal.ms > MILD_FACTOR * this.baseMs()) m.slowStart = false;
    // Slow start also ends at half the cap: answers arrive one round late, so doubling past that overshoots.
    if (m.slowStart && m.window >= this.cap / 2) m.slowStart = false;
    m.window = Math.min(this.cap, m.slowStart ? m.window + 1 : m.window + 1 / m.window);
  }

  /**
   * A join still in flight past the slow threshold is already a slow join: halve now rather than after the engine's
   * 20 s timeout, during which the window would otherwise keep growing. Once per round, like any decrease.
   */
  private checkStale(m: ManagerState, now: number): void {
    const threshold = this.slowThresholdMs();
    if (!Number.isFinite(threshold) || !this.adaptive) return;
    for (const grantedAt of m.outstanding.values()) {
      if (now - grantedAt > threshold && grantedAt >= m.lastDecreaseAt) {
        this.counters.slowDowns++;
        m.window = Math.max(1, m.window / 2);
        m.slowStart = false;
        m.lastDecreaseAt = now;
        return;
      }
    }
  }

  /** When every manager with room is paused, wake up when the first pause ends. */
  private scheduleWake(now: number): void {
    this.wakeTimer?.();
    this.wakeTimer = undefined;
    if (this.queue.length === 0 || this.inFlight >= this.maxInFlight) return;
    const paused = this.managers.filter((m) => m.pausedUntil > now && Math.floor(m.window) > m.inFlight);
    if (paused.length === 0) return;
    const at = Math.min(...paused.map((m) => m.pausedUntil));
    this.wakeTimer = this.clock.setTimer(() => {
      this.wakeTimer = undefined;
      this.pump();
    }, Math.max(1, at - now));
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new CancelledError('cancelled', { cause: signal.reason });
}
