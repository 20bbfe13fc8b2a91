import { SwarmformError } from '../base/errors.js';

/** An item that never ran, or a wait that stopped, because the run was cancelled (Ctrl-C, a deadline, an abort). */
export class CancelledError extends SwarmformError {
  /** Node's code for aborted operations, so generic `AbortError` checks recognise it. */
  readonly code = 'ABORT_ERR';
  /** Retrying a cancelled operation would defeat the cancellation. */
  readonly retryable = false;
  constructor(message = 'cancelled', opts?: { cause?: unknown }) {
    super(message, opts);
  }
}

/** True for CancelledError and for platform abort errors (`AbortError` / `ABORT_ERR`). */
export function isCancelled(err: unknown): boolean {
  if (err instanceof CancelledError) return true;
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { name?: unknown; code?: unknown };
  return e.name === 'AbortError' || e.code === 'ABORT_ERR';
}

/** Throws CancelledError when the signal has aborted. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError('cancelled', { cause: signal.reason });
}
