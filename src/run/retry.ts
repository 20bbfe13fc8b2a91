/**
 * Retry with exponential backoff and full jitter. Our own small loop rather than p-retry: we need full jitter
 * (p-retry's `randomize` only scales by 1..2), a total deadline, an abort-aware sleep, and one notion of
 * "retryable" shared with the fan-out engine.
 */
import { UsageError } from '../base/errors.js';
import { CancelledError, isCancelled } from './cancelled.js';

export interface RetryPolicy {
  /** Retries after the first attempt: 0 means one attempt in total. */
  retries: number;
  /** Backoff cap of the first retry, in ms. */
  minMs: number;
  /** Largest backoff cap, in ms. */
  maxMs: number;
  /** Growth of the cap per retry; default 2. */
  factor?: number;
  /**
   * Whether an error is worth another attempt. Narrows `isRetryable`, never widens it: usage errors, cancellations
   * and errors marked `retryable = false` are not retried whatever this says.
   */
  retryable?: (err: Error) => boolean;
  /**
   * Total budget from the first attempt, in ms: no retry starts whose backoff would end after it. A value above
   * ~10 years (1e11 ms) is taken as an absolute `Date.now()` timestamp instead, so `Date.now() + timeout` also works.
   */
  deadlineMs?: number;
  /** Source of randomness in [0, 1); injectable for tests. Default Math.random. */
  random?: () => number;
}

/** Passed to `onRetry` before each backoff. */
export interface RetryNotice {
  /** The attempt that just failed (1-based). */
  attempt: number;
  /** The attempt that will run after the backoff. */
  nextAttempt: number;
  error: Error;
  delayMs: number;
}

/** No retries: a single attempt. */
export const noRetry: RetryPolicy = { retries: 0, minMs: 0, maxMs: 0 };

/** Default predicate: everything but usage errors, cancellations and errors marked `retryable = false`. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof UsageError) return false;
  if (isCancelled(err)) return false;
  if (typeof err === 'object' && err !== null && (err as { retryable?: unknown }).retryable === false) return false;
  return true;
}

/** Marks an error so no retry loop retries it (e.g. a host key mismatch, a bad credential); returns it. */
export function notRetryable<E extends Error>(err: E): E & { retryable: false } {
  return Object.assign(err, { retryable: false as const });
}

/** Converts anything thrown into an Error, keeping Errors as they are. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : `non-error thrown: ${safeString(value)}`);
}

/** Backoff before retry number `retry` (1-based): uniform in [0, min(maxMs, minMs * factor^(retry-1))]. */
export function backoffDelay(retry: number, policy: RetryPolicy, random: () => number = policy.random ?? Math.random): number {
  const factor = policy.factor ?? 2;
  const cap = Math.min(policy.maxMs, policy.minMs * Math.pow(factor, Math.max(0, retry - 1)));
  return Math.max(0, Math.floor(random() * cap));
}

/** Sleeps `ms`, rejecting with CancelledError as soon as the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(new CancelledError('cancelled', { cause: signal.reason }));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new CancelledError('cancelled', { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` until it resolves, the error is not retryable, the retries or the deadline are used up, or the signal
 * aborts. Throws the last error (CancelledError, with the last error as cause, when cancelled during a backoff).
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  onRetry?: (notice: RetryNotice) => void,
  signal?: AbortSignal,
): Promise<T> {
  const custom = policy.retryable;
  const retryable = (e: Error): boolean => isRetryable(e) && (custom === undefined || custom(e));
  const deadline = deadlineOf(policy, Date.now());
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (thrown) {
      const error = toError(thrown);
      if (attempt > policy.retries || signal?.aborted || !retryable(error)) throw error;
      const delayMs = backoffDelay(attempt, policy);
      if (Date.now() + delayMs > deadline) throw error;
      onRetry?.({ attempt, nextAttempt: attempt + 1, error, delayMs });
      try {
        await sleep(delayMs, signal);
      } catch {
        throw new CancelledError('cancelled', { cause: error });
      }
    }
  }
}

/** Absolute timestamps start here; no relative budget is this long. */
const ABSOLUTE_DEADLINE_FROM = 1e11;

function deadlineOf(policy: RetryPolicy, now: number): number {
  const d = policy.deadlineMs;
  if (d === undefined) return Infinity;
  return d >= ABSOLUTE_DEADLINE_FROM ? d : now + d;
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
