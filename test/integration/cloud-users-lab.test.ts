/**
 * Cloud default users end to end: an aws inventory that writes no ssh.user, a manager group on an Ubuntu AMI and a
 * worker group on a Debian AMI, through the real CLI and SDK client against the loopback EC2 stub. The stub hands
 * back two lab OS hosts this test made (Debian booted under systemd), one whose only login is `ubuntu` and one whose
 * only login is `admin`, both refusing root: `up` only works if swarmform logs in as each image's default user, read
 * from DescribeImages. Checked with `sudo -n docker node ls` on the manager as `ubuntu`, and in swarmform's state.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import type { HostSpec } from '../../src/inventory/types.js';
import { labProvider } from '../../src/providers/lab/index.js';
import type { Machine } from '../../src/base/machine.js';
import { cleanupLabClusters, labTestContext } from '../support/lab-cleanup.js';
import { cli, isRoot, labLeftovers, machinesOf, onHost, testHome } from '../support/lab.js';
import { fakeCloudEnv } from '../support/stubs/cloud-test-kit.js';
import { Ec2Stub } from '../support/stubs/ec2-stub.js';

const execFileP = promisify(execFile);
const skip = isRoot ? false : 'lab tests need root';
const SUBNET = '198.18.74.0/24';
const lab = labTestContext(SUBNET, 't-users');
const home = testHome();
const cluster = 't-users2';
const inventory = join(home, 'users.yml');
const UBUNTU_AMI = 'ami-0000000000000ab01';
const DEBIAN_AMI = 'ami-0000000000000de01';
let ec2: Ec2Stub | undefined;
let manager: Machine | undefined;
const env = () => ({ ...fakeCloudEnv(), SWARMFORM_HOME: home, SWARMFORM_DIST: process.env.SWARMFORM_DIST ?? 'dist' });

/** A lab OS host (Debian 12 under systemd) whose only login is `user`, with passwordless sudo. */
function osHost(name: string, role: 'manager' | 'worker', user: string): HostSpec {
  return {
    name,
    group: role === 'manager' ? 'managers' : 'workers',
    provider: 'lab',
    role,
    labels: {},
    ssh: { user: 'root', port: 22, connectTimeout: 30 },
    options: { os: 'debian-12', user },
  };
}

before(async () => {
  if (!isRoot) return;
  const specs = [osHost('users-m1', 'manager', 'ubuntu'), osHost('users-w1', 'worker', 'admin')];
  // The lab serves its package mirror and builds OS images for the hosts its inventory lists.
  lab.inventory.hosts = specs;
  await labProvider.preflight(lab);
  const t0 = Date.now();
  const made = await labProvider.create(specs, lab);
  console.log(`cloud-users: 2 lab OS hosts up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.deepEqual(made.failed.map((f) => `${f.name}: ${f.error.message}`), []);
  const [m1, w1] = made.done.sort((a, b) => a.name.localeCompare(b.name)) as [Machine, Machine];
  assert.equal(m1.ssh.user, 'ubuntu');
  assert.equal(w1.ssh.user, 'admin');
  manager = m1;
  // EC2 launches the manager group first (batches in inventory order, one call in flight), then the worker.
  const order = [m1, w1];
  ec2 = await new Ec2Stub({
    address: (n) => ({ private: order[n]!.privateAddress, public: order[n]!.privateAddress }),
    images: [
      { imageId: UBUNTU_AMI, name: 'ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240801', description: 'Canonical, Ubuntu, 24.04, amd64 noble image' },
      { imageId: DEBIAN_AMI, name: 'debian-12-amd64-20240717-1811', description: 'Debian 12 (20240717-1811)' },
    ],
  }).start();
  const { bundle } = await labProvider.artifacts(lab);
  // No ssh.user anywhere: the login users come from the images.
  writeFileSync(
    inventory,
    `cluster: ${cluster}
provider: aws
providers:
  aws:
    region: eu-west-1
    endpoint: ${ec2.url}
    sshFrom: [${SUBNET}]
    concurrency: 1
    waitTimeout: 60
ssh: { key: ${m1.ssh.keyPath}, connectTimeout: 60 }
swarm:
  advertise: ${SUBNET}
  install: bundle
  bundle: ${bundle}
groups:
  managers: { role: manager, name: "mgr-[1:1]", options: { ami: ${UBUNTU_AMI} } }
  workers: { role: worker, name: "wrk-[1:1]", options: { ami: ${DEBIAN_AMI} } }
`,
  );
});

after(async () => {
  if (!isRoot) return;
  try {
    await cli(['down', '--force', '-i', inventory], env()).catch(() => undefined);
    await cleanupLabClusters();
  } finally {
    await ec2?.stop();
  }
  assert.deepEqual(await labLeftovers(lab.inventory.cluster), []);
  const { stdout } = await execFileP('pgrep', ['-f', `/lab/${lab.inventory.cluster}/hosts/`]).catch(() => ({ stdout: '' }));
  assert.equal(stdout.trim(), '', 'no machine of the cluster is running');
});

test('no ssh.user on aws: the manager logs in as ubuntu and the worker as admin, from their AMIs', { skip, timeout: 4 * 60_000 }, async () => {
  assert.ok(manager && ec2, 'lab hosts and stub were made');
  const asRoot = await onHost({ ...manager, ssh: { ...manager.ssh, user: 'root' } }, 'true');
  assert.notEqual(asRoot.code, 0, 'the hosts refuse root, as EC2 images do');

  const t0 = Date.now();
  const r = await cli(['up', '-i', inventory], env(), 3 * 60_000);
  console.log(`cloud-users: up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(r.code, 0, `${r.stdout.slice(-4000)}\n${r.stderr}`);

  const ls = await onHost(manager, "sudo -n docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'");
  assert.equal(ls.code, 0, ls.stderr);
  assert.deepEqual(ls.stdout.trim().split('\n').map((l) => l.trim()).sort(), ['users-m1 Ready Leader', 'users-w1 Ready']);

  const users = Object.fromEntries(machinesOf(home, cluster).map((m) => [m.name, m.ssh.user]));
  assert.deepEqual(users, { 'mgr-1': 'ubuntu', 'wrk-1': 'admin' });
  const asked = ec2.calls.filter((c) => c.action === 'DescribeImages').map((c) => c.params['ImageId.1']).sort();
  assert.deepEqual(asked, [UBUNTU_AMI, DEBIAN_AMI].sort(), 'one DescribeImages per distinct AMI');

  const down = await cli(['down', '-i', inventory], env(), 2 * 60_000);
  assert.equal(down.code, 0, `${down.stdout.slice(-3000)}\n${down.stderr}`);
  assert.deepEqual(ec2.tagged(cluster), []);
});
