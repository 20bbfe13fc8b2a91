/** Polling until a condition holds: the waiting side of the run engine (engine up, node active, tasks running). */
import { sleep } from './retry.js';
import { throwIfCancelled } from './cancelled.js';

/**
 * Polls `probe` until it returns a value other than undefined, or the deadline passes (then throws `onTimeout()`
 * with the last probe error). Probe errors are waited through: an engine that is starting may not answer yet.
 */
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
    await sleep(opts.intervalMs, opts.signal);
  }
}
