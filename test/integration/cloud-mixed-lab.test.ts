/**
 * A mixed inventory end to end: the manager and one worker on "AWS", one worker on "DigitalOcean" and one on
 * "VirtualBox", through the real CLI, the real SDK clients, loopback stubs of both APIs and a fake VBoxManage on PATH. The stubs hand back the addresses of lab hosts this
 * test made, so bootstrap, the swarm and teardown run for real over SSH. Covers a partial first run (droplet limit:
 * exit 3, the rest kept), the run that completes the cluster, an idempotent re-run, `down` by tags, and that the
 * fake credentials never appear in output or state. Checked with `docker node ls` on the manager.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { labProvider } from '../../src/providers/lab/index.js';
import type { Machine } from '../../src/base/machine.js';
import { cleanupLabClusters, labHost, labTestContext } from '../support/lab-cleanup.js';
import { cli, isRoot, labLeftovers, onHost, testHome } from '../support/lab.js';
import { FAKE, fakeCloudEnv } from '../support/stubs/cloud-test-kit.js';
import { DoStub } from '../support/stubs/do-stub.js';
import { Ec2Stub } from '../support/stubs/ec2-stub.js';
import { tempDir } from '../support/tmp.js';

const skip = isRoot ? false : 'lab tests need root';
const lab = labTestContext('198.18.50.0/24', 't-cloud');
const home = testHome();
const cluster = 't-cloud2';
const inventory = join(home, 'mixed.yml');
let hosts: Machine[] = [];
let ec2: Ec2Stub;
let dobox: DoStub;
const vboxDir = tempDir('sf-fake-vbox-');
const vboxEnv: Record<string, string> = {
  PATH: `${fileURLToPath(new URL('../support/stubs/bin', import.meta.url))}:${process.env.PATH}`,
  FAKE_VBOX_LOG: join(vboxDir, 'calls.jsonl'),
  FAKE_VBOX_STATE: join(vboxDir, 'state.json'),
};
const env = () => ({ ...fakeCloudEnv(), ...vboxEnv, SWARMFORM_HOME: home, SWARMFORM_DIST: process.env.SWARMFORM_DIST ?? 'dist' });
const outputs: string[] = [];

before(async () => {
  if (!isRoot) return;
  await labProvider.preflight(lab);
  const made = await labProvider.create([labHost('cloud-m1', 'manager'), labHost('cloud-w1'), labHost('cloud-w2'), labHost('cloud-w3')], lab);
  assert.deepEqual(made.failed, []);
  hosts = made.done.sort((a, b) => a.name.localeCompare(b.name));
  const [m1, w1, w2, w3] = hosts as [Machine, Machine, Machine, Machine];
  // The fake VBoxManage reports the fourth lab host's address as the VM's host-only address.
  vboxEnv.FAKE_VBOX_IPS = w3.privateAddress;
  // EC2 launches the manager first (batches go in inventory order, one at a time), then the aws worker.
  const ec2Hosts = [m1, w1];
  ec2 = await new Ec2Stub({ address: (n) => ({ private: ec2Hosts[n]!.privateAddress, public: ec2Hosts[n]!.privateAddress }) }).start();
  dobox = await new DoStub(FAKE.doToken, { dropletLimit: 0, address: () => ({ private: w2.privateAddress, public: w2.privateAddress }) }).start();
  const { bundle } = await labProvider.artifacts(lab);
  writeFileSync(
    inventory,
    `cluster: ${cluster}
provider: aws
providers:
  aws:
    region: eu-west-1
    endpoint: ${ec2.url}
    ami: ami-00000000000000002
    sshFrom: [198.18.50.0/24]
    concurrency: 1
    waitTimeout: 60
  digitalocean:
    region: fra1
    endpoint: ${dobox.url}
    sshFrom: [198.18.50.0/24]
    waitTimeout: 60
  virtualbox:
    base: debian-12-base
    sshVia: hostonly
    waitTimeout: 60
ssh: { user: root, key: ${m1.ssh.keyPath}, connectTimeout: 60 }
swarm:
  advertise: 198.18.50.0/24
  install: bundle
  bundle: ${bundle}
groups:
  managers: { role: manager, name: "mgr-[1:1]" }
  aws-workers: { role: worker, name: "aws-[1:1]" }
  do-workers: { role: worker, provider: digitalocean, name: "do-[1:1]" }
  vbox-workers: { role: worker, provider: virtualbox, name: "vm-[1:1]" }
`,
  );
});

after(async () => {
  if (!isRoot) return;
  await cli(['down', '--force', '-i', inventory], env()).catch(() => undefined);
  await cleanupLabClusters();
  await ec2?.stop();
  await dobox?.stop();
  assert.deepEqual(await labLeftovers(lab.inventory.cluster), []);
});

const nodes = async () => {
  const r = await onHost({ name: hosts[0]!.name, role: 'manager', privateAddress: hosts[0]!.privateAddress, ssh: hosts[0]!.ssh }, "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'");
  return r.stdout.trim().split('\n').map((l) => l.trim()).filter(Boolean).sort();
};

test('plan: batches and calls per provider, rules, and the shared advertise CIDR reaches across providers', { skip }, async () => {
  const r = await cli(['plan', '-i', inventory], env());
  outputs.push(r.stdout, r.stderr);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /aws: 2 instance\(s\) in eu-west-1 .*: 2 RunInstances batch\(es\)/);
  assert.match(r.stdout, /digitalocean: 1 droplet\(s\) in fra1 .*: 1 create request\(s\)/);
  assert.match(r.stdout, /virtualbox: 1 VM\(s\) \(1 cloned\)/);
  assert.match(r.stdout, /Reachability: advertise addresses reach each other/);
  assert.equal(ec2.calls.length + dobox.calls.length, 0, 'plan is offline');
});

test('a partial first run keeps what came up (exit 3); the next run completes the cluster', { skip, timeout: 15 * 60_000 }, async () => {
  const first = await cli(['up', '-i', inventory], env());
  outputs.push(first.stdout, first.stderr);
  assert.equal(first.code, 3, `${first.stdout.slice(-3000)}\n${first.stderr}`);
  assert.match(first.stdout + first.stderr, /do-1.*exceed your droplet limit/s);
  assert.deepEqual(await nodes(), ['cloud-m1 Ready Leader', 'cloud-w1 Ready', 'cloud-w3 Ready']);
  dobox.opts.dropletLimit = 10;
  const second = await cli(['up', '-i', inventory], env());
  outputs.push(second.stdout, second.stderr);
  assert.equal(second.code, 0, `${second.stdout.slice(-3000)}\n${second.stderr}`);
  assert.deepEqual(await nodes(), ['cloud-m1 Ready Leader', 'cloud-w1 Ready', 'cloud-w2 Ready', 'cloud-w3 Ready']);
  assert.equal(ec2.count('RunInstances'), 2, 'the aws machines were not created again');
  assert.equal(dobox.droplets.size, 1);
});

test('a re-run changes nothing and creates nothing', { skip, timeout: 10 * 60_000 }, async () => {
  const runs = ec2.count('RunInstances');
  const posts = dobox.count('POST /droplets');
  const r = await cli(['up', '-i', inventory], env());
  outputs.push(r.stdout, r.stderr);
  assert.equal(r.code, 0, `${r.stdout.slice(-3000)}\n${r.stderr}`);
  assert.match(r.stdout, /Nothing to change/);
  assert.equal(ec2.count('RunInstances'), runs);
  assert.equal(dobox.count('POST /droplets'), posts);
});

test('down finds everything by tags and leaves nothing tagged in either cloud', { skip, timeout: 10 * 60_000 }, async () => {
  const r = await cli(['down', '-i', inventory], env());
  outputs.push(r.stdout, r.stderr);
  assert.equal(r.code, 0, `${r.stdout.slice(-3000)}\n${r.stderr}`);
  assert.deepEqual(ec2.tagged(cluster), []);
  assert.deepEqual(dobox.tagged(cluster), []);
  const vms = JSON.parse(readFileSync(vboxEnv.FAKE_VBOX_STATE!, 'utf8')) as { vms: object; ifs: unknown[] };
  assert.deepEqual(vms.vms, {}, 'VMs powered off, unregistered and deleted');
  const calls = readFileSync(vboxEnv.FAKE_VBOX_LOG!, 'utf8');
  assert.match(calls, /\["unregistervm","sf-t-cloud2-vm-1","--delete"\]/);
});

test('the fake credentials appear in no output and no state file', { skip }, () => {
  const all = outputs.join('\n');
  for (const secret of [FAKE.awsKeyId, FAKE.awsSecret, FAKE.doToken]) assert.ok(!all.includes(secret), 'credential in output');
  const files: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(home);
  assert.ok(files.length > 0);
  for (const f of files) {
    const text = readFileSync(f, 'latin1');
    for (const secret of [FAKE.awsKeyId, FAKE.awsSecret, FAKE.doToken]) assert.ok(!text.includes(secret), `credential in ${f}`);
  }
  // The stubs saw the fake credentials, so they were really in use.
  assert.ok(ec2.calls.some((c) => c.accessKeyId === FAKE.awsKeyId));
  assert.ok(dobox.calls.every((c) => c.authorized));
});
