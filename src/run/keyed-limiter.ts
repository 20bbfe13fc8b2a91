import { InternalError } from '../base/errors.js';
import { CancelledError } from './cancelled.js';
import { Fifo } from './fifo.js';

/**
 * Caps concurrent work per key (e.g. joins per manager) on top of any global cap. State exists only for keys in
 * use, so a limiter over thousands of keys costs nothing once they are idle.
 */
export class KeyedLimiter {
  private readonly active = new Map<string, number>();
  private readonly waiters = new Map<string, Fifo<() => void>>();

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`per-key limit must be a positive integer, got ${limit}`);
  }

  /** Slots of `key` in use. */
  inUse(key: string): number {
    return this.active.get(key) ?? 0;
  }

  /** Keys with work running or waiting. */
  get keys(): number {
    return this.active.size;
  }

  /** Takes a slot of `key` if one is free; never waits. */
  tryAcquire(key: string): boolean {
    const n = this.active.get(key) ?? 0;
    if (n >= this.limit) return false;
    this.active.set(key, n + 1);
    return true;
  }

  /** Returns a slot of `key`, handing it straight to the oldest waiter if there is one. */
  release(key: string): void {
    const n = this.active.get(key) ?? 0;
    if (n <= 0) throw new InternalError(`KeyedLimiter.release(${key}) without a matching acquire`);
    const queue = this.waiters.get(key);
    const next = queue?.shift();
    if (next) {
      if (queue!.size === 0) this.waiters.delete(key);
      next(); // the slot passes to the waiter: the count is unchanged
      return;
    }
    if (n === 1) this.active.delete(key);
    else this.active.set(key, n - 1);
  }

  /** Waits for a slot of `key`; rejects with CancelledError if the signal aborts first. */
  acquire(key: string, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new CancelledError('cancelled', { cause: signal.reason }));
    if (this.tryAcquire(key)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let queue = this.waiters.get(key);
      if (!queue) this.waiters.set(key, (queue = new Fifo()));
      let settled = false;
      const onAbort = (): void => {
        if (settled) return;
        settled = true;
        // The waiter stays queued but is now a no-op that passes the slot on.
        reject(new CancelledError('cancelled', { cause: signal?.reason }));
      };
      queue.push(() => {
        signal?.removeEventListener('abort', onAbort);
        if (settled) {
          this.release(key);
          return;
        }
        settled = true;
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Runs `fn` holding a slot of `key`. */
  async run<R>(key: string, fn: () => Promise<R>, signal?: AbortSignal): Promise<R> {
    await this.acquire(key, signal);
    try {
      return await fn();
    } finally {
      this.release(key);
    }
  }
}
