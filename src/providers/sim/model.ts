/**
 * The random side of the simulation: a seeded generator for latencies, and stable per-host draws for which hosts meet
 * a fault, so the same seed and inventory give the same failing hosts in every run and every test.
 */
import type { Latency } from './settings.js';

/** 32-bit FNV-1a of a string. */
export function fnv1a(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A uniform draw in [0, 1) fixed by (seed, what, host): which hosts meet a fault does not depend on timing. */
export function stableDraw(seed: number, what: string, host: string): number {
  let h = fnv1a(`${what}\u0000${host}`, (0x811c9dc5 ^ Math.imul(seed + 1, 0x9e3779b1)) >>> 0);
  // murmur3 finaliser: FNV's low bits are weak for near-identical names (worker-1, worker-2, ...).
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

/** True when `host` is among the `share` of hosts that meet fault `what` under this seed. */
export function meets(seed: number, what: string, host: string, share: number): boolean {
  return share > 0 && stableDraw(seed, what, host) < share;
}

/** z of the standard normal at the 99th percentile. */
const Z99 = 2.3263478740408408;

/** A seeded random stream (mulberry32) with the latency distributions of the model. */
export class Rng {
  private state: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.state = (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) + 0x6d2b79f5) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Standard normal (Box-Muller, one spare kept). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u = 1 - this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A latency in ms: the fixed value, or log-normal with the given median and 99th percentile. */
  latency(d: Latency): number {
    if (typeof d === 'number') return d;
    if (d.p50 <= 0) return 0;
    if (d.p99 <= d.p50) return d.p50;
    const sigma = Math.log(d.p99 / d.p50) / Z99;
    return d.p50 * Math.exp(sigma * this.normal());
  }

  /** A short random identifier (hex), e.g. node and cluster ids. */
  id(chars = 25): string {
    let s = '';
    while (s.length < chars) s += Math.floor(this.next() * 4294967296).toString(36).padStart(7, '0');
    return s.slice(0, chars);
  }
}

/** The mean of a latency distribution (log-normal: median x exp(sigma^2 / 2)); used for the lower bound. */
export function meanOf(d: Latency): number {
  if (typeof d === 'number') return d;
  if (d.p50 <= 0 || d.p99 <= d.p50) return d.p50;
  const sigma = Math.log(d.p99 / d.p50) / Z99;
  return d.p50 * Math.exp((sigma * sigma) / 2);
}

/** Waits `ms` of modelled time scaled by `scale`; waits under a millisecond yield once instead (timers clamp to 1 ms). */
export function scaledSleep(ms: number, scale: number): Promise<void> {
  const real = ms * scale;
  if (real < 1) return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => setTimeout(resolve, real));
}

/** Now in epoch ms with sub-millisecond precision (Date.now() only has whole milliseconds). */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Resolves at epoch ms `t` (at once, after one yield, when `t` is less than a millisecond away). */
export function sleepUntil(t: number): Promise<void> {
  const ms = t - preciseNow();
  if (ms < 1) return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A queueing server with `size` places (the package mirror; one manager's certificate signing), scheduled in modelled
 * time: a job arriving is given, at once, the start and end the model says (first come, first served on the place free
 * soonest), and the caller sleeps until its end. Nothing waits on another job's timer, so two things Node does to a
 * simulation do not reach the model: timers fire up to a millisecond or two late (at time scale 0.01 a signature takes
 * about 1.5 ms, and starting each when the last one's late timer fired made the managers sign a third slower than the
 * model), and a process starved of CPU on a busy machine fires every timer late (which made simulated joins time out).
 */
export class Servers {
  private readonly freeAt: Float64Array;
  /** Ends of the jobs taken, for `inflight` (pruned as they pass). */
  private ends: number[] = [];

  constructor(readonly size: number) {
    this.freeAt = new Float64Array(Math.max(1, size));
  }

  /** Jobs arrived and not ended at `now` (epoch ms): being served or queued. */
  inflight(now = preciseNow()): number {
    if (this.ends.length > 0 && this.ends.some((e) => e <= now)) this.ends = this.ends.filter((e) => e > now);
    return this.ends.length;
  }

  /**
   * Takes one job that arrives at `now` and is served for `ms` (real ms), not starting before `notBefore`; returns
   * its modelled start and end (epoch ms). `track` false leaves it out of `inflight` (e.g. the mirror: not asked).
   */
  schedule(ms: number, now = preciseNow(), notBefore = 0, track = true): { start: number; end: number } {
    const free = this.freeAt;
    let i = 0;
    for (let j = 1; j < free.length; j++) if (free[j]! < free[i]!) i = j;
    const start = Math.max(now, free[i]!, notBefore);
    const end = start + ms;
    free[i] = end;
    if (track) this.ends.push(end);
    return { start, end };
  }
}
