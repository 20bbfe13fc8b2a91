/**
 * The fan-out engine: runs one step on many items (hosts) with a global concurrency cap, an optional per-key cap,
 * per-item retries, one event per outcome and cooperative cancellation. Item failures never throw: they are
 * collected. The dispatcher is our own rather than p-limit: unstarted items are plain indices (no closure or promise
 * per queued item), items whose key is saturated are parked without taking a global slot, and on abort every
 * unstarted item is reported at once. The items may be a {@link Feed} that grows while the fan-out runs: it then ends
 * once the feed is closed and every item pushed has settled.
 */
import type { EventBus, Phase } from '../base/events.js';
import { CancelledError } from './cancelled.js';
import { Feed } from './feed.js';
import { Fifo } from './fifo.js';
import { KeyedLimiter } from './keyed-limiter.js';
import { noRetry, retry, toError, type RetryPolicy } from './retry.js';
import { isSkipped, type Skipped } from './skip.js';

/** Handed to the work function on every attempt. */
export interface WorkContext {
  /** 1 on the first attempt, 2 on the first retry, and so on. */
  attempt: number;
  /** Aborts when the run is cancelled: long operations should stop and throw. */
  signal: AbortSignal;
}

export interface FanoutOptions<T> {
  phase: Phase;
  /** Step name in events, e.g. `join`. */
  step: string;
  /** The host name of an item: the event's `host`, and what failures are reported against. */
  key: (item: T) => string;
  /** Most items in flight at once. */
  concurrency: number;
  events: EventBus;
  /** Per-item retries; default none. */
  retry?: RetryPolicy;
  signal?: AbortSignal;
  /** Caps items in flight per key as well, e.g. `{ key: (w) => w.manager, limit: 10 }` for joins per manager. */
  keyLimit?: { key: (item: T) => string; limit: number };
  /** Emit only `fail` step events (no start, retry, ok, skip): for internal probes that should not show as rows. */
  quiet?: boolean;
}

export interface FanoutResult<T, R> {
  /** Items whose work was done; skipped items are in `skipped`, not here (see `succeeded()`). */
  done: { item: T; value: R }[];
  failed: { item: T; error: Error }[];
  skipped: { item: T; message: string }[];
  /** True when the signal aborted before every item had started. */
  cancelled: boolean;
  ms: number;
}

const neverAborted = new AbortController().signal;

/** Items that did not fail: done and skipped ones, e.g. the hosts that go on to the next phase. */
export function succeeded<T>(result: Pick<FanoutResult<T, unknown>, 'done' | 'skipped'>): T[] {
  const out: T[] = [];
  for (const d of result.done) out.push(d.item);
  for (const s of result.skipped) out.push(s.item);
  return out;
}

/**
 * Runs `work` on every item (of an array, or of a feed as items arrive); resolves once every item has settled (for a
 * feed: after it was closed). Never rejects for item failures.
 */
export function fanout<T, R>(
  source: readonly T[] | Feed<T>,
  work: (item: T, ctx: WorkContext) => Promise<R | Skipped>,
  opts: FanoutOptions<T>,
): Promise<FanoutResult<T, R>> {
  const started = performance.now();
  const feed = source instanceof Feed ? source : undefined;
  const items: readonly T[] = feed ? feed.items : (source as readonly T[]);
  /** More items may still come. */
  const open = (): boolean => feed !== undefined && !feed.closed;
  const concurrency = Math.max(1, Math.floor(opts.concurrency) || 1);
  const signal = opts.signal ?? neverAborted;
  const policy = opts.retry ?? noRetry;
  const { phase, step } = opts;
  const quiet = opts.quiet === true;
  const bus = opts.events;
  type StepEvent = Parameters<EventBus['emit']>[0] & { type: 'step' };
  const emit = (e: StepEvent): void => {
    if (quiet && e.status !== 'fail') return;
    try {
      bus.emit(e);
    } catch {
      // A listener's bug must not turn into an item failure or stall the run.
    }
  };
  const result: FanoutResult<T, R> = { done: [], failed: [], skipped: [], cancelled: false, ms: 0 };

  const limiter = opts.keyLimit ? new KeyedLimiter(opts.keyLimit.limit) : undefined;
  const keyOf = opts.keyLimit?.key;
  /** Items whose key slot is already held, waiting for a global slot. */
  const ready = new Fifo<number>();
  const readyKeys = new Fifo<string>();
  /** Per key: items seen while the key was saturated. */
  const parked = new Map<string, Fifo<number>>();
  let cursor = 0;
  let running = 0;

  const hostOf = (item: T): string => {
    try {
      return opts.key(item);
    } catch {
      return '?';
    }
  };

  const fail = (item: T, error: Error, ms: number, attempt?: number): void => {
    result.failed.push({ item, error });
    emit({ type: 'step', phase, host: hostOf(item), step, status: 'fail', message: error.message, attempt, ms });
  };

  const runItem = async (i: number): Promise<void> => {
    const item = items[i];
    const host = hostOf(item);
    const t0 = performance.now();
    let attempts = 1;
    emit({ type: 'step', phase, host, step, status: 'start' });
    try {
      const value = await retry(
        (attempt) => {
          attempts = attempt;
          return work(item, { attempt, signal });
        },
        policy,
        (notice) =>
          emit({
            type: 'step',
            phase,
            host,
            step,
            status: 'retry',
            attempt: notice.nextAttempt,
            message: notice.error.message,
            ms: notice.delayMs,
          }),
        signal,
      );
      const ms = Math.round(performance.now() - t0);
      if (isSkipped(value)) {
        result.skipped.push({ item, message: value.message });
        emit({ type: 'step', phase, host, step, status: 'skip', message: value.message, ms });
      } else {
        result.done.push({ item, value: value as R });
        emit({ type: 'step', phase, host, step, status: 'ok', ms, attempt: attempts > 1 ? attempts : undefined });
      }
    } catch (thrown) {
      fail(item, toError(thrown), Math.round(performance.now() - t0), attempts > 1 ? attempts : undefined);
    }
  };

  const cancelled = (): CancelledError => new CancelledError('cancelled', { cause: signal.reason });

  return new Promise((resolve) => {
    let finished = false;

    const finish = (): void => {
      if (finished || running > 0 || open()) return;
      if (!signal.aborted && (cursor < items.length || ready.size > 0 || parked.size > 0)) return;
      finished = true;
      unwatch?.();
      signal.removeEventListener('abort', onAbort);
      result.ms = Math.round(performance.now() - started);
      resolve(result);
    };

    /** A key slot came free: hand it to the oldest parked item of that key, or give it back. */
    const handOff = (key: string): void => {
      const queue = parked.get(key);
      const next = queue?.shift();
      if (next === undefined) {
        limiter!.release(key);
        return;
      }
      if (queue!.size === 0) parked.delete(key);
      ready.push(next);
      readyKeys.push(key);
    };

    const launch = (i: number, key: string | undefined): void => {
      running++;
      void runItem(i)
        .catch(() => undefined)
        .then(() => {
          running--;
          if (key !== undefined) handOff(key);
          pump();
          finish();
        });
    };

    const pump = (): void => {
      while (running < concurrency && !signal.aborted) {
        if (ready.size > 0) {
          launch(ready.shift()!, readyKeys.shift()!);
          continue;
        }
        if (cursor >= items.length) return;
        const i = cursor++;
        if (!limiter) {
          launch(i, undefined);
          continue;
        }
        let key: string;
        try {
          key = keyOf!(items[i]);
        } catch (thrown) {
          fail(items[i], toError(thrown), 0);
          continue;
        }
        if (limiter.tryAcquire(key)) {
          launch(i, key);
        } else {
          let queue = parked.get(key);
          if (!queue) parked.set(key, (queue = new Fifo()));
          queue.push(i);
        }
      }
    };

    /** Reports every item that has not started as cancelled; in-flight items see the aborted signal. */
    function onAbort(): void {
      result.cancelled = cursor < items.length || ready.size > 0 || parked.size > 0 || open();
      const pending: number[] = ready.drain();
      for (const key of readyKeys.drain()) limiter!.release(key);
      for (const queue of parked.values()) pending.push(...queue.drain());
      parked.clear();
      pending.sort((a, b) => a - b);
      for (const i of pending) fail(items[i], cancelled(), 0);
      failRest();
      finish();
    }

    /** After an abort: every item not started, including those a feed pushes later, fails as cancelled. */
    function failRest(): void {
      for (; cursor < items.length; cursor++) fail(items[cursor], cancelled(), 0);
    }

    // A feed's pushes start work at once (or, after an abort, fail as cancelled); its close may end the fan-out.
    const unwatch = feed?.watch(() => {
      if (finished) return;
      if (signal.aborted) failRest();
      else pump();
      finish();
    });

    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    pump();
    finish();
  });
}
