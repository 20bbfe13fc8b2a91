import path from 'node:path';
import { createRequire } from 'node:module';
import nunjucks from 'nunjucks';
import { UsageError } from '../base/errors.js';
import type { ProblemList } from './problems.js';

/** What an inventory may be before rendering (a hand-written inventory is a few kB; 100,000 hosts fit in ranges). */
export const MAX_TEMPLATE_BYTES = 4 << 20;
/** What rendering may produce: V8 dies with a fatal "invalid size" on a string near 512 MB, with no message of ours. */
export const MAX_RENDERED_BYTES = 32 << 20;
/**
 * Iterations one render may make, over all loops (nested loops multiply), and items `range()` may hand out.
 * 200,000 keeps the worst case near 0.2 s, where 1,000,000 took 1 s alone and up to 7 s on a loaded machine
 * (bench/hostile-bench.ts); name ranges (worker-[1:100000]) make hosts without loops.
 */
export const MAX_RANGE_ITEMS = 200_000;

/**
 * nunjucks compiles every `{% for %}` to a call of `runtime.fromIterator(list)` before iterating, and exposes no
 * other hook on loops, so that one function is wrapped (once, for the process) to count what each loop will walk
 * against the budget of the render in progress. Rendering is synchronous, so at most one budget is active. Lists
 * from range() were counted when handed out and are not counted twice. The compiled loop does not record its own
 * line (only calls and output do), so compileFor is wrapped to emit it first: the error then names the loop's line.
 */
const require = createRequire(import.meta.url);
const runtime = require('nunjucks/src/runtime.js') as { fromIterator: (arr: unknown) => unknown };
interface LoopCompiler { _emitLine(code: string): void }
const compilerProto = (require('nunjucks/src/compiler.js') as { Compiler: { prototype: { compileFor: (this: LoopCompiler, node: { lineno: number; colno: number }, frame: unknown) => void } } }).Compiler.prototype;
const compileFor = compilerProto.compileFor;
compilerProto.compileFor = function (node, frame) {
  this._emitLine(`lineno = ${Number(node.lineno)}; colno = ${Number(node.colno)};`);
  compileFor.call(this, node, frame);
};
const fromRange = new WeakSet<object>();
let loopBudget: { left: number } | null = null;
const fromIterator = runtime.fromIterator;
runtime.fromIterator = (arr: unknown) => {
  const list = fromIterator(arr);
  if (loopBudget && list !== null && typeof list === 'object' && !fromRange.has(list)) {
    const items = Array.isArray(list) ? list.length : Object.keys(list).length;
    loopBudget.left -= items;
    if (loopBudget.left < 0) throw new UsageError(loopsMessage(`a loop over ${items.toLocaleString('en')} items here`));
  }
  return list;
};

function loopsMessage(here: string): string {
  return `the template's loops would run more than ${MAX_RANGE_ITEMS.toLocaleString('en')} times in all (${here}); use name ranges such as worker-[1:1000] for many hosts`;
}
/** Widths the padding filters (indent, center) may take: each repeats spaces per line. */
const MAX_FILTER_WIDTH = 10_000;

/**
 * Renders the inventory as a nunjucks template before it is parsed as YAML, so `{{ env.HOME }}` and loops work.
 * Returns null (after recording the problem) when the template does not compile or render.
 */
export function renderTemplate(text: string, file: string, env: NodeJS.ProcessEnv, problems: ProblemList): string | null {
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_TEMPLATE_BYTES) {
    problems.addAt({ line: 1, column: 1 }, '', `the inventory is ${(bytes / 1048576).toFixed(1)} MiB; at most ${MAX_TEMPLATE_BYTES >> 20} MiB is read (use name ranges such as worker-[1:1000] for many hosts)`);
    return null;
  }
  // `dev` keeps the error's own line and column instead of folding them into the message only.
  const nj = new nunjucks.Environment(new nunjucks.FileSystemLoader(path.dirname(file)), {
    autoescape: false,
    throwOnUndefined: false,
    dev: true,
  });
  // Caps on what rendering may build, checked as it builds: range() counts what it hands out (a huge range is never
  // allocated), every loop counts what it walks (see fromIterator above), and the padding filters are bounded.
  const budget = { left: MAX_RANGE_ITEMS };
  const range = nj.getGlobal('range') as (start: number, stop?: number, step?: number) => number[];
  nj.addGlobal('range', (start: number, stop?: number, step?: number) => {
    const lo = stop === undefined ? 0 : Number(start);
    const hi = stop === undefined ? Number(start) : Number(stop);
    const by = Math.abs(Number(step) || 1);
    const count = Number.isFinite(hi - lo) ? Math.max(0, Math.ceil(Math.abs(hi - lo) / by)) : Infinity;
    budget.left -= count;
    if (budget.left < 0) throw new UsageError(loopsMessage(`range() of ${Number.isFinite(count) ? count.toLocaleString('en') : 'an unbounded count'} here`));
    const list = range(start, stop, step);
    fromRange.add(list);
    return list;
  });
  for (const name of ['indent', 'center']) {
    const filter = nj.getFilter(name) as (...args: unknown[]) => unknown;
    nj.addFilter(name, (value: unknown, width?: unknown, ...rest: unknown[]) => {
      if (Number(width) > MAX_FILTER_WIDTH) throw new UsageError(`${name}(${String(width)}): at most ${MAX_FILTER_WIDTH} columns`);
      return filter(value, width, ...rest);
    });
  }
  let template: nunjucks.Template;
  try {
    template = new nunjucks.Template(text, nj, file, true);
  } catch (err) {
    const unclosed = /end of file/.test(templateMessage(err)) ? findUnclosed(text) : undefined;
    if (unclosed) {
      problems.addAt(unclosed.position, '', `template error: ${unclosed.message}`);
    } else {
      // The parser reports 1-based lines and columns.
      problems.addAt(templatePosition(err, text, 0), '', `template error: ${templateMessage(err)}`);
    }
    return null;
  }
  try {
    loopBudget = budget;
    const out = template.render({ env });
    if (out.length > MAX_RENDERED_BYTES) {
      problems.addAt({ line: 1, column: 1 }, '', `template error: the rendered inventory is ${(out.length / 1048576).toFixed(1)} MiB; at most ${MAX_RENDERED_BYTES >> 20} MiB may be rendered`);
      return null;
    }
    return out;
  } catch (err) {
    // Errors raised while rendering carry the compiler's 0-based line and column.
    problems.addAt(templatePosition(err, text, 1), '', `template error: ${templateMessage(err)}`);
    return null;
  } finally {
    loopBudget = null;
  }
}

interface NunjucksError {
  message?: string;
  lineno?: number;
  colno?: number;
}

/** The last line of nunjucks' message, without its "(file) [Line x, Column y]" header and "Error: " prefixes. */
function templateMessage(err: unknown): string {
  const raw = String((err as NunjucksError)?.message ?? err);
  const lines = raw.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  let msg = lines[lines.length - 1] ?? raw;
  msg = msg.replace(/^(?:Template render error: )?(?:\([^)]*\)(?: \[Line \d+, Column \d+\])?\s*)?/, '');
  msg = msg.replace(/^(?:(?:Usage)?Error: )+/, '').replace(/^parse\w*: /, '');
  if (msg === 'unexpected end of file') msg += ' (is an {% endfor %}, {% endif %} or closing "}}" missing?)';
  return msg;
}

function templatePosition(err: unknown, text: string, offset: number): { line: number; column: number } {
  const { lineno, colno } = (err as NunjucksError) ?? {};
  if (typeof lineno === 'number' && (lineno > 0 || offset > 0) && !(lineno === 0 && colno === 0)) {
    return { line: lineno + offset, column: Math.max(1, (colno ?? 0) + offset) };
  }
  const msg = templateMessage(err);
  // Some errors come without a position: find what they name in the source.
  const filter = /filter not found: (\S+)/.exec(msg) ?? /^(indent|center)\(/.exec(msg);
  if (filter) {
    const found = indexPosition(text, new RegExp(`\\|\\s*${escapeRegExp(filter[1])}\\b`));
    if (found) return found;
  }
  if (msg.startsWith('unexpected end of file')) {
    const lines = text.split('\n');
    const last = lines.length > 1 && lines[lines.length - 1] === '' ? lines.length - 1 : lines.length;
    return { line: last, column: 1 };
  }
  return { line: 1, column: 1 };
}

const BLOCK_TAGS = new Set(['if', 'for', 'asyncEach', 'asyncAll', 'macro', 'block', 'call', 'filter', 'raw', 'verbatim']);

/** The tag or comment the template never closes, for "end of file" errors that come without a position. */
function findUnclosed(text: string): { position: { line: number; column: number }; message: string } | undefined {
  const comment = text.lastIndexOf('{#');
  if (comment >= 0 && text.indexOf('#}', comment) < 0) {
    return { position: offsetPosition(text, comment), message: 'this comment is not closed: add "#}"' };
  }
  const stack: { tag: string; index: number }[] = [];
  for (const m of text.matchAll(/\{%-?\s*(\w+)/g)) {
    const tag = m[1];
    if (BLOCK_TAGS.has(tag)) stack.push({ tag, index: m.index ?? 0 });
    else if (tag.startsWith('end') && stack.length > 0 && stack[stack.length - 1].tag.toLowerCase() === tag.slice(3).toLowerCase()) stack.pop();
  }
  const open = stack.pop();
  if (open) return { position: offsetPosition(text, open.index), message: `{% ${open.tag} %} is not closed: add {% end${open.tag} %}` };
  const expr = text.lastIndexOf('{{');
  if (expr >= 0 && text.indexOf('}}', expr) < 0) return { position: offsetPosition(text, expr), message: 'this expression is not closed: add "}}"' };
  return undefined;
}

function offsetPosition(text: string, index: number): { line: number; column: number } {
  const before = text.slice(0, index);
  return { line: before.split('\n').length, column: index - before.lastIndexOf('\n') };
}

function indexPosition(text: string, re: RegExp): { line: number; column: number } | undefined {
  const m = re.exec(text);
  return m ? offsetPosition(text, m.index) : undefined;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A note for problems on lines the template changed, so the user knows the position is in the rendered text.
 * Empty when the rendered line is the same as the source's line.
 */
export function renderedLineNote(source: string, rendered: string): (line: number) => string {
  if (source === rendered) return () => '';
  const src = source.split('\n');
  const out = rendered.split('\n');
  return (line) => {
    const text = out[line - 1];
    if (text === undefined || src[line - 1] === text) return '';
    const shown = text.trim().length > 60 ? `${text.trim().slice(0, 57)}...` : text.trim();
    return ` (line ${line} of the rendered inventory: "${shown}")`;
  };
}
