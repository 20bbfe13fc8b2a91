import { InventoryError, type InventoryProblem } from '../base/errors.js';

/** A path into the inventory document: map keys and list indexes. */
export type DocPath = readonly (string | number)[];

/** 1-based position in the rendered inventory text. */
export interface Position {
  line: number;
  column: number;
}

/** Finds where a path is in the document: on its key (`key`) or its value (`value`), else the nearest existing parent. */
export type Locate = (path: DocPath, at: 'key' | 'value') => Position;

/** Segments of a key path shown in a message. */
const MAX_PATH_SHOWN = 12;

/**
 * Formats a path as shown to users: `groups.workers.count`, `workloads.services[0].ports[1]`,
 * `labels["com.example.tier"]` for keys that are not plain words.
 */
export function formatPath(path: DocPath): string {
  // A path thousands of levels deep (hostile nesting) would make a message of megabytes: show its start and depth.
  if (path.length > MAX_PATH_SHOWN) return `${formatPath(path.slice(0, MAX_PATH_SHOWN))}... (${path.length} levels deep)`;
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (!/^[\w-]+$/.test(seg)) out += `[${JSON.stringify(seg)}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

/**
 * Collects every problem found in an inventory, with its position, so one run reports them all.
 * `note` adds a hint to messages whose line was produced by the template (it differs from the source file's line).
 */
export class ProblemList {
  readonly items: InventoryProblem[] = [];
  locate: Locate = () => ({ line: 1, column: 1 });

  constructor(
    readonly file: string,
    private readonly note: (line: number) => string = () => '',
  ) {}

  get size(): number {
    return this.items.length;
  }

  private readonly seen = new Set<string>();

  /** Records a problem at an explicit position (once: the same problem found twice is reported once). */
  addAt(pos: Position, key: string, message: string): void {
    const id = `${pos.line}:${pos.column}:${key}:${message}`;
    if (this.seen.has(id)) return;
    this.seen.add(id);
    this.items.push({ file: this.file, line: pos.line, column: pos.column, key, message: message + this.note(pos.line) });
  }

  /** Records a problem about the value at `path` (or, with `at: 'key'`, about the key itself). */
  add(path: DocPath, message: string, at: 'key' | 'value' = 'value'): void {
    this.addAt(this.locate(path, at), formatPath(path), message);
  }

  /** Throws one InventoryError listing every problem in file order, if there is any. */
  throwIfAny(): void {
    if (this.items.length === 0) return;
    const sorted = this.items
      .map((p, i) => ({ p, i }))
      .sort((a, b) => a.p.line - b.p.line || a.p.column - b.p.column || a.i - b.i)
      .map(({ p }) => p);
    throw new InventoryError(sorted);
  }
}
