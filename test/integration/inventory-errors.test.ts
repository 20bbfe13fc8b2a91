/** Bad input through the real CLI: a clear error naming file, line and key, exit 2, and nothing touched. */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, labLeftovers, testHome } from '../support/lab.js';

test('a bad inventory exits 2, names file:line:col and key, and creates nothing', async () => {
  const home = testHome();
  const file = join(home, 'bad.yml');
  writeFileSync(file, 'cluster: t-bad\ngroups:\n  managers:\n    role: manager\n    count: three\n');
  const r = await cli(['up', '-i', file], { SWARMFORM_HOME: home });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:5:\\d+: groups\\.managers\\.count`));
  assert.equal(existsSync(join(home, 't-bad')), false, 'no state written');
  assert.deepEqual(await labLeftovers('t-bad'), []);
});

test('an unknown command is a usage error', async () => {
  const r = await cli(['frobnicate'], {});
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Unknown argument|Unknown command/i);
});
