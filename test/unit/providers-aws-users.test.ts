/**
 * The login user of aws hosts whose inventory wrote no ssh.user: the image's default user, read from the AMI's
 * name or description (DescribeImages through the real SDK client against the loopback EC2 stub, once per distinct
 * AMI per run), a written ssh.user always winning, and a clear error naming the group, the host and the AMI when the
 * image tells nothing.
 */
import assert from 'node:assert/strict';

import { after, before, test } from 'node:test';
import { UsageError } from '../../src/base/errors.js';
import { AwsProvider, awsCallPlan } from '../../src/providers/aws/index.js';
import { awsSettings } from '../../src/providers/aws/settings.js';
import { imageDefaultUser, loginUser } from '../../src/providers/aws/users.js';
import { Ec2Stub, type StubImage } from '../support/stubs/ec2-stub.js';
import { cloudContext, operatorKey, sshBanner, useFakeCloudEnv } from '../support/stubs/cloud-test-kit.js';
import { tempDir } from '../support/tmp.js';

process.env.SWARMFORM_HOME = tempDir('swarmform-aws-users-');
useFakeCloudEnv();

let banner: Awaited<ReturnType<typeof sshBanner>>;
const { dir, key } = operatorKey();

before(async () => {
  banner = await sshBanner();
});
after(async () => {
  await banner.close();
});

test('AMI names and descriptions as EC2 returns them map to the distribution default user', () => {
  const cases: [string | undefined, string | undefined, string | undefined][] = [
    ['ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240801', 'Canonical, Ubuntu, 24.04, amd64 noble image', 'ubuntu'],
    ['ubuntu-pro-server/images/hvm-ssd/ubuntu-jammy-22.04-amd64-pro-server-20240207', undefined, 'ubuntu'],
    ['debian-12-amd64-20240717-1811', 'Debian 12 (20240717-1811)', 'admin'],
    ['debian-13-arm64-daily-20251201-2310', undefined, 'admin'],
    ['al2023-ami-2023.5.20240805.0-kernel-6.1-x86_64', 'Amazon Linux 2023 AMI 2023.5.20240805.0 x86_64 HVM kernel-6.1', 'ec2-user'],
    ['amzn2-ami-kernel-5.10-hvm-2.0.20240719.0-x86_64-gp2', 'Amazon Linux 2 Kernel 5.10 AMI 2.0.20240719.0 x86_64 HVM gp2', 'ec2-user'],
    ['amzn-ami-hvm-2018.03.0.20231218.0-x86_64-gp2', undefined, 'ec2-user'],
    ['RHEL-9.4.0_HVM-20240605-x86_64-82-Hourly2-GP3', 'Provided by Red Hat, Inc.', 'ec2-user'],
    ['my-golden-image-42', 'Red Hat Enterprise Linux 8 with our agents', 'ec2-user'],
    ['Fedora-Cloud-Base-AmazonEC2.x86_64-40-1.14', undefined, 'fedora'],
    ['CentOS-7-2111-20220825_1.x86_64-d9a3032a-921c-4c6d-b150-bde168105e42', 'CentOS-7 2111 x86_64', 'centos'],
    ['Rocky-9-EC2-Base-9.4-20240523.0.x86_64-3f230a17-9877-4b16-aa5e-b1ff34ab206b', 'Official Rocky Linux 9 AMI', 'rocky'],
    // The name is read before the description; within one text the earliest distribution named wins.
    ['team-ubuntu-base-2024', 'built from debian sources', 'ubuntu'],
    ['base-2024', 'Debian 12 with docker', 'admin'],
    // Nothing that names a known distribution.
    ['windows-server-2022-english-full-base', 'Microsoft Windows Server 2022 Full Locale English AMI', undefined],
    ['suse-sles-15-sp6-v20240808-hvm-ssd-x86_64', 'SUSE Linux Enterprise Server 15 SP6', undefined],
    ['my-golden-image-42', undefined, undefined],
    // "al" and "rhel" only as words: not inside other words.
    ['central-2023-tools', 'overhel image', undefined],
    [undefined, undefined, undefined],
  ];
  for (const [Name, Description, want] of cases) {
    assert.equal(imageDefaultUser({ ImageId: 'ami-0123456789abcdef0', Name, Description }), want, `${Name} / ${Description}`);
  }
  assert.equal(imageDefaultUser(undefined), undefined);
});

test('loginUser: a written ssh.user always wins; an unknown image is an error naming group, host and AMI', () => {
  const written = { name: 'w-1', group: 'workers', ssh: { user: 'deploy', port: 22, connectTimeout: 30 } };
  assert.equal(loginUser(written, 'ami-0123456789abcdef0', { Name: 'debian-12-amd64' }), 'deploy');
  assert.equal(loginUser(written, 'ami-0123456789abcdef0', undefined), 'deploy', 'no image needed when the user is written');
  const unwritten = { name: 'w-1', group: 'workers', ssh: { user: 'root', port: 22, connectTimeout: 30, defaults: ['user' as const, 'port' as const] } };
  assert.equal(loginUser(unwritten, 'ami-0123456789abcdef0', { Name: 'debian-12-amd64' }), 'admin');
  assert.throws(
    () => loginUser(unwritten, 'ami-0123456789abcdef0', { Name: 'my-golden-image-42', Description: 'our base' }),
    (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /^groups\.workers: aws host w-1 uses image ami-0123456789abcdef0 \("my-golden-image-42", "our base"\), whose login user swarmform cannot tell/);
      assert.match(String((e as UsageError & { hint?: string }).hint), /set ssh\.user/);
      return true;
    },
  );
  assert.throws(() => loginUser(unwritten, 'ami-0123456789abcdef0', undefined), /ami-0123456789abcdef0 \(not found by DescribeImages\)/);
});

const IMAGES: StubImage[] = [
  { imageId: 'ami-0000000000000ab01', name: 'ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240801', description: 'Canonical, Ubuntu, 24.04, amd64 noble image' },
  { imageId: 'ami-0000000000000de01', name: 'debian-12-amd64-20240717-1811', description: 'Debian 12 (20240717-1811)' },
  { imageId: 'ami-0000000000000a1a1', name: 'al2023-ami-2023.5.20240805.0-kernel-6.1-x86_64', description: 'Amazon Linux 2023 AMI' },
  { imageId: 'ami-00000000000000bad', name: 'my-golden-image-42', description: 'our base' },
];

function inventory(stub: Ec2Stub, groups: string, ssh = `{ port: ${banner.port}, key: ${key} }`): string {
  return `cluster: t-users
provider: aws
providers:
  aws:
    region: eu-west-1
    endpoint: ${stub.url}
    ami: ami-0000000000000ab01
    sshFrom: [203.0.113.7/32]
    waitTimeout: 30
    retry: { baseDelayMs: 5, maxDelayMs: 50 }
ssh: ${ssh}
groups:
${groups}
`;
}

async function provision(p: AwsProvider, ctx: Awaited<ReturnType<typeof cloudContext>>['ctx']) {
  const pc = ctx.providerContext;
  await p.network(pc);
  const existing = new Map((await p.list(pc)).map((m) => [m.name, m]));
  return p.create(ctx.providers[0]!.hosts.filter((h) => !existing.has(h.name)), pc);
}

test('no ssh.user: each group logs in as its image default user, one DescribeImages per distinct AMI per run', async () => {
  const stub = await new Ec2Stub({ images: IMAGES }).start();
  try {
    const groups = [
      '  managers: { role: manager, count: 1 }',
      '  debs: { role: worker, count: 3, options: { ami: ami-0000000000000de01 } }',
      '  amzn: { role: worker, count: 2, options: { ami: ami-0000000000000a1a1 } }',
      '  pinned: { role: worker, count: 1, options: { ami: ami-0000000000000de01 }, ssh: { user: deploy } }',
    ].join('\n');
    const { ctx } = await cloudContext(inventory(stub, groups), dir);
    const hosts = ctx.providers[0]!.hosts;
    const r = await provision(new AwsProvider(), ctx);
    assert.deepEqual(r.failed, []);
    const users = Object.fromEntries(r.done.map((m) => [m.name, m.ssh.user]));
    assert.deepEqual(users, {
      'managers-1': 'ubuntu',
      'debs-1': 'admin',
      'debs-2': 'admin',
      'debs-3': 'admin',
      'amzn-1': 'ec2-user',
      'amzn-2': 'ec2-user',
      'pinned-1': 'deploy',
    });
    const asked = stub.calls.filter((c) => c.action === 'DescribeImages').map((c) => c.params['ImageId.1']).sort();
    assert.deepEqual(asked, ['ami-0000000000000a1a1', 'ami-0000000000000ab01', 'ami-0000000000000de01'], 'one call per distinct AMI, not per host');
    assert.equal(awsCallPlan(hosts, awsSettings(ctx.inventory)).setup, 6 + 3, 'plan counts the image lookups');
    // A later run (a new context) looks each image up again, once; list gives the same users.
    const { ctx: again } = await cloudContext(inventory(stub, groups), dir);
    const before = stub.count('DescribeImages');
    const p = new AwsProvider();
    const listed = Object.fromEntries((await p.list(again.providerContext)).map((m) => [m.name, m.ssh.user]));
    assert.deepEqual(listed, users);
    assert.equal(stub.count('DescribeImages') - before, 3);
  } finally {
    await stub.stop();
  }
});

test('a written ssh.user wins over the image and asks EC2 nothing about images', async () => {
  const stub = await new Ec2Stub({ images: IMAGES }).start();
  try {
    const { ctx } = await cloudContext(inventory(stub, '  debs: { role: manager, count: 2, options: { ami: ami-0000000000000de01 } }', `{ user: root, port: ${banner.port}, key: ${key} }`), dir);
    const r = await provision(new AwsProvider(), ctx);
    assert.deepEqual(r.failed, []);
    assert.deepEqual(r.done.map((m) => m.ssh.user), ['root', 'root']);
    assert.equal(stub.count('DescribeImages'), 0);
  } finally {
    await stub.stop();
  }
});

test('an image that tells no user (or is unknown to EC2) stops create before anything is launched', async () => {
  const stub = await new Ec2Stub({ images: IMAGES }).start();
  try {
    for (const [ami, pattern] of [
      ['ami-00000000000000bad', /groups\.golden: aws host golden-1 uses image ami-00000000000000bad \("my-golden-image-42", "our base"\), whose login user swarmform cannot tell/],
      ['ami-00000000000000404', /groups\.golden: aws host golden-1 uses image ami-00000000000000404 \(not found by DescribeImages\)/],
    ] as const) {
      const { ctx } = await cloudContext(inventory(stub, `  managers: { role: manager, count: 1 }\n  golden: { role: worker, count: 2, options: { ami: ${ami} } }`), dir);
      await assert.rejects(provision(new AwsProvider(), ctx), (e: unknown) => {
        assert.ok(e instanceof UsageError, String(e));
        assert.match(e.message, pattern);
        assert.match(String((e as UsageError & { hint?: string }).hint), /set ssh\.user/);
        return true;
      });
      assert.equal(stub.count('RunInstances'), 0, 'nothing launched');
    }
  } finally {
    await stub.stop();
  }
});
