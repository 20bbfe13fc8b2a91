import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openContext } from '../../src/cluster/context.js';
import { EventBus } from '../../src/base/events.js';
import { plan } from '../../src/core/plan.js';
import { formatPlan } from '../../src/cli/format.js';
import { tempDir } from '../support/tmp.js';

process.env.SWARMFORM_HOME = tempDir('swarmform-plan-');

test('plan of the default lab inventory: quorum, firewall scoped to members, join pacing', async () => {
  const ctx = await openContext('inventories/lab.yml', new EventBus());
  const p = plan(ctx);
  assert.deepEqual(p.hosts, { managers: 3, workers: 3, total: 6 });
  assert.equal(p.quorum.quorum, 2);
  assert.equal(p.quorum.tolerates, 1);
  assert.deepEqual(p.quorum.warnings, []);
  assert.deepEqual(p.firewall.map((f) => `${f.port}/${f.protocol}`), ['2377/tcp', '7946/tcp', '7946/udp', '4789/udp']);
  assert.ok(p.firewall.every((f) => f.from === 'cluster members only'));
  assert.deepEqual(p.joins, { concurrency: 12, perManager: 4 });
  assert.match(p.providers[0]!.lines.join('\n'), /6 hosts .*198\.18\.0\.0\/24/);
  assert.match(formatPlan(p), /Raft quorum: 2 of 3, tolerates 1/);
});

test('plan warns about an even manager count and spreads joins over managers', async () => {
  const dir = tempDir('swarmform-plan-inv-');
  const file = join(dir, 'even.yml');
  writeFileSync(file, 'cluster: even\nproviders: { lab: { subnet: 198.18.16.0/20 } }\nswarm: { joinConcurrency: 10, advertise: 10.0.0.0/8 }\ngroups:\n  m: { role: manager, count: 4 }\n  w: { role: worker, count: 2000 }\n');
  const p = plan(await openContext(file, new EventBus()));
  assert.equal(p.quorum.tolerates, 1);
  assert.match(p.quorum.warnings.join(), /odd/);
  assert.equal(p.joins.perManager, 3);
  assert.ok(p.firewall.every((f) => f.from === '10.0.0.0/8'));
});

test("up's summary claims the cluster is up only when no host failed", async () => {
  const { formatUp } = await import('../../src/cli/format.js');
  const base = {
    cluster: 'c1',
    changed: 5,
    changes: { provision: 1, bootstrap: 1, images: 0, swarm: 2, workloads: 1 },
    endpoints: [],
    phaseMs: {},
  };
  assert.match(formatUp({ ...base, failures: [] }, 'lab.yml', 12.34).split('\n')[0]!, /^Cluster c1 is up in 12\.3 s \(created 1/);
  const partial = formatUp({ ...base, failures: [{ host: 'w-1', step: 'ssh', message: 'x' }, { host: 'w-2', step: 'ssh', message: 'y' }] }, 'lab.yml', 9);
  assert.match(partial.split('\n')[0]!, /^Cluster c1 is partly up after 9\.0 s, 2 host\(s\) failed/);
  assert.doesNotMatch(partial, /is up in/);
});
