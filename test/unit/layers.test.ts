/**
 * The folders of src in dependency order: a file may import from its own folder and from folders below it, never
 * from one above (docs/architecture.md explains each layer). Imports are read with TypeScript's own pre-processor,
 * so `import type`, `export ... from` and dynamic `import()` all count.
 */
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** Lowest first. */
export const LAYERS = ['base', 'run', 'state', 'remote', 'inventory', 'providers', 'bootstrap', 'swarm', 'cluster', 'raft', 'core', 'cli'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const layerOf = (file: string) => relative(SRC, file).split('/')[0]!;

function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.map((f) => f.fileName).filter((name) => name.startsWith('.'));
}

describe('layers', () => {
  const files = sources(SRC);

  it('every folder of src has a place in the order', () => {
    const folders = new Set(files.map(layerOf));
    assert.deepEqual([...folders].filter((f) => !LAYERS.includes(f)), [], 'add the new folder to LAYERS and to docs/architecture.md');
  });

  it('imports point only down (or within a folder)', () => {
    const upward: string[] = [];
    let edges = 0;
    for (const file of files) {
      const from = layerOf(file);
      for (const spec of importsOf(file)) {
        const to = layerOf(resolve(dirname(file), spec));
        edges++;
        if (LAYERS.indexOf(to) > LAYERS.indexOf(from)) upward.push(`${relative(SRC, file)} imports ${spec} (${from} -> ${to})`);
      }
    }
    assert.ok(edges > 500, `read ${edges} imports: the parser found too few`);
    assert.deepEqual(upward, []);
  });

  it('finds an upward import when there is one', () => {
    const info = ts.preProcessFile("import type { X } from '../cli/main.js';\nexport { y } from './y.js';\nawait import('../core/up.js');", true, true);
    assert.deepEqual(info.importedFiles.map((f) => f.fileName), ['../cli/main.js', './y.js', '../core/up.js']);
  });
});
