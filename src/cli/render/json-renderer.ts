import type { SwarmformEvent } from '../../base/events.js';
import { redact } from '../../state/redact.js';
import { FailureLog } from './failures.js';
import type { OutputStream, Renderer } from './types.js';

/**
 * `--json`: every event as one JSON line (its own fields: type, phase, host, step, status, message, attempt, ms,
 * ts, ...), redacted. Nothing else is written to the stream.
 */
export function createJsonRenderer(stream: OutputStream): Renderer {
  const failures = new FailureLog();
  return {
    mode: 'json',
    listener: (e: SwarmformEvent) => {
      failures.add(e);
      stream.write(`${redact(serialise(e))}\n`);
    },
    done: async () => {},
    summary: () => failures.lines(),
  };
}

function serialise(e: SwarmformEvent): string {
  try {
    return JSON.stringify(e);
  } catch (err) {
    // A result whose data cannot be serialised (cycles, BigInt): keep the line parseable.
    return JSON.stringify({ ...e, data: undefined, error: `unserialisable event data: ${(err as Error).message}` });
  }
}
