/**
 * The digitalocean provider through digitalocean-js (and its axios instance) against a loopback stub of the API:
 * 10 names per create at Swarm2k size, 429s and RateLimit headers, a droplet limit hit half way, re-runs without
 * duplicates, the tag-attached firewall, teardown by tag, and the token never in an error.
 */
import assert from 'node:assert/strict';

import { after, before, test } from 'node:test';
import { plan } from '../../src/core/plan.js';
import { DigitalOceanProvider, doCallPlan } from '../../src/providers/digitalocean/index.js';
import { doSettings } from '../../src/providers/digitalocean/settings.js';
import type { Machine } from '../../src/base/machine.js';
import { DoStub } from '../support/stubs/do-stub.js';
import { cloudContext, FAKE, messages, operatorKey, sshBanner, useFakeCloudEnv } from '../support/stubs/cloud-test-kit.js';
import { tempDir } from '../support/tmp.js';

process.env.SWARMFORM_HOME = tempDir('swarmform-do-');
useFakeCloudEnv();

let banner: Awaited<ReturnType<typeof sshBanner>>;
const { dir, key } = operatorKey();

before(async () => {
  banner = await sshBanner();
});
after(async () => {
  await banner.close();
});

function inventory(stub: DoStub, cluster: string, groups: string, extra = ''): string {
  return `cluster: ${cluster}
provider: digitalocean
providers:
  digitalocean:
    region: fra1
    endpoint: ${stub.url}
    sshFrom: [203.0.113.7/32]
    waitTimeout: 30
${extra.includes('rateLimit:') ? extra : `${extra}\n    rateLimit: { baseDelayMs: 5 }`}
ssh: { user: root, port: ${banner.port}, key: ${key} }
groups:
${groups}
`;
}

async function provision(p: DigitalOceanProvider, ctx: Awaited<ReturnType<typeof cloudContext>>['ctx'], ready?: (m: Machine) => void) {
  const pc = ctx.providerContext;
  await p.network(pc);
  const existing = new Map((await p.list(pc)).map((m) => [m.name, m]));
  // As up does: stopped machines go to create too, which powers them on.
  return p.create(ctx.providers[0]!.hosts.filter((h) => !existing.has(h.name) || existing.get(h.name)!.stopped), pc, ready);
}

test('droplets are handed over as each one answers SSH, while a slow one is still new', async () => {
  // The manager's droplet stays `new` for 3 list calls; the workers' are active at the next.
  const stub = await new DoStub(FAKE.doToken, { bootCalls: (name) => (name === 'managers-1' ? 3 : 1) }).start();
  try {
    const { ctx } = await cloudContext(inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }\n  workers: { role: worker, count: 2 }'), dir);
    const handed: { name: string; slowState: string }[] = [];
    const slow = () => [...stub.droplets.values()].find((d) => d.name === 'managers-1')!;
    const r = await provision(new DigitalOceanProvider(), ctx, (m) => handed.push({ name: m.name, slowState: slow().status }));
    assert.deepEqual(r.failed, []);
    assert.deepEqual(handed.map((h) => h.name).sort(), r.done.map((m) => m.name).sort(), 'every machine handed over once');
    assert.deepEqual(handed.slice(0, 2).map((h) => h.name).sort(), ['workers-1', 'workers-2']);
    assert.ok(handed.slice(0, 2).every((h) => h.slowState === 'new'), `the workers came before managers-1 was active: ${JSON.stringify(handed)}`);
    assert.equal(handed[2]!.name, 'managers-1');
  } finally {
    await stub.stop();
  }
});

test('2,384 droplets: 10 names per POST /droplets (240 requests), as plan predicts', { timeout: 240_000 }, async () => {
  const stub = await new DoStub(FAKE.doToken).start();
  try {
    const { ctx } = await cloudContext(inventory(stub, 't-cloud', '  managers: { role: manager, name: "mgr-[1:3]" }\n  workers: { role: worker, name: "w-[1:2381]" }', '    concurrency: 4'), dir);
    const hosts = ctx.providers[0]!.hosts;
    assert.equal(hosts.length, 2384);
    const predicted = doCallPlan(hosts, doSettings(ctx.inventory));
    assert.equal(predicted.creates, 1 + 239);
    const r = await provision(new DigitalOceanProvider(), ctx);
    assert.deepEqual(r.failed, []);
    assert.equal(r.done.length, 2384);
    assert.equal(stub.count('POST /droplets'), 240);
    assert.ok(stub.calls.filter((c) => c.route === 'POST /droplets').every((c) => ((c.body as { names: string[] }).names.length <= 10)));
    assert.equal(new Set([...stub.droplets.values()].map((d) => d.name)).size, 2384);
    // Lists page through 200 at a time.
    const gets = stub.calls.filter((c) => c.route === 'GET /droplets');
    assert.ok(gets.every((c) => c.query.per_page === '200' && c.query.tag_name === 'swarmform:t-cloud'));
    assert.equal((await new DigitalOceanProvider().list(ctx.providerContext)).length, 2384);
    assert.ok(stub.calls.every((c) => c.authorized), 'every request carried the token');
    assert.match(plan(ctx).providers[0]!.lines.join('\n'), /240 create request\(s\) of up to 10 names/);
  } finally {
    await stub.stop();
  }
});

test('firewall by tag: swarm ports from the cluster tag only, SSH from sshFrom, outbound open; key uploaded once', async () => {
  const stub = await new DoStub(FAKE.doToken).start();
  try {
    const text = inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }');
    await new DigitalOceanProvider().network((await cloudContext(text, dir)).ctx.providerContext);
    await new DigitalOceanProvider().network((await cloudContext(text, dir)).ctx.providerContext);
    const fws = [...stub.firewalls.values()] as { name: string; tags: string[]; inbound_rules: { protocol: string; ports: string; sources: { tags: string[]; addresses: string[] } }[] }[];
    assert.equal(fws.length, 1);
    assert.deepEqual(fws[0]!.tags, ['swarmform:t-cloud']);
    const rules = fws[0]!.inbound_rules.map((r) => `${r.protocol}/${r.ports}<${[...r.sources.tags, ...r.sources.addresses].join(',')}`).sort();
    assert.deepEqual(rules, ['tcp/22<203.0.113.7/32', 'tcp/2377<swarmform:t-cloud', 'tcp/7946<swarmform:t-cloud', 'udp/4789<swarmform:t-cloud', 'udp/7946<swarmform:t-cloud']);
    assert.ok(!JSON.stringify(fws[0]!.inbound_rules).includes('0.0.0.0/0'), 'nothing inbound from the world');
    assert.equal(stub.count('POST /firewalls'), 1);
    assert.equal(stub.count('PUT /firewalls/{id}'), 0, 'unchanged rules are not rewritten');
    assert.equal(stub.keys.size, 1);
    assert.equal(stub.count('POST /account/keys'), 1);
  } finally {
    await stub.stop();
  }
});

test('429: waits as the API asks and retries; RateLimit-Remaining near zero pauses requests', async () => {
  const stub = await new DoStub(FAKE.doToken, { throttle: { 'POST /droplets': 3, 'GET /droplets': 2 }, limit: 5000 }).start();
  try {
    const { ctx, seen } = await cloudContext(inventory(stub, 't-cloud', '  managers: { role: manager, count: 3 }\n  workers: { role: worker, count: 12 }', '    concurrency: 1'), dir);
    const p = new DigitalOceanProvider();
    const r = await provision(p, ctx);
    assert.deepEqual(r.failed, []);
    assert.equal(r.done.length, 15);
    assert.equal(stub.droplets.size, 15, 'no droplet created twice');
    assert.equal(stub.count('POST /droplets'), 3 + 3);
    assert.match(messages(seen), /rate-limit answer\(s\) \(429\)/);
    // Nearly out of requests: the next request waits for the reset (the stub resets within a second).
    stub.remaining = 3;
    const callsBefore = stub.calls.length;
    await p.list(ctx.providerContext);
    await p.list(ctx.providerContext);
    // The stub resets at the next whole second, so a pause may be short; what matters is that no request went out
    // after a nearly spent answer before the reset that answer announced.
    const window = stub.calls.slice(callsBefore);
    const followers = window.slice(1).filter((_, i) => window[i]!.remainingAfter <= 2);
    assert.ok(followers.length > 0, 'a request followed a nearly spent answer');
    window.slice(1).forEach((c, i) => {
      const prev = window[i]!;
      if (prev.remainingAfter <= 2) assert.ok(c.at >= prev.resetSent! * 1000, `paused until RateLimit-Reset (${prev.resetSent! * 1000 - c.at} ms early)`);
    });
  } finally {
    await stub.stop();
  }
});

test('droplet limit half way: made droplets are kept, the rest reported with the API error; the next run completes', async () => {
  const stub = await new DoStub(FAKE.doToken, { dropletLimit: 10 }).start();
  try {
    const text = inventory(stub, 't-cloud', '  managers: { role: manager, count: 3 }\n  workers: { role: worker, count: 14 }', '    concurrency: 1');
    const r = await provision(new DigitalOceanProvider(), (await cloudContext(text, dir)).ctx);
    assert.equal(r.done.length, 3, 'the manager batch (3) fits; the first worker batch (10) would pass 10');
    assert.equal(r.failed.length, 14);
    assert.match(r.failed[0]!.error.message, /DigitalOcean POST \/droplets: 422 forbidden: creating this\/these droplet\(s\) will exceed your droplet limit/);
    assert.equal(stub.count('POST /droplets'), 2, 'later batches fail at once, without more requests');
    stub.opts.dropletLimit = 100;
    const r2 = await provision(new DigitalOceanProvider(), (await cloudContext(text, dir)).ctx);
    assert.deepEqual(r2.failed, []);
    assert.equal(r2.done.length, 14);
    assert.equal(stub.droplets.size, 17);
    assert.equal(new Set([...stub.droplets.values()].map((d) => d.name)).size, 17, 'no duplicates');
    const r3 = await provision(new DigitalOceanProvider(), (await cloudContext(text, dir)).ctx);
    assert.equal(r3.done.length + r3.failed.length, 0);
  } finally {
    await stub.stop();
  }
});

test('a powered-off droplet is powered on, not created again, and waited for as a new one', async () => {
  const stub = await new DoStub(FAKE.doToken).start();
  try {
    const text = inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }\n  workers: { role: worker, count: 2 }');
    assert.equal((await provision(new DigitalOceanProvider(), (await cloudContext(text, dir)).ctx)).done.length, 3);
    // Someone powers a worker off, through the API as the control panel would.
    const target = [...stub.droplets.values()].find((d) => d.name === 'workers-2')!;
    const off = await fetch(`${stub.url}/droplets/${target.id}/actions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${FAKE.doToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'power_off' }),
    });
    assert.equal(off.status, 201);
    const second = await cloudContext(text, dir);
    const listed = await new DigitalOceanProvider().list(second.ctx.providerContext);
    assert.deepEqual(listed.filter((m) => m.stopped).map((m) => m.name), ['workers-2']);
    const posts = stub.count('POST /droplets');
    const r = await provision(new DigitalOceanProvider(), second.ctx);
    assert.deepEqual(r.failed, []);
    assert.deepEqual(r.done.map((m) => m.name), ['workers-2']);
    assert.equal(stub.count('POST /droplets'), posts, 'no droplet created');
    assert.equal(stub.count('POST /droplets/{id}/actions'), 2, 'the power_off above, then one power_on');
    assert.equal(target.status, 'active');
    assert.equal(stub.droplets.size, 3);
    assert.match(messages(second.seen), /workers-2 power on droplet ok droplet \d+ at /);
    const r3 = await provision(new DigitalOceanProvider(), (await cloudContext(text, dir)).ctx);
    assert.equal(r3.done.length + r3.failed.length, 0);
  } finally {
    await stub.stop();
  }
});

test('teardown by tag leaves nothing: droplets, firewall, uploaded key and tags', async () => {
  const stub = await new DoStub(FAKE.doToken).start();
  try {
    const text = inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }\n  workers: { role: worker, count: 4 }');
    assert.equal((await provision(new DigitalOceanProvider(), (await cloudContext(text, dir)).ctx)).done.length, 5);
    const other = await cloudContext(inventory(stub, 't-cloud2', '  managers: { role: manager, count: 1 }'), dir);
    assert.equal((await provision(new DigitalOceanProvider(), other.ctx)).done.length, 1);
    const { ctx } = await cloudContext(text, dir);
    const p = new DigitalOceanProvider();
    const found = await p.list(ctx.providerContext);
    assert.equal(found.length, 5);
    assert.ok(found.every((m) => m.privateAddress === '127.0.0.1'));
    const d = await p.destroy(found, ctx.providerContext);
    assert.equal(d.done.length, 5);
    assert.equal(stub.count('DELETE /droplets'), 1, 'the whole cluster in one request by tag');
    await p.teardown(ctx.providerContext, { force: false });
    assert.deepEqual(stub.tagged('t-cloud'), []);
    assert.equal(stub.tagged('t-cloud2').filter((x) => x.startsWith('droplet')).length, 1, "another cluster's droplet stays");
    await p.teardown(ctx.providerContext, { force: true });
  } finally {
    await stub.stop();
  }
});

test('errors carry status and message, never the token or request headers', async () => {
  const stub = await new DoStub('another-token').start();
  try {
    const { ctx } = await cloudContext(inventory(stub, 't-cloud', '  managers: { role: manager, count: 1 }'), dir);
    const err = await new DigitalOceanProvider().network(ctx.providerContext).then(
      () => undefined,
      (e: Error) => e,
    );
    assert.ok(err);
    assert.match(err.message, /DigitalOcean GET \/account\/keys: 401 unauthorized: Unable to authenticate you/);
    const everything = `${err.message}\n${err.stack}\n${JSON.stringify(err)}\n${JSON.stringify(Object.entries(err))}`;
    assert.ok(!everything.includes(FAKE.doToken), 'token absent');
    assert.ok(!/authorization/i.test(everything), 'headers absent');
  } finally {
    await stub.stop();
  }
});

test('an existing key by fingerprint (nothing uploaded), a VPC and extra tags go into the create request', async () => {
  const stub = await new DoStub(FAKE.doToken).start();
  try {
    const fp = '3b:16:bf:00:11:22:33:44:55:66:77:88:99:aa:bb:cc';
    const { ctx } = await cloudContext(
      inventory(stub, 't-cloud', '  managers: { role: manager, count: 1, options: { size: s-4vcpu-8gb, tags: [control] } }', `    sshKey: "${fp}"\n    vpc: 5a4981aa-9653-4bd1-bef5-d6bff52042e4\n    tags: [team-x]`),
      dir,
    );
    const r = await provision(new DigitalOceanProvider(), ctx);
    assert.equal(r.done.length, 1);
    assert.equal(stub.count('POST /account/keys'), 0);
    const body = stub.calls.find((c) => c.route === 'POST /droplets')!.body as Record<string, unknown>;
    assert.deepEqual(body.ssh_keys, [fp]);
    assert.equal(body.vpc_uuid, '5a4981aa-9653-4bd1-bef5-d6bff52042e4');
    assert.equal(body.size, 's-4vcpu-8gb');
    assert.deepEqual(body.tags, ['swarmform:t-cloud', 'swarmform:t-cloud:role:manager', 'swarmform:t-cloud:group:managers', 'team-x', 'control']);
  } finally {
    await stub.stop();
  }
});
