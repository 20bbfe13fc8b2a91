/** The fan-out engine: bounded concurrency, per-key caps, retries with backoff and jitter, events, cancellation. */
export { fanout, succeeded, type FanoutOptions, type FanoutResult, type WorkContext } from './fanout.js';
export { KeyedLimiter } from './keyed-limiter.js';
export { pollUntil } from './poll.js';
export { phase } from './phase.js';
export {
  backoffDelay,
  isRetryable,
  noRetry,
  notRetryable,
  retry,
  sleep,
  toError,
  type RetryNotice,
  type RetryPolicy,
} from './retry.js';
export { skip, isSkipped, type Skipped } from './skip.js';
export { CancelledError, isCancelled, throwIfCancelled } from './cancelled.js';
export { Fifo } from './fifo.js';
export { Feed } from './feed.js';
