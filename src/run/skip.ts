/**
 * What a fan-out work function returns when there was nothing to do on that item (already installed, already
 * joined). Recognised by shape, so `{ skipped: true as const, message }` works as well as `skip(message)`; a work
 * result type that itself has `skipped: true` and a string `message` would be taken for a skip.
 */
export interface Skipped {
  readonly skipped: true;
  readonly message: string;
}

/** Marks an item as skipped; the fan-out engine reports it with status `skip` and this message. */
export function skip(message: string): Skipped {
  return { skipped: true, message };
}

/** True for `skip()` markers and anything of the same shape. */
export function isSkipped(value: unknown): value is Skipped {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { skipped?: unknown; message?: unknown };
  return v.skipped === true && typeof v.message === 'string';
}
