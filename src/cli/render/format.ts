/** Small text helpers shared by the renderers. */

/** Time since the start of the run as a fixed-width prefix: `[  12.3s]`. */
export function stamp(ms: number): string {
  return `[${(Math.max(0, ms) / 1000).toFixed(1).padStart(6)}s]`;
}

/** A countdown or elapsed clock: `0:21`, `12:05`, `1:02:03`. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A duration for people: `850ms`, `12.3s`, `2:05`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return clock(ms / 1000);
}

/** `1 host`, `3 hosts`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** The message of a step event without the `host: step: ` prefix HostStepError puts in front of it. */
export function bareMessage(message: string | undefined, host: string, step?: string): string {
  let m = (message ?? '').trim();
  if (host && m.startsWith(`${host}: `)) m = m.slice(host.length + 2);
  if (step && m.startsWith(`${step}: `)) m = m.slice(step.length + 2);
  return m;
}

/** Cuts a line to `width` characters so a redrawn region never wraps. */
export function fit(line: string, width: number): string {
  if (width <= 1 || line.length <= width) return line;
  return `${line.slice(0, width - 1)}…`;
}
