/** Lab OS choices from group options: release, login user, firewall variant and extra image packages. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HostSpec } from '../../src/inventory/types.js';
import { imageName, imagePackages } from '../../src/providers/lab/os-image.js';
import { osChoice } from '../../src/providers/lab/settings.js';

const host = (options: Record<string, unknown>, group = 'workers'): HostSpec => ({
  name: 'worker-1',
  group,
  provider: 'lab',
  role: 'worker',
  labels: {},
  ssh: { user: 'root', port: 22, connectTimeout: 30 },
  options,
});

test('an OS group gets its defaults and its extra packages, sorted and without repeats', () => {
  assert.deepEqual(osChoice(host({}), { os: 'debian-12' }), { os: 'debian-12', user: 'admin', firewall: 'nftables', packages: [] });
  const c = osChoice(host({ os: 'debian-13', packages: ['python3-docker', 'python3', 'python3'] }), {});
  assert.deepEqual(c, { os: 'debian-13', user: 'admin', firewall: 'nftables', packages: ['python3', 'python3-docker'] });
  assert.deepEqual(imagePackages(c!).slice(-2), ['python3', 'python3-docker']);
  assert.equal(osChoice(host({}), {}), undefined, 'no os: a namespace host');
});

test('extra packages make their own cached image; none keeps the image of a plain group', () => {
  const plain = { os: 'debian-12' as const, user: 'admin', firewall: 'nftables' as const, packages: [] as string[] };
  const withPython = { ...plain, packages: ['python3', 'python3-docker'] };
  assert.notEqual(imageName(withPython), imageName(plain));
  assert.equal(imageName(osChoice(host({ packages: ['python3-docker', 'python3'] }), { os: 'debian-12' })!), imageName(withPython));
  // The digest covers the package list, so an image built before the option existed is still the plain one.
  assert.match(imageName(plain), /^bookworm-nftables-[0-9a-f]{12}$/);
});

test('a bad package name, or packages on a namespace host, names the key', () => {
  assert.throws(() => osChoice(host({ os: 'debian-12', packages: ['python3', 'rm -rf /'] }), {}), /groups\.workers\.options\.packages\.1: must be a Debian package name/);
  assert.throws(() => osChoice(host({ packages: ['python3'] }), {}), /groups\.workers\.options\.packages: only OS hosts have/);
});
