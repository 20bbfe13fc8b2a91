/**
 * `plan` for cloud and mixed inventories, offline: the Swarm2k example's batches and calls per provider, and the
 * reachability check across providers' advertise address spaces.
 */
import assert from 'node:assert/strict';

import { join } from 'node:path';
import { test } from 'node:test';
import { openContext } from '../../src/cluster/context.js';
import { EventBus } from '../../src/base/events.js';
import { plan } from '../../src/core/plan.js';
import { up } from '../../src/core/up.js';
import { UsageError } from '../../src/base/errors.js';
import { existsSync } from 'node:fs';
import { formatPlan } from '../../src/cli/format.js';
import { cloudContext, operatorKey } from '../support/stubs/cloud-test-kit.js';
import { tempDir } from '../support/tmp.js';

process.env.SWARMFORM_HOME = tempDir('swarmform-reach-');
// No credentials at all: plan must not need them.
delete process.env.AWS_ACCESS_KEY_ID;
delete process.env.DIGITALOCEAN_ACCESS_TOKEN;
const { dir } = operatorKey();

test('swarm2k.yml: 3 managers + 2,381 workers; batches and API calls per provider; reachable', async () => {
  const p = plan(await openContext('inventories/swarm2k.yml', new EventBus()));
  assert.deepEqual(p.hosts, { managers: 3, workers: 2381, total: 2384 });
  const by = Object.fromEntries(p.providers.map((x) => [x.name, x]));
  assert.equal(by.aws!.hosts, 1203);
  assert.equal(by.digitalocean!.hosts, 800);
  assert.equal(by.ssh!.hosts, 381);
  const aws = by.aws!.lines.join('\n');
  assert.match(aws, /15 RunInstances batch\(es\) of up to 100/);
  assert.match(aws, /1203 CreateTags/);
  assert.ok(!/allow (2377|7946|4789)\S* from 0\.0\.0\.0\/0/.test(aws));
  assert.match(by.digitalocean!.lines.join('\n'), /80 create request\(s\) of up to 10 names/);
  assert.equal(p.reachability.ok, true, p.reachability.lines.join('\n'));
  assert.match(formatPlan(p), /Reachability: advertise addresses reach each other/);
});

test('the example inventories plan offline', async () => {
  for (const f of ['aws', 'digitalocean', 'virtualbox']) {
    const p = plan(await openContext(`inventories/${f}.yml`, new EventBus()));
    assert.equal(p.reachability.ok, true, `${f}: ${p.reachability.lines.join('\n')}`);
    assert.ok(p.providers[0]!.lines.length > 2);
  }
});

const mixed = (advertise: string, awsExtra = '', doExtra = '') => `cluster: t-cloud
provider: aws
providers:
  aws: { region: eu-west-1, ami: ami-00000000000000001, sshFrom: [203.0.113.7/32]${awsExtra} }
  digitalocean: { region: fra1, sshFrom: [203.0.113.7/32]${doExtra} }
swarm: { advertise: ${advertise} }
groups:
  managers: { role: manager, count: 3 }
  do: { role: worker, count: 5, provider: digitalocean }
`;

test('private addresses in two clouds: plan says they cannot reach each other', async () => {
  const { ctx } = await cloudContext(mixed('private'), dir);
  const r = plan(ctx).reachability;
  assert.equal(r.ok, false);
  assert.match(r.lines.join('\n'), /problem: aws 3 manager\(s\) advertise aws eu-west-1 default VPC private addresses; digitalocean 5 worker\(s\) advertise digitalocean fra1 default VPC private addresses: these do not route to each other/);
  assert.match(formatPlan(plan(ctx)), /Reachability: problem:/);
});

test('public addresses: the cloud firewalls shut the other cloud out unless swarmFrom lists it', async () => {
  const closed = plan((await cloudContext(mixed('public'), dir)).ctx).reachability;
  assert.equal(closed.ok, false);
  assert.match(closed.lines.join('\n'), /the aws security group admits the swarm ports .* only from its own members: the digitalocean hosts cannot reach the aws hosts/);
  assert.match(closed.lines.join('\n'), /the digitalocean cloud firewall .*: the aws hosts cannot reach the digitalocean hosts/);
  const open = plan((await cloudContext(mixed('public', ', swarmFrom: [198.51.100.0/24]', ', swarmFrom: [192.0.2.0/24]'), dir)).ctx).reachability;
  assert.equal(open.ok, true, open.lines.join('\n'));
});

test('a shared advertise CIDR (VPN or peering) is taken as reachable', async () => {
  const r = plan((await cloudContext(mixed('10.0.0.0/8'), dir)).ctx).reachability;
  assert.equal(r.ok, true, r.lines.join('\n'));
});

test('lab and VirtualBox hosts live on this machine only: mixing them with a cloud is a problem', async () => {
  const text = `cluster: t-cloud
providers:
  lab: { subnet: 198.18.50.0/24 }
  aws: { region: eu-west-1, ami: ami-00000000000000001, sshFrom: [203.0.113.7/32] }
groups:
  managers: { role: manager, count: 1, provider: lab }
  w: { role: worker, count: 2, provider: aws }
`;
  const r = plan((await cloudContext(text, dir)).ctx).reachability;
  assert.equal(r.ok, false);
  assert.match(r.lines[0]!, /lab bridge 198\.18\.50\.0\/24 on this machine/);
});

test('up refuses hosts that could not reach each other before it touches anything, naming the file and the keys', async () => {
  // Endpoints on a closed loopback port: should the check let it through, nothing could leave this machine.
  const text = mixed('private')
    .replace('aws: { region: eu-west-1', 'aws: { endpoint: "http://127.0.0.1:9", region: eu-west-1')
    .replace('digitalocean: { region: fra1', 'digitalocean: { endpoint: "http://127.0.0.1:9", region: fra1');
  const { ctx, seen, file } = await cloudContext(text, dir);
  await assert.rejects(up(ctx), (err: unknown) => {
    assert.ok(err instanceof UsageError, String(err));
    assert.equal(err.exitCode, 2);
    assert.ok(err.message.startsWith(`${file}: the hosts could not reach each other over the swarm ports:\n  problem: aws 3 manager(s) advertise`), err.message);
    assert.match(err.hint ?? '', /swarm\.advertise or providers\.<name>\.swarmFrom/);
    return true;
  });
  assert.deepEqual(seen.filter((e) => e.type === 'phase' || e.type === 'step'), []);
  assert.equal(existsSync(join(ctx.state.dir, 'state.json')), false, 'no state was written');
});
