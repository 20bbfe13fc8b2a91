import { throwIfCancelled } from '../run/cancelled.js';

/** Polls `probe` until it returns a value other than undefined, or the deadline passes (then throws `onTimeout()`). */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs: number; signal?: AbortSignal; onTimeout: (last?: unknown) => Error },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let last: unknown;
  for (;;) {
    throwIfCancelled(opts.signal);
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) throw opts.onTimeout(last);
    await sleep(opts.intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
