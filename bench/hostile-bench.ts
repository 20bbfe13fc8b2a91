/**
 * Hostile input at volume: `node --import tsx bench/hostile-bench.ts [COUNT] [SEED]` (default 10,000, seed 1) runs
 * generated cases (test/support/hostile.ts) through the inventory and compose loaders in-process and prints, per
 * operator, how many ended in exit 2, were accepted (only allowed for mutations that can stay valid), or crashed,
 * and the slowest case. Exits 1 on any crash, wrongly accepted case, or case over 2 s.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostileCases, load, materialize } from '../test/support/hostile.js';

const count = Number(process.argv[2] ?? 10_000);
const seed = Number(process.argv[3] ?? 1);
const dir = mkdtempSync(join(tmpdir(), 'swarmform-hostile-'));
const cases = hostileCases(count, seed);
const stats = new Map<string, { n: number; errors: number; ok: number; crashes: number; maxMs: number; slowest: string }>();
const bad: string[] = [];
const t0 = performance.now();
try {
  for (const [i, c] of cases.entries()) {
    const file = materialize(c, dir, i);
    const s0 = performance.now();
    const out = await load(c, file);
    const ms = performance.now() - s0;
    rmSync(file, { recursive: true, force: true });
    const s = stats.get(c.operator) ?? { n: 0, errors: 0, ok: 0, crashes: 0, maxMs: 0, slowest: '' };
    s.n++;
    if (out.kind === 'error') s.errors++;
    if (out.kind === 'ok') s.ok++;
    if (out.kind === 'crash') {
      s.crashes++;
      bad.push(`${c.name}: crash: ${String((out.error as Error)?.message ?? out.error)}`);
    }
    if (out.kind === 'ok' && c.mustFail) bad.push(`${c.name}: accepted`);
    if (ms > 2000) bad.push(`${c.name}: ${ms.toFixed(0)} ms`);
    if (ms > s.maxMs) Object.assign(s, { maxMs: ms, slowest: c.name });
    stats.set(c.operator, s);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`| operator | cases | exit 2 | accepted | crashes | slowest ms |\n| --- | --- | --- | --- | --- | --- |`);
for (const [op, s] of [...stats].sort()) console.log(`| ${op} | ${s.n} | ${s.errors} | ${s.ok} | ${s.crashes} | ${s.maxMs.toFixed(0)} |`);
console.log(`\n${cases.length} cases in ${((performance.now() - t0) / 1000).toFixed(1)} s (seed ${seed}); ${bad.length} problem(s)`);
for (const b of bad.slice(0, 20)) console.log(`  ${b}`);
process.exitCode = bad.length ? 1 : 0;
