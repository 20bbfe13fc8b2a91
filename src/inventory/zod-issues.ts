/**
 * Turns zod issues into inventory problems: messages that say what was expected and what was found, unknown keys
 * pointed at the key itself, union failures reported from the branch that matched the value's shape.
 * Used for the inventory's own schema and for every provider's schemas.
 */
import type { z, ZodType } from 'zod';
import type { DocPath, ProblemList } from './problems.js';

type RawIssue = z.core.$ZodRawIssue;
type Issue = z.core.$ZodIssue;

/** Shows a found value in a message: strings quoted, collections by kind. */
export function showValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  return String(v);
}

/** "expected X, got Y", or "missing (expected X)" for an absent value. */
export function expectedMessage(what: string, input: unknown): string {
  return input === undefined ? `missing (expected ${what})` : `expected ${what}, got ${showValue(input)}`;
}

/**
 * Schema parameter giving the schema's own issues the message "expected `what`, got ...". Issues about a container's
 * contents (unknown keys, bad record keys) keep their own messages.
 */
export function expecting(what: string): { error: (iss: { code?: string; input?: unknown }) => string | undefined } {
  return {
    error: (iss) =>
      iss.code === 'unrecognized_keys' || iss.code === 'invalid_key' || iss.code === 'invalid_element'
        ? undefined
        : expectedMessage(what, iss.input),
  };
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  record: 'a mapping (key: value)',
  map: 'a mapping (key: value)',
  array: 'a list',
  tuple: 'a list',
  null: 'an empty value',
};

const plural = (n: number | bigint, word: string) => `${n} ${word}${n === 1 || n === 1n ? '' : 's'}`;

/** Per-parse error map: readable messages for issues whose schema did not set its own. */
export const inventoryErrorMap: z.core.$ZodErrorMap = (iss: RawIssue) => {
  const input = iss.input;
  switch (iss.code) {
    case 'invalid_type':
      return expectedMessage(TYPE_NAMES[iss.expected] ?? `a value of type ${iss.expected}`, input);
    case 'invalid_value':
      return expectedMessage(
        iss.values.length === 1 ? JSON.stringify(iss.values[0]) : `one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}`,
        input,
      );
    case 'too_small': {
      const n = iss.minimum;
      if (iss.origin === 'string') return expectedMessage(Number(n) <= 1 ? 'a non-empty string' : `at least ${plural(n, 'character')}`, input);
      if (iss.origin === 'array' || iss.origin === 'set') return expectedMessage(`at least ${plural(n, 'item')}`, input);
      return expectedMessage(`a number ${iss.inclusive ? '>=' : '>'} ${n}`, input);
    }
    case 'too_big': {
      const n = iss.maximum;
      if (iss.origin === 'string') return expectedMessage(`at most ${plural(n, 'character')}`, input);
      if (iss.origin === 'array' || iss.origin === 'set') return expectedMessage(`at most ${plural(n, 'item')}`, input);
      return expectedMessage(`a number ${iss.inclusive ? '<=' : '<'} ${n}`, input);
    }
    case 'invalid_format':
      if (iss.format === 'regex') return expectedMessage(`a string matching ${iss.pattern}`, input);
      return expectedMessage(`a valid ${iss.format}`, input);
    case 'not_multiple_of':
      return expectedMessage(`a multiple of ${iss.divisor}`, input);
    case 'unrecognized_keys': {
      const shape = (iss.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
      const known = shape ? Object.keys(shape) : [];
      return known.length > 0 ? `unknown key (expected one of: ${known.join(', ')})` : 'unknown key (no keys are accepted here)';
    }
    case 'invalid_key':
      return `invalid key ${showValue(input)}`;
    case 'invalid_union':
      return `${showValue(input)} is not one of the accepted forms`;
    default:
      return undefined;
  }
};

/** Parses `value` with `schema` using the inventory's messages. */
export function parseWith<T extends ZodType>(schema: T, value: unknown): ReturnType<T['safeParse']> {
  return schema.safeParse(value, { error: inventoryErrorMap }) as ReturnType<T['safeParse']>;
}

/** Records every issue at the position of its path (prefixed with `base`). */
export function reportIssues(issues: readonly Issue[], base: DocPath, problems: ProblemList): void {
  for (const iss of issues) {
    const path = [...base, ...(iss.path as (string | number)[])];
    if (iss.code === 'unrecognized_keys') {
      for (const key of iss.keys) problems.add([...path, key], withSuggestion(iss.message, key), 'key');
    } else if (iss.code === 'invalid_union') {
      const branch = closestBranch(iss.errors);
      if (branch) reportIssues(branch, path, problems);
      else problems.add(path, iss.message);
    } else if ((iss.code === 'invalid_key' || iss.code === 'invalid_element') && iss.issues.length > 0) {
      problems.add(path, `${iss.message}: ${iss.issues[0].message}`, iss.code === 'invalid_key' ? 'key' : 'value');
    } else {
      problems.add(path, iss.message);
    }
  }
}

/**
 * The union branch that accepted the value's type and failed deeper (e.g. a list whose second item is wrong);
 * undefined when every branch rejected the value's type outright (then the union's own message is clearer).
 */
function closestBranch(branches: readonly Issue[][]): Issue[] | undefined {
  const candidates = branches.filter((b) => b.length > 0 && !b.every((i) => i.path.length === 0 && i.code === 'invalid_type'));
  if (candidates.length === 0) return undefined;
  return candidates.reduce((best, b) => (b.length < best.length ? b : best));
}

/** Adds "did you mean" for an unknown key that is a small typo of a known one. */
function withSuggestion(message: string, key: string): string {
  const list = /expected one of: ([^)]*)\)/.exec(message)?.[1]?.split(', ') ?? [];
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const known of list) {
    const d = editDistance(key.toLowerCase(), known.toLowerCase());
    if (d < bestDistance) {
      best = known;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(key.length / 3)) ? `${message}; did you mean "${best}"?` : message;
}

/** Levenshtein distance with adjacent transpositions (so "cuont" is one edit from "count"). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}
