import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node as YamlNode,
  type Pair,
  type YAMLMap,
} from 'yaml';
import { formatPath, type DocPath, type Position, type ProblemList } from './problems.js';

/** The parsed inventory document with positions: turns document paths into line and column. */
export class YamlSource {
  private constructor(
    readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  /** Parses `text`; syntax errors (and duplicate keys) go to `problems` and yield null. */
  static parse(text: string, problems: ProblemList): YamlSource | null {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
    const source = new YamlSource(doc, lines);
    if (doc.errors.length === 0) return source;
    const seenLines = new Set<number>();
    for (const err of doc.errors) {
      const pos = source.position(err.pos[0]);
      // One error per line: the parser's follow-on complaints about the same spot only add noise.
      if (seenLines.has(pos.line)) continue;
      seenLines.add(pos.line);
      const path = source.pathAt(err.pos[0]);
      problems.addAt(pos, formatPath(path), source.describeError(err.code, err.message, path, pos));
    }
    return null;
  }

  /** The document as plain data (aliases and merge keys resolved). */
  toJS(): unknown {
    return this.doc.toJS();
  }

  /** 1-based line and column of a character offset. */
  position(offset: number): Position {
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  /**
   * Position of `path`: its key node (`at: 'key'`) or value node; when the path does not exist (a missing key),
   * the key of the nearest existing parent.
   */
  locate(path: DocPath, at: 'key' | 'value'): Position {
    let node: unknown = this.doc.contents;
    let fallback = rangeStart(node) ?? 0;
    for (let i = 0; i < path.length; i++) {
      node = this.deref(node);
      if (isMap(node)) {
        const pair = this.findPair(node, path[i]);
        if (!pair) return this.position(fallback);
        fallback = rangeStart(pair.key) ?? fallback;
        if (i === path.length - 1 && at === 'key') return this.position(fallback);
        node = pair.value;
      } else if (isSeq(node)) {
        const item = node.items[Number(path[i])];
        if (item === undefined || Number.isNaN(Number(path[i]))) return this.position(fallback);
        fallback = rangeStart(item) ?? fallback;
        node = item;
      } else {
        return this.position(fallback);
      }
    }
    // An empty value (`count:`) has a zero-width range after the colon: its key is the better place to point at.
    const start = rangeStart(node);
    const empty = isScalar(node) && node.range && node.range[0] === node.range[1];
    return this.position(start === undefined || empty ? fallback : start);
  }

  /** Keys of the mapping at `path` in document order, or undefined when there is no mapping there. */
  keysInOrder(path: DocPath): string[] | undefined {
    let node: unknown = this.doc.contents;
    for (const seg of path) {
      node = this.deref(node);
      if (isMap(node)) node = this.findPair(node, seg)?.value;
      else if (isSeq(node)) node = node.items[Number(seg)];
      else return undefined;
    }
    node = this.deref(node);
    if (!isMap(node)) return undefined;
    const keys: string[] = [];
    for (const pair of node.items) {
      if (isScalar(pair.key) && typeof pair.key.value !== 'symbol') keys.push(String(pair.key.value));
    }
    return keys;
  }

  /** The deepest path whose key or value contains `offset`. */
  pathAt(offset: number): (string | number)[] {
    const path: (string | number)[] = [];
    let node: unknown = this.doc.contents;
    for (;;) {
      node = isAlias(node) ? undefined : node;
      if (isMap(node)) {
        const pair = node.items.find((p) => contains(p.key, offset) || contains(p.value, offset));
        if (!pair || !isScalar(pair.key)) return path;
        path.push(String(pair.key.value));
        if (contains(pair.key, offset)) return path;
        node = pair.value;
      } else if (isSeq(node)) {
        const index = node.items.findIndex((item) => contains(item, offset));
        if (index < 0) return path;
        path.push(index);
        node = node.items[index];
      } else {
        return path;
      }
    }
  }

  private describeError(code: string, message: string, path: DocPath, here: Position): string {
    if (code === 'DUPLICATE_KEY') {
      const first = this.firstDefinition(path);
      if (!first) return 'duplicate key';
      return `duplicate key (first defined on line ${first.line}${first.line === here.line ? `, column ${first.column}` : ''})`;
    }
    if (code === 'MULTIPLE_DOCS') return 'an inventory is a single YAML document: remove the "---" separator';
    if (/Maximum call stack size exceeded/.test(message)) return 'nested too deeply for the YAML reader (hundreds of levels of [ or {)';
    return `YAML syntax error: ${message}`;
  }

  /** Position of the first pair for the last key of `path` in its mapping (for duplicate keys). */
  private firstDefinition(path: DocPath): Position | undefined {
    if (path.length === 0) return undefined;
    let node: unknown = this.doc.contents;
    for (const seg of path.slice(0, -1)) {
      if (isMap(node)) node = this.findPair(node, seg)?.value;
      else if (isSeq(node)) node = node.items[Number(seg)];
      else return undefined;
    }
    if (!isMap(node)) return undefined;
    const pair = this.findPair(node, path[path.length - 1]);
    const start = pair ? rangeStart(pair.key) : undefined;
    return start === undefined ? undefined : this.position(start);
  }

  private deref(node: unknown): unknown {
    for (let hops = 0; isAlias(node) && hops < 100; hops++) node = node.resolve(this.doc);
    return node;
  }

  /** The pair for `key` (compared as text, so `1:` matches path segment "1"), looking through `<<` merge keys too. */
  private findPair(map: YAMLMap, key: string | number, depth = 0): Pair | undefined {
    const want = String(key);
    for (const pair of map.items) {
      if (isScalar(pair.key) && typeof pair.key.value !== 'symbol' && String(pair.key.value) === want) return pair;
    }
    if (depth > 20) return undefined;
    for (const pair of map.items) {
      if (!isScalar(pair.key) || (typeof pair.key.value !== 'symbol' && pair.key.value !== '<<')) continue;
      const source = this.deref(pair.value);
      const sources = isSeq(source) ? source.items.map((s) => this.deref(s)) : [source];
      for (const s of sources) {
        if (!isMap(s)) continue;
        const found = this.findPair(s, key, depth + 1);
        if (found) return found;
      }
    }
    return undefined;
  }
}

function rangeStart(node: unknown): number | undefined {
  if (isPair(node)) return rangeStart(node.key);
  const range = (node as YamlNode | null | undefined)?.range;
  return range ? range[0] : undefined;
}

function contains(node: unknown, offset: number): boolean {
  const range = (node as YamlNode | null | undefined)?.range;
  return !!range && range[0] <= offset && offset < Math.max(range[2], range[0] + 1);
}
