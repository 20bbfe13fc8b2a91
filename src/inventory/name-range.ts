/**
 * Host name ranges as in Ansible inventories: `worker-[001:100]`, `db-[a:f]`. One range per name, bounds inclusive,
 * zero padding of the start kept for every name.
 */

/** A parsed `prefix[start:end]suffix` pattern. */
export interface NameRange {
  prefix: string;
  suffix: string;
  kind: 'number' | 'letter';
  start: number;
  end: number;
  /** Digits every number is padded to (0 = no padding). */
  width: number;
}

/** Most names one range may produce; far above Swarm3k's 4,700 nodes, low enough to catch a typo like [1:1000000000]. */
export const MAX_RANGE_SIZE = 100_000;

/** Thrown for a malformed range; the message says what was expected. */
export class NameRangeError extends Error {}

/** True when the name contains range brackets (well formed or not). */
export function hasRange(name: string): boolean {
  return name.includes('[') || name.includes(']');
}

/** Parses the range in `name`; null when the name has none, NameRangeError when it is malformed. */
export function parseNameRange(name: string): NameRange | null {
  if (!hasRange(name)) return null;
  const opens = name.split('[').length - 1;
  const closes = name.split(']').length - 1;
  if (opens > 1 || closes > 1) throw new NameRangeError(`only one range per name is supported, got "${name}"`);
  const m = /^([^[\]]*)\[([^\]]*)\]([^[\]]*)$/.exec(name);
  if (!m) throw new NameRangeError(`expected a range like web-[1:10] with "[" before "]", got "${name}"`);
  const [, prefix, inner, suffix] = m;
  const shape = `expected a range like [1:10], [01:10] or [a:f], got "[${inner}]"`;
  const numeric = /^(\d+):(\d+)$/.exec(inner);
  if (numeric) {
    const [, from, to] = numeric;
    const padded = from.length > 1 && from.startsWith('0');
    if (padded && from.length !== to.length) {
      throw new NameRangeError(`zero-padded range bounds must have the same width, got "[${inner}]" (write [${from}:${to.padStart(from.length, '0')}])`);
    }
    const range: NameRange = { prefix, suffix, kind: 'number', start: Number(from), end: Number(to), width: padded ? from.length : 0 };
    checkBounds(range, inner);
    return range;
  }
  const letters = /^([a-z]):([a-z])$/.exec(inner);
  if (letters) {
    const range: NameRange = { prefix, suffix, kind: 'letter', start: letters[1].charCodeAt(0), end: letters[2].charCodeAt(0), width: 0 };
    checkBounds(range, inner);
    return range;
  }
  throw new NameRangeError(shape);
}

function checkBounds(range: NameRange, inner: string): void {
  if (range.start > range.end) throw new NameRangeError(`range [${inner}] counts down: its start must not be after its end`);
  const size = range.end - range.start + 1;
  if (size > MAX_RANGE_SIZE) throw new NameRangeError(`range [${inner}] has ${size} names, more than the ${MAX_RANGE_SIZE} allowed`);
}

/** Number of names the range produces. */
export function rangeSize(range: NameRange): number {
  return range.end - range.start + 1;
}

/** The i-th name (0-based) of the range. */
export function rangeName(range: NameRange, i: number): string {
  const v = range.start + i;
  const middle = range.kind === 'letter' ? String.fromCharCode(v) : String(v).padStart(range.width, '0');
  return range.prefix + middle + range.suffix;
}

/** Every name of the range, in order. */
export function expandNameRange(range: NameRange): string[] {
  const names = new Array<string>(rangeSize(range));
  for (let i = 0; i < names.length; i++) names[i] = rangeName(range, i);
  return names;
}

const HOSTNAME = /^[a-z0-9][a-z0-9-]*$/;

/** Why `name` is not usable as a host name, or undefined when it is. */
export function hostnameProblem(name: string): string | undefined {
  if (name.length > 63) return `"${name}" is not a valid host name: longer than 63 characters`;
  if (!HOSTNAME.test(name)) {
    return `"${name}" is not a valid host name: use lowercase letters, digits and "-", starting with a letter or digit`;
  }
  return undefined;
}
