/**
 * Hostile and broken input, generated: mutations of the example inventories and compose files (wrong types,
 * unknown and misspelt keys, duplicate names and overlapping ranges, bad CIDRs and ports, huge numbers, unicode
 * and control characters, YAML alias bombs, deep nesting, template errors and loops, binary garbage, truncation,
 * and paths that are not readable files). Deterministic for a seed, so a failing case can be replayed by its name.
 * Used by test/integration/hostile-input.test.ts (a few hundred cases) and bench/hostile-bench.ts (10,000).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InventoryError, UsageError } from '../../src/base/errors.js';
import { loadInventory } from '../../src/inventory/index.js';
import { providers } from '../../src/providers/registry.js';
import { loadStack } from '../../src/swarm/compose/load.js';
import { ROOT } from './lab.js';

export type Kind = 'inventory' | 'compose';

export interface HostileCase {
  /** `source/operator#n`: enough to replay it. */
  name: string;
  kind: Kind;
  source: string;
  operator: string;
  /** The file's content; `path` cases say what to put at the path instead. */
  content?: Buffer;
  path?: 'missing' | 'directory' | 'fifo' | 'dangling-link' | 'huge';
  /** True when the mutation cannot leave a valid file, so exit 2 is the only right answer. */
  mustFail: boolean;
}

export function sources(): { kind: Kind; name: string; text: string }[] {
  const inv = readdirSync(join(ROOT, 'inventories'))
    .filter((f) => f.endsWith('.yml'))
    .sort()
    .map((f) => ({ kind: 'inventory' as const, name: `inventories/${f}`, text: readFileSync(join(ROOT, 'inventories', f), 'utf8') }));
  const stacks = ['wordpress.yml', 'override.yml'].map((f) => ({
    kind: 'compose' as const,
    name: `test/fixtures/stacks/${f}`,
    text: readFileSync(join(ROOT, 'test/fixtures/stacks', f), 'utf8'),
  }));
  return [...inv, ...stacks];
}

/** mulberry32: small, fast, good enough to pick mutations. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** Lines of the form `  key: value` outside comments, with their index. */
function keyLines(text: string): { i: number; indent: string; key: string; value: string }[] {
  return text.split('\n').flatMap((l, i) => {
    const m = /^(\s*)(?:- )?([A-Za-z_][\w.-]*):(?:\s+(.*))?$/.exec(l);
    return m && !l.trimStart().startsWith('#') ? [{ i, indent: m[1]!, key: m[2]!, value: m[3] ?? '' }] : [];
  });
}

function replaceLine(text: string, i: number, line: string): string {
  const lines = text.split('\n');
  lines[i] = line;
  return lines.join('\n');
}

interface Operator {
  name: string;
  mustFail: boolean;
  kinds?: Kind[];
  /** Returns the mutated text, or undefined when this source has nothing to mutate this way. */
  apply: (text: string, r: Rand, kind: Kind) => string | Buffer | undefined;
}

const BAD_SCALARS = ['[1, 2]', '{ a: 1 }', 'true', '-1', '"x"', '1.5', 'null', '~', '0x7fffffffffffffff', '1e308', '.nan'];
const CONTROL = ['\u0000', '\u0007', '\u001b[2J', '\u202e', '\ud83d\ude00', '\u00e9\u0301', '\ufffe', '\u2028'];

const OPERATORS: Operator[] = [
  {
    name: 'wrong-type',
    mustFail: false,
    apply: (t, r) => {
      const ls = keyLines(t).filter((l) => l.value && !l.value.startsWith('|') && !l.value.startsWith('>'));
      if (!ls.length) return undefined;
      const l = pick(r, ls);
      return replaceLine(t, l.i, `${l.indent}${l.key}: ${pick(r, BAD_SCALARS)}`);
    },
  },
  {
    name: 'misspelt-key',
    mustFail: false,
    apply: (t, r) => {
      const ls = keyLines(t).filter((l) => l.key.length > 3);
      if (!ls.length) return undefined;
      const l = pick(r, ls);
      const k = l.key;
      const j = 1 + Math.floor(r() * (k.length - 2));
      const spelt = k.slice(0, j) + k[j + 1] + k[j] + k.slice(j + 2);
      return replaceLine(t, l.i, t.split('\n')[l.i]!.replace(`${k}:`, `${spelt === k ? `${k}x` : spelt}:`));
    },
  },
  {
    name: 'unknown-top-key',
    mustFail: true,
    apply: (t, r) => `${t}\n${pick(r, ['sawrm', 'grups', 'provder', 'unknown', 'services2'])}: { a: 1 }\n`,
  },
  {
    name: 'duplicate-key',
    mustFail: true,
    apply: (t, r) => {
      const ls = keyLines(t).filter((l) => l.value && !l.value.startsWith('|') && !l.value.startsWith('>') && !t.split('\n')[l.i]!.trimStart().startsWith('- '));
      if (!ls.length) return undefined;
      const l = pick(r, ls);
      const lines = t.split('\n');
      lines.splice(l.i + 1, 0, lines[l.i]!);
      return lines.join('\n');
    },
  },
  {
    name: 'duplicate-group-range',
    mustFail: true,
    kinds: ['inventory'],
    apply: (t) => (/^groups:/m.test(t) ? t.replace(/^groups:\n/m, 'groups:\n  dupA: { role: worker, name: "dup-[1:5]" }\n  dupB: { role: worker, name: "dup-[3:9]" }\n') : undefined),
  },
  {
    name: 'bad-cidr',
    mustFail: true,
    kinds: ['inventory'],
    apply: (t, r) => {
      const bad = pick(r, ['300.1.2.0/24', '10.0.0.0/33', '10.0.0.0/-1', '::g/64', '10.0.0.0/8/8']);
      const at = /^([^#\n]*\bsubnet: )[^\s,}]+/m;
      return at.test(t) ? t.replace(at, `$1${bad}`) : `${t}\nswarm: { advertise: ${bad} }\n`;
    },
  },
  {
    name: 'bad-port',
    mustFail: true,
    kinds: ['inventory'],
    apply: (t, r) => `${t.replace(/^ssh:.*$/m, '')}\nssh: { port: ${pick(r, ['70000', '-1', '0', '22.5', '"twenty-two"', '1e9'])} }\n`,
  },
  {
    name: 'bad-published-port',
    mustFail: true,
    kinds: ['compose'],
    apply: (t, r) => t.replace(/^services:\n/m, `services:\n  badport:\n    image: swarmform/busybox:latest\n    ports: ["${pick(r, ['70000:80', '80:0', '-1:80', 'a:b', '80:80/sctpx'])}"]\n`),
  },
  {
    name: 'huge-number',
    mustFail: true,
    apply: (t, r) => {
      const n = pick(r, ['99999999999999999999', '1e308', '123456789012', '-99999999']);
      return /count: \d+/.test(t) ? t.replace(/count: \d+/, `count: ${n}`) : /replicas: \d+/.test(t) ? t.replace(/replicas: \d+/, `replicas: ${n}`) : undefined;
    },
  },
  {
    name: 'control-chars',
    mustFail: false,
    apply: (t, r) => {
      const ls = keyLines(t).filter((l) => l.value);
      if (!ls.length) return undefined;
      const l = pick(r, ls);
      const c = pick(r, CONTROL);
      return replaceLine(t, l.i, r() < 0.5 ? `${l.indent}${l.key}${c}: ${l.value}` : `${l.indent}${l.key}: ${l.value}${c}`);
    },
  },
  {
    name: 'alias-bomb',
    mustFail: true,
    apply: (t) => {
      const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
      for (let i = 1; i < 9; i++) {
        const p = String.fromCharCode(96 + i);
        const q = String.fromCharCode(97 + i);
        levels.push(`${q}: &${q} [*${p},*${p},*${p},*${p},*${p},*${p},*${p},*${p},*${p}]`);
      }
      return `${t}\nx-bomb:\n${levels.map((l) => `  ${l}`).join('\n')}\n`;
    },
  },
  {
    name: 'deep-nesting',
    mustFail: true,
    // Compose allows x- keys anywhere at the top: nest under a service's image there, which must be a string.
    apply: (t, r, kind) => {
      const d = pick(r, [500, 5000, 50000]);
      const deep = `${'['.repeat(d)}${']'.repeat(d)}`;
      return kind === 'compose' ? t.replace(/^services:\n/m, `services:\n  deep:\n    image: ${deep}\n`) : `${t}\ndeepkey: ${deep}\n`;
    },
  },
  {
    name: 'deep-block-nesting',
    mustFail: true,
    apply: (t, _r, kind) => {
      const deep = Array.from({ length: 400 }, (_, i) => `${' '.repeat(i + 5)}k${i}:`).join('\n');
      return kind === 'compose' ? t.replace(/^services:\n/m, `services:\n  deep:\n    image:\n${deep} 1\n`) : `${t}\ndeepkey:\n${deep} 1\n`;
    },
  },
  {
    name: 'template-error',
    mustFail: true,
    kinds: ['inventory'],
    apply: (t, r) => `${t}\n# ${pick(r, ['{{ foo(', '{% for %}', '{% for i in range(3) %}x', '{% if %}', '{{ 1 + }}', '{% endfor %}', '{% include "/etc/shadow" %}', '{{ range(1e12) | length }}'])}\n`,
  },
  {
    name: 'template-loop',
    mustFail: true,
    kinds: ['inventory'],
    apply: (t, r) =>
      `${t}\n# ${pick(r, [
        '{% for i in range(100000000) %}x{% endfor %}',
        '{% for i in range(10000) %}{% for j in range(10000) %}xx{% endfor %}{% endfor %}',
        '{{ "a" | indent(100000000) }}',
        '{% for i in range(900000) %}{{ "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy" }}{% endfor %}',
        '{% for i in range(2000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}',
        `{% set l = [${Array.from({ length: 1000 }, (_, i) => i).join(',')}] %}{% for i in l %}{% for j in l %}{% for k in l %}{% endfor %}{% endfor %}{% endfor %}`,
        '{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}',
      ])}\n`,
  },
  {
    name: 'binary-garbage',
    mustFail: true,
    apply: (_t, r) => {
      const b = Buffer.alloc(256 + Math.floor(r() * 4096));
      for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
      b[0] = 0xff; // never a UTF-8 text start: keeps it from being a valid document by chance
      b[1] = 0x00;
      return b;
    },
  },
  {
    name: 'truncated',
    mustFail: false,
    apply: (t, r) => t.slice(0, Math.floor(r() * t.length)),
  },
  {
    name: 'tabs',
    mustFail: false,
    apply: (t) => (/^ {2}\S/m.test(t) ? t.replace(/^ {2}(?=\S)/gm, '\t') : undefined),
  },
  {
    name: 'two-documents',
    mustFail: true,
    apply: (t) => `${t}\n---\n${t}`,
  },
  {
    name: 'not-a-mapping',
    mustFail: true,
    apply: (_t, r) => pick(r, ['- a\n- b\n', '"just a string"\n', '42\n', '', '# only a comment\n', 'null\n']),
  },
];

const PATH_CASES: HostileCase['path'][] = ['missing', 'directory', 'fifo', 'dangling-link', 'huge'];

/** `count` cases, spread evenly over sources and operators, for `seed`. */
export function hostileCases(count: number, seed = 1): HostileCase[] {
  const r = rng(seed);
  const srcs = sources();
  const out: HostileCase[] = [];
  for (const kind of ['inventory', 'compose'] as const) {
    for (const p of PATH_CASES) out.push({ name: `${kind}/path-${p}`, kind, source: '-', operator: `path-${p}`, path: p, mustFail: true });
  }
  let n = 0;
  for (let tries = 0; out.length < count && tries < count * 20; tries++) {
    const op = OPERATORS[tries % OPERATORS.length]!;
    const candidates = srcs.filter((s) => !op.kinds || op.kinds.includes(s.kind));
    const src = pick(r, candidates);
    const content = op.apply(src.text, r, src.kind);
    if (content === undefined) continue;
    out.push({
      name: `${src.name}/${op.name}#${n++}`,
      kind: src.kind,
      source: src.name,
      operator: op.name,
      content: typeof content === 'string' ? Buffer.from(content) : content,
      mustFail: op.mustFail,
    });
  }
  return out;
}

/** Puts a case at a path of its own and returns the path. */
export function materialize(c: HostileCase, base: string, i: number): string {
  const file = join(base, `case-${i}.yml`);
  rmSync(file, { recursive: true, force: true });
  switch (c.path) {
    case 'missing':
      break;
    case 'directory':
      mkdirSync(file);
      break;
    case 'fifo':
      execFileSync('mkfifo', [file]);
      break;
    case 'dangling-link':
      symlinkSync(join(base, 'nowhere', 'x.yml'), file);
      break;
    case 'huge':
      writeFileSync(file, '');
      truncateSync(file, 5 * 1024 ** 3); // sparse: 5 GiB on paper, nothing on disk
      break;
    default:
      writeFileSync(file, c.content!);
  }
  return file;
}

/** A message longer than this is unreadable, whatever the input was. */
const MAX_MESSAGE = 20_000;

export type Outcome = { kind: 'ok' } | { kind: 'error'; message: string } | { kind: 'crash'; error: unknown };

export async function load(c: HostileCase, file: string): Promise<Outcome> {
  try {
    if (c.kind === 'inventory') await loadInventory(file, { providers, env: {} });
    else loadStack('hostile', [file], { env: {} });
    return { kind: 'ok' };
  } catch (err) {
    if (err instanceof InventoryError) {
      for (const p of err.problems) {
        if (p.file !== file || !(p.line >= 1)) return { kind: 'crash', error: new Error(`a problem without this file's line: ${JSON.stringify(p)}`) };
      }
      if (err.message.length > MAX_MESSAGE) return { kind: 'crash', error: new Error(`a message of ${err.message.length} characters`) };
      return { kind: 'error', message: err.message };
    }
    if (err instanceof UsageError) {
      if (!err.message.includes(file)) return { kind: 'crash', error: new Error(`the message does not name the file: ${err.message}`) };
      return { kind: 'error', message: err.message };
    }
    return { kind: 'crash', error: err };
  }
}
