/**
 * The virtualbox provider against a fake VBoxManage on PATH that records its arguments and keeps VMs in a JSON
 * file: clone, NAT rule for SSH, host-only adapter, headless start, address from guest properties, re-runs,
 * bounded retries with cleanup, teardown, and a clear error when VBoxManage is missing.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { plan } from '../../src/core/plan.js';
import { VirtualBoxProvider } from '../../src/providers/virtualbox/index.js';
import { cloudContext, operatorKey } from '../support/stubs/cloud-test-kit.js';
import { tempDir } from '../support/tmp.js';

process.env.SWARMFORM_HOME = tempDir('swarmform-vbox-');
const work = tempDir('sf-fake-vbox-');
process.env.PATH = `${fileURLToPath(new URL('../support/stubs/bin', import.meta.url))}:${process.env.PATH}`;
process.env.FAKE_VBOX_LOG = join(work, 'calls.jsonl');
process.env.FAKE_VBOX_STATE = join(work, 'state.json');
process.env.FAKE_VBOX_IPS = '127.0.0.11,127.0.0.12,127.0.0.13';

const { dir, key } = operatorKey();
const servers: Server[] = [];
let base = 0;

/** Banner listeners on `n` consecutive loopback ports (the NAT rules' ports). */
async function consecutivePorts(n: number): Promise<number> {
  for (;;) {
    const start = 20000 + Math.floor(Math.random() * 40000);
    const got: Server[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const s = createServer((c) => c.end('SSH-2.0-OpenSSH_9.2 stub\r\n'));
        await new Promise<void>((res, rej) => {
          s.once('error', rej);
          s.listen(start + i, '127.0.0.1', res);
        });
        got.push(s);
      }
      servers.push(...got);
      return start;
    } catch {
      for (const s of got) s.close();
    }
  }
}

before(async () => {
  base = await consecutivePorts(8);
});
after(() => {
  for (const s of servers) s.close();
});

const calls = (): string[][] => (existsSync(process.env.FAKE_VBOX_LOG!) ? readFileSync(process.env.FAKE_VBOX_LOG!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[]) : []);
const state = () => JSON.parse(readFileSync(process.env.FAKE_VBOX_STATE!, 'utf8')) as { vms: Record<string, { state: string; extra: Record<string, string> }>; ifs: { name: string }[] };

function inventory(extra = ''): string {
  return `cluster: t-cloud
provider: virtualbox
providers:
  virtualbox:
    base: debian-12-base
    sshPortBase: ${base}
    waitTimeout: 20
    retries: 1
${extra}
ssh: { user: root, key: ${key} }
groups:
  managers: { role: manager, count: 1 }
  workers: { role: worker, count: 2, options: { memory: 1024 } }
`;
}

test('create: clone, NAT rule to SSH on loopback, host-only adapter, headless start, address from guest properties', async () => {
  const { ctx } = await cloudContext(inventory(), dir);
  const p = new VirtualBoxProvider();
  await p.preflight(ctx.providerContext);
  const r = await p.create(ctx.providers[0]!.hosts, ctx.providerContext);
  assert.deepEqual(r.failed, []);
  assert.equal(r.done.length, 3);
  const log = calls();
  assert.deepEqual(log.find((a) => a[0] === 'hostonlyif' && a[1] === 'ipconfig'), ['hostonlyif', 'ipconfig', 'vboxnet0', '--ip', '192.168.56.1', '--netmask', '255.255.255.0']);
  assert.deepEqual(log.find((a) => a[0] === 'clonevm' && a.includes('sf-t-cloud-managers-1')), ['clonevm', 'debian-12-base', '--name', 'sf-t-cloud-managers-1', '--register']);
  const modify = log.filter((a) => a[0] === 'modifyvm');
  assert.equal(modify.length, 3);
  const ports = modify.map((a) => /^ssh,tcp,127\.0\.0\.1,(\d+),,22$/.exec(a[a.indexOf('--natpf1') + 1]!)![1]).map(Number).sort();
  assert.deepEqual(ports, [base, base + 1, base + 2], 'one loopback port per VM');
  assert.ok(modify.every((a) => a[a.indexOf('--nic2') + 1] === 'hostonly' && a[a.indexOf('--hostonlyadapter2') + 1] === 'vboxnet0'));
  assert.equal(modify.find((a) => a[1] === 'sf-t-cloud-workers-1')![modify[0]!.indexOf('--memory') + 1], '1024');
  assert.ok(log.filter((a) => a[0] === 'startvm').every((a) => a.join(' ').endsWith('--type headless')));
  for (const m of r.done) {
    assert.equal(m.ssh.host, '127.0.0.1');
    assert.match(m.privateAddress, /^127\.0\.0\.1[123]$/);
  }
  // Discovery from VirtualBox itself; a re-run clones nothing.
  const found = await p.list(ctx.providerContext);
  assert.deepEqual(found.map((m) => m.name).sort(), ['managers-1', 'workers-1', 'workers-2']);
  const clones = log.filter((a) => a[0] === 'clonevm').length;
  const again = await p.create(ctx.providers[0]!.hosts, ctx.providerContext);
  assert.equal(again.done.length + again.failed.length, 0);
  assert.equal(calls().filter((a) => a[0] === 'clonevm').length, clones);
  assert.match(plan(ctx).providers[0]!.lines.join('\n'), /3 VM\(s\) \(3 cloned\)/);
});

test('a VM that fails to start is removed and retried a bounded number of times, then reported with VBoxManage\'s error', async () => {
  process.env.FAKE_VBOX_FAIL = 'startvm:sf-t-cloud2-workers-2';
  try {
    const { ctx } = await cloudContext(inventory().replace('cluster: t-cloud', 'cluster: t-cloud2'), dir);
    const p = new VirtualBoxProvider();
    const r = await p.create(ctx.providers[0]!.hosts, ctx.providerContext);
    assert.equal(r.done.length, 2);
    assert.deepEqual(r.failed.map((f) => f.name), ['workers-2']);
    assert.match(r.failed[0]!.error.message, /VBoxManage startvm sf-t-cloud2-workers-2 --type headless failed \(1\): .*terminated unexpectedly during startup/);
    assert.equal(calls().filter((a) => a[0] === 'startvm' && a[1] === 'sf-t-cloud2-workers-2').length, 2, 'first try and one retry');
    assert.ok(!state().vms['sf-t-cloud2-workers-2'], 'the failed VM was unregistered and deleted');
    // Teardown of this cluster leaves the other cluster's VMs alone.
    await p.teardown(ctx.providerContext, { force: true });
    assert.ok(!Object.keys(state().vms).some((n) => n.startsWith('sf-t-cloud2-')));
    assert.equal(Object.keys(state().vms).filter((n) => n.startsWith('sf-t-cloud-')).length, 3);
  } finally {
    delete process.env.FAKE_VBOX_FAIL;
  }
});

test('teardown powers off, unregisters and deletes, then removes the host-only interface it made', async () => {
  const { ctx } = await cloudContext(inventory(), dir);
  const p = new VirtualBoxProvider();
  const machines = await p.list(ctx.providerContext);
  assert.equal(machines.length, 3);
  const d = await p.destroy(machines, ctx.providerContext);
  assert.equal(d.done.length, 3);
  await p.teardown(ctx.providerContext, { force: false });
  const log = calls();
  for (const m of machines) {
    assert.ok(log.some((a) => a.join(' ') === `controlvm ${m.providerId} poweroff`));
    assert.ok(log.some((a) => a.join(' ') === `unregistervm ${m.providerId} --delete`));
  }
  assert.deepEqual(state().vms, {});
  assert.deepEqual(state().ifs, []);
});

test('a clear error when VBoxManage is missing', async () => {
  const { ctx } = await cloudContext(inventory('    vboxmanage: /nonexistent/VBoxManage'), dir);
  await assert.rejects(new VirtualBoxProvider().preflight(ctx.providerContext), (e: Error & { exitCode?: number; hint?: string }) => {
    assert.match(e.message, /VBoxManage not found \(looked for "\/nonexistent\/VBoxManage" on PATH\)/);
    assert.match(e.hint ?? '', /install VirtualBox/);
    assert.equal(e.exitCode, 2);
    return true;
  });
});
