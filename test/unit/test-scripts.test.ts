/** package.json's test:sim and test:lab split test/integration in two: every file is in exactly one of them. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
const files = readdirSync(new URL('../integration/', import.meta.url)).filter((f) => f.endsWith('.test.ts'));
const matched = (script: string) => {
  const globs = pkg.scripts[script]!.split(/\s+/).filter((w) => w.startsWith('test/integration/'));
  const res = globs.map((g) => new RegExp(`^${g.slice('test/integration/'.length).replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}$`));
  return files.filter((f) => res.some((r) => r.test(f)));
};

test('test:sim and test:lab cover every integration test file once', () => {
  const sim = matched('test:sim');
  const lab = matched('test:lab');
  assert.deepEqual(sim.filter((f) => lab.includes(f)), [], 'in both');
  assert.deepEqual(files.filter((f) => !sim.includes(f) && !lab.includes(f)), [], 'in neither: add it to test:sim or test:lab');
  // A file of test:sim makes no lab hosts.
  for (const f of sim) assert.doesNotMatch(readFileSync(new URL(`../integration/${f}`, import.meta.url), 'utf8'), /labProvider|lab-cleanup|labTestContext|inventories\/lab/, f);
});
