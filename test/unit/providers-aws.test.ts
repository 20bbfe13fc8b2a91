/**
 * The aws provider through the real EC2 SDK client against a loopback EC2 stub (query protocol, XML answers), so
 * the SDK's signing, pagination and retry strategy run for real: batching at Swarm2k size, throttling, capacity
 * shortfalls, a batch that fails half way, re-runs without duplicates, and teardown by tags.
 */
import assert from 'node:assert/strict';

import { after, before, test } from 'node:test';
import { plan } from '../../src/core/plan.js';
import { AwsProvider, awsCallPlan } from '../../src/providers/aws/index.js';
import { awsSettings } from '../../src/providers/aws/settings.js';
import type { Machine } from '../../src/base/machine.js';
import { Ec2Stub } from '../support/stubs/ec2-stub.js';
import { cloudContext, FAKE, messages, operatorKey, sshBanner, useFakeCloudEnv } from '../support/stubs/cloud-test-kit.js';
import { tempDir } from '../support/tmp.js';

process.env.SWARMFORM_HOME = tempDir('swarmform-aws-');
useFakeCloudEnv();

let banner: Awaited<ReturnType<typeof sshBanner>>;
const { dir, key } = operatorKey();

before(async () => {
  banner = await sshBanner();
});
after(async () => {
  await banner.close();
});

function inventory(stub: Ec2Stub, cluster: string, groups: string, extra = ''): string {
  return `cluster: ${cluster}
provider: aws
providers:
  aws:
    region: eu-west-1
    endpoint: ${stub.url}
    amiName: "ubuntu/images/*"
    sshFrom: [203.0.113.7/32]
    waitTimeout: 30
${extra.includes('retry:') ? extra : `${extra}\n    retry: { baseDelayMs: 5, maxDelayMs: 50 }`}
ssh: { user: root, port: ${banner.port}, key: ${key} }
groups:
${groups}
`;
}

/** Runs what `up`'s provision step runs: network, list, create the missing; `ready` as up passes it. */
async function provision(p: AwsProvider, ctx: Awaited<ReturnType<typeof cloudContext>>['ctx'], ready?: (m: Machine) => void) {
  const pc = ctx.providerContext;
  await p.network(pc);
  const existing = new Map((await p.list(pc)).map((m) => [m.name, m]));
  const hosts = ctx.providers[0]!.hosts;
  // As up does: stopped machines go to create too, which starts them.
  return p.create(hosts.filter((h) => !existing.has(h.name) || existing.get(h.name)!.stopped), pc, ready);
}

test('instances are handed over as each one answers SSH, while a slow one is still pending', async () => {
  // The manager's instance stays pending for 3 DescribeInstances rounds; the workers' run at the next.
  const stub = await new Ec2Stub({ bootCalls: (_n, tags) => (tags['swarmform:group'] === 'managers' ? 3 : 1) }).start();
  try {
    const { ctx } = await cloudContext(inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }\n  workers: { role: worker, count: 2 }'), dir);
    const handed: { name: string; slowState: string }[] = [];
    const slow = () => [...stub.instances.values()].find((i) => i.tags['swarmform:group'] === 'managers')!;
    const r = await provision(new AwsProvider(), ctx, (m) => handed.push({ name: m.name, slowState: slow().state }));
    assert.deepEqual(r.failed, []);
    assert.deepEqual(handed.map((h) => h.name).sort(), r.done.map((m) => m.name).sort(), 'every machine handed over once');
    assert.deepEqual(handed.slice(0, 2).map((h) => h.name).sort(), ['workers-1', 'workers-2']);
    assert.ok(handed.slice(0, 2).every((h) => h.slowState === 'pending'), `the workers came before managers-1 ran: ${JSON.stringify(handed)}`);
    assert.equal(handed[2]!.name, 'managers-1');
  } finally {
    await stub.stop();
  }
});

test('2,384 hosts: RunInstances in batches of 100 per group, names by CreateTags, as plan predicts', { timeout: 240_000 }, async () => {
  const stub = await new Ec2Stub().start();
  try {
    const { ctx } = await cloudContext(
      inventory(stub, 't-cloud', '  managers: { role: manager, name: "mgr-[1:3]" }\n  workers-a: { role: worker, name: "a-[1:1200]" }\n  workers-b: { role: worker, name: "b-[1:1181]", options: { instanceType: c5.large } }'),
      dir,
    );
    const p = new AwsProvider();
    const hosts = ctx.providers[0]!.hosts;
    assert.equal(hosts.length, 2384);
    const predicted = awsCallPlan(hosts, awsSettings(ctx.inventory));
    assert.equal(predicted.runInstances, 1 + 12 + 12);
    const r = await provision(p, ctx);
    assert.deepEqual(r.failed, []);
    assert.equal(r.done.length, 2384);
    assert.equal(stub.count('RunInstances'), predicted.runInstances, 'one RunInstances per batch, not per host');
    assert.equal(stub.count('CreateTags'), 2384);
    assert.equal(stub.live().length, 2384);
    const maxCounts = stub.calls.filter((c) => c.action === 'RunInstances').map((c) => Number(c.params.MaxCount));
    assert.ok(maxCounts.every((n) => n <= 100), `batches of at most 100: ${maxCounts.join(',')}`);
    assert.ok(stub.calls.filter((c) => c.action === 'RunInstances').every((c) => c.params.MinCount === '1'));
    // Names: each host exactly once; roles and groups as tags.
    const names = stub.live().map((i) => i.tags.Name);
    assert.equal(new Set(names).size, 2384);
    assert.equal(stub.live().filter((i) => i.tags['swarmform:role'] === 'manager').length, 3);
    assert.ok(stub.live().every((i) => i.tags['swarmform:cluster'] === 't-cloud'));
    // Discovery pages through DescribeInstances (1,000 a page) and finds all of them.
    assert.equal((await p.list(ctx.providerContext)).length, 2384);
    // Every request was signed with the fake key id (never a real credential from the machine).
    assert.ok(stub.calls.every((c) => c.accessKeyId === FAKE.awsKeyId));
    // plan prints the same figures, offline.
    const lines = plan(ctx).providers[0]!.lines.join('\n');
    assert.match(lines, /25 RunInstances batch\(es\) of up to 100/);
    assert.match(lines, /2384 CreateTags/);
  } finally {
    await stub.stop();
  }
});

test('the security group opens swarm ports to itself only and SSH to sshFrom; nothing swarm-related to 0.0.0.0/0', async () => {
  const stub = await new Ec2Stub().start();
  try {
    const { ctx } = await cloudContext(inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }'), dir);
    const p = new AwsProvider();
    await p.network(ctx.providerContext);
    await p.network(ctx.providerContext);
    const groups = [...stub.groups.values()];
    assert.equal(groups.length, 1);
    const g = groups[0]!;
    const rules = g.perms.map((x) => `${x.proto}:${x.from ?? ''}-${x.to ?? ''}<${[...x.groups, ...x.cidrs].join(',')}`).sort();
    assert.deepEqual(rules, [
      `50:-<${g.id}`,
      'tcp:22-22<203.0.113.7/32',
      `tcp:2377-2377<${g.id}`,
      `tcp:7946-7946<${g.id}`,
      `udp:4789-4789<${g.id}`,
      `udp:7946-7946<${g.id}`,
    ]);
    // The operator's key was imported, tagged with the cluster.
    const keys = [...stub.keys.values()];
    assert.equal(keys.length, 1);
    assert.equal(keys[0]!.name, 'swarmform-t-cloud');
    assert.match(keys[0]!.material, /^ssh-ed25519 /);
    // A second context (a re-run) finds both and authorizes nothing again.
    const again = await cloudContext(inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }'), dir);
    await new AwsProvider().network(again.ctx.providerContext);
    assert.equal(stub.count('CreateSecurityGroup'), 1);
    assert.equal(stub.count('AuthorizeSecurityGroupIngress'), 1);
    assert.equal(stub.count('ImportKeyPair'), 1);
  } finally {
    await stub.stop();
  }
});

test('swarmFrom may not be the whole internet (exit 2 with file, line and key)', async () => {
  const stub = await new Ec2Stub().start();
  try {
    await assert.rejects(
      cloudContext(inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }', '    swarmFrom: [0.0.0.0/0]'), dir),
      (e: Error & { exitCode?: number }) => e.exitCode === 2 && /:\d+:\d+: providers\.aws\.swarmFrom\[0\]: 0\.0\.0\.0\/0 opens the swarm ports/.test(e.message),
    );
  } finally {
    await stub.stop();
  }
});

test('throttling: RequestLimitExceeded is retried by the SDK with backoff and reported per batch', async () => {
  const stub = await new Ec2Stub({ throttle: { RunInstances: 3, CreateTags: 2, DescribeInstances: 1 } }).start();
  try {
    const { ctx, seen } = await cloudContext(inventory(stub, 't-cloud', '  managers: { role: manager, count: 3 }\n  workers: { role: worker, count: 7 }', '    batchSize: 5\n    concurrency: 1'), dir);
    const p = new AwsProvider();
    const r = await provision(p, ctx);
    assert.deepEqual(r.failed, []);
    assert.equal(r.done.length, 10);
    assert.equal(stub.live().length, 10, 'throttled calls made no extra instances');
    assert.equal(stub.count('RunInstances'), 3 + 3, '3 batches, 3 throttled answers retried');
    const text = messages(seen);
    assert.match(text, /RunInstances for managers-1\.\.managers-3 needed \d attempts/);
    assert.match(text, /calls retried by the SDK .*RunInstances/);
    assert.ok(p.stats(ctx.providerContext).retried.RunInstances! >= 1);
  } finally {
    await stub.stop();
  }
});

test('throttling that outlasts the SDK retries fails the batch with the provider error, bounded retries, exit-3 material', async () => {
  const stub = await new Ec2Stub({ throttle: { RunInstances: 1000 } }).start();
  try {
    const { ctx } = await cloudContext(
      inventory(stub, 't-cloud', '  managers: { role: manager, count: 2 }', '    retries: 1\n    retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 }'),
      dir,
    );
    const r = await provision(new AwsProvider(), ctx);
    assert.equal(r.done.length, 0);
    assert.deepEqual(r.failed.map((f) => f.name).sort(), ['managers-1', 'managers-2']);
    assert.match(r.failed[0]!.error.message, /RunInstances: RequestLimitExceeded: Request limit exceeded\. \(after 3 attempts\)/);
    assert.equal(stub.count('RunInstances'), 3 * 2, '3 SDK attempts x (1 + 1 host retry)');
  } finally {
    await stub.stop();
  }
});

test('a batch that fails half way (instance limit): the rest are kept and reported; the next run completes without duplicates', async () => {
  const stub = await new Ec2Stub({ instanceLimit: 6 }).start();
  try {
    const text = inventory(stub, 't-cloud', '  managers: { role: manager, count: 3 }\n  workers: { role: worker, count: 7 }', '    batchSize: 4\n    concurrency: 1');
    const first = await cloudContext(text, dir);
    const r = await provision(new AwsProvider(), first.ctx);
    assert.equal(r.done.length, 6);
    assert.equal(r.failed.length, 4);
    assert.ok(r.failed.every((f) => /InstanceLimitExceeded: You have requested more instances/.test(f.error.message)), r.failed.map((f) => f.error.message).join('\n'));
    assert.match(messages(first.seen), /the rest of group workers is reported as failed/);
    // The limit is raised; a new run (new process, no local state) finishes the cluster.
    stub.opts.instanceLimit = 100;
    const second = await cloudContext(text, dir);
    const before = stub.count('RunInstances');
    const r2 = await provision(new AwsProvider(), second.ctx);
    assert.deepEqual(r2.failed, []);
    assert.equal(r2.done.length, 4);
    assert.equal(stub.live().length, 10);
    assert.equal(new Set(stub.live().map((i) => i.tags.Name)).size, 10, 'no duplicate names');
    assert.equal(stub.count('RunInstances') - before, 1, 'one batch for the 4 missing');
    // A third run creates nothing.
    const third = await cloudContext(text, dir);
    const r3 = await provision(new AwsProvider(), third.ctx);
    assert.equal(r3.done.length + r3.failed.length, 0);
    assert.equal(stub.live().length, 10);
  } finally {
    await stub.stop();
  }
});

test('capacity: a short launch asks again for the rest; a dead instance is terminated and its host retried', async () => {
  const stub = await new Ec2Stub({ capacityPerCall: 2, dies: (n) => n === 1 }).start();
  try {
    const { ctx, seen } = await cloudContext(inventory(stub, 't-cloud', '  workers: { role: worker, count: 5 }\n  managers: { role: manager, count: 1 }', '    batchSize: 5'), dir);
    const r = await provision(new AwsProvider(), ctx);
    assert.deepEqual(r.failed, []);
    assert.equal(r.done.length, 6);
    assert.equal(stub.live().length, 6, 'the dead instance is not counted, no extras');
    assert.match(messages(seen), /EC2 launched 2 of 5 \(workers\); asking again for 3/);
    assert.match(messages(seen), /retry/);
  } finally {
    await stub.stop();
  }
});

test('an interrupted run (launched, never named) is adopted, not launched again', async () => {
  const stub = await new Ec2Stub().start();
  try {
    const text = inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }\n  workers: { role: worker, count: 3 }');
    // What a crash between RunInstances and CreateTags leaves: tagged instances without a Name.
    const { EC2Client, RunInstancesCommand } = await import('@aws-sdk/client-ec2');
    const raw = new EC2Client({ region: 'eu-west-1', endpoint: stub.url });
    await raw.send(new RunInstancesCommand({ MinCount: 2, MaxCount: 2, ImageId: 'ami-00000000000000002', TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'swarmform:cluster', Value: 't-cloud' }, { Key: 'swarmform:role', Value: 'worker' }, { Key: 'swarmform:group', Value: 'workers' }] }] }));
    const before = stub.count('RunInstances');
    const { ctx } = await cloudContext(text, dir);
    const r = await provision(new AwsProvider(), ctx);
    assert.equal(r.done.length, 4);
    assert.equal(stub.live().length, 4);
    assert.equal(stub.count('RunInstances') - before, 2, 'only the manager and the third worker were launched');
    assert.deepEqual(stub.live().map((i) => i.tags.Name).sort(), ['managers-1', 'workers-1', 'workers-2', 'workers-3']);
  } finally {
    await stub.stop();
  }
});

test('a stopped instance is started, not launched again, and waited for as a new one', async () => {
  const stub = await new Ec2Stub().start();
  try {
    const text = inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }\n  workers: { role: worker, count: 2 }');
    const first = await cloudContext(text, dir);
    assert.equal((await provision(new AwsProvider(), first.ctx)).done.length, 3);
    // Someone stops a worker (through the real SDK client, as the console would).
    const { EC2Client, StopInstancesCommand } = await import('@aws-sdk/client-ec2');
    const raw = new EC2Client({ region: 'eu-west-1', endpoint: stub.url });
    const named = (n: string) => stub.live().find((i) => i.tags.Name === n)!;
    await raw.send(new StopInstancesCommand({ InstanceIds: [named('workers-2').id] }));
    const second = await cloudContext(text, dir);
    const listed = await new AwsProvider().list(second.ctx.providerContext);
    assert.deepEqual(listed.filter((m) => m.stopped).map((m) => m.name), ['workers-2']);
    const runs = stub.count('RunInstances');
    const r = await provision(new AwsProvider(), second.ctx);
    assert.deepEqual(r.failed, []);
    assert.deepEqual(r.done.map((m) => m.name), ['workers-2']);
    assert.equal(stub.count('RunInstances'), runs, 'no instance launched');
    assert.equal(stub.count('StartInstances'), 1);
    assert.equal(named('workers-2').state, 'running');
    assert.equal(stub.live().length, 3);
    assert.match(messages(second.seen), /workers-2 start instance ok i-\S+ at /);
    // Running again: nothing to start or launch.
    const third = await cloudContext(text, dir);
    const r3 = await provision(new AwsProvider(), third.ctx);
    assert.equal(r3.done.length + r3.failed.length, 0);
  } finally {
    await stub.stop();
  }
});

test('teardown from tags alone (no local state) leaves nothing tagged: instances, then group and imported key', async () => {
  const stub = await new Ec2Stub().start();
  try {
    const text = inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }\n  workers: { role: worker, count: 4 }');
    const a = await cloudContext(text, dir);
    assert.equal((await provision(new AwsProvider(), a.ctx)).done.length, 5);
    // An orphan of a crashed run: tagged, never named.
    stub.instances.set('i-orphan', { ...stub.live()[0]!, id: 'i-orphan', tags: { 'swarmform:cluster': 't-cloud' } });
    // Another cluster's instance must survive.
    stub.instances.set('i-other', { ...stub.live()[0]!, id: 'i-other', groups: [], tags: { 'swarmform:cluster': 't-cloud2', Name: 'x' } });
    const b = await cloudContext(text, dir);
    const p = new AwsProvider();
    const found = await p.list(b.ctx.providerContext);
    assert.equal(found.length, 5);
    const d = await p.destroy(found, b.ctx.providerContext);
    assert.equal(d.done.length, 5);
    await p.teardown(b.ctx.providerContext, { force: false });
    assert.deepEqual(stub.tagged('t-cloud'), []);
    assert.equal(stub.instances.get('i-other')!.state, 'running');
    const order = stub.calls.map((c) => c.action).filter((x) => ['TerminateInstances', 'DeleteSecurityGroup', 'DeleteKeyPair'].includes(x));
    assert.deepEqual([...new Set(order)], ['TerminateInstances', 'DeleteSecurityGroup', 'DeleteKeyPair']);
    // Teardown again is a no-op.
    await p.teardown(b.ctx.providerContext, { force: true });
  } finally {
    await stub.stop();
  }
});

test('no credentials anywhere: preflight says how to provide them (exit 2), without touching the network', async () => {
  const stub = await new Ec2Stub().start();
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  delete process.env.AWS_ACCESS_KEY_ID;
  delete process.env.AWS_SECRET_ACCESS_KEY;
  try {
    const { ctx } = await cloudContext(inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }'), dir);
    await assert.rejects(new AwsProvider().preflight(ctx.providerContext), (e: Error & { exitCode?: number; hint?: string }) => {
      assert.equal(e.exitCode, 2);
      assert.match(e.message, /aws: no credentials found/);
      assert.match(e.hint ?? '', /AWS_PROFILE/);
      return true;
    });
    assert.equal(stub.calls.length, 0);
  } finally {
    process.env.AWS_ACCESS_KEY_ID = saved.id;
    process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    await stub.stop();
  }
});

test('image by name filter (newest), spot, and cloud-init user data from a nunjucks template', async () => {
  const stub = await new Ec2Stub().start();
  try {
    const { ctx } = await cloudContext(
      inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }\n  spot: { role: worker, count: 2, options: { spot: true, userData: docker-ready, instanceType: c5.large } }'),
      dir,
    );
    const r = await provision(new AwsProvider(), ctx);
    assert.equal(r.done.length, 3);
    const runs = stub.calls.filter((c) => c.action === 'RunInstances');
    assert.ok(runs.every((c) => c.params.ImageId === 'ami-00000000000000002'), 'the newest match');
    assert.equal(stub.count('DescribeImages'), 1, 'looked up once');
    const spot = runs.find((c) => c.params.InstanceType === 'c5.large')!;
    assert.equal(spot.params['InstanceMarketOptions.MarketType'], 'spot');
    const userData = Buffer.from(spot.params.UserData!, 'base64').toString();
    assert.match(userData, /^#cloud-config/);
    assert.match(userData, /Cluster t-cloud, group spot \(worker\), 2 host\(s\) in this batch/);
    assert.match(userData, /gc_thresh3 = 32768/);
    const manager = runs.find((c) => c.params.InstanceType === 't3.medium')!;
    assert.equal(manager.params.UserData, undefined);
    assert.equal(manager.params['InstanceMarketOptions.MarketType'], undefined);
  } finally {
    await stub.stop();
  }
});

test('under SWARMFORM_LOOPBACK_ONLY a client without a loopback endpoint is refused before any call', async () => {
  const stub = await new Ec2Stub().start();
  try {
    const text = inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }').replace(/    endpoint: .*\n/, '');
    const { ctx } = await cloudContext(text, dir);
    await assert.rejects(new AwsProvider().network(ctx.providerContext), /SWARMFORM_LOOPBACK_ONLY is set and the API endpoint \(the real cloud\) is not on loopback/);
  } finally {
    await stub.stop();
  }
});
