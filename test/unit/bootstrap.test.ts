import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collapseToCidrs, inCidr, intToIpv4, ipv4ToInt } from '../../src/bootstrap/cidrs.js';
import { parseFacts } from '../../src/bootstrap/facts.js';
import { render } from '../../src/bootstrap/templates.js';
import { daemonConfig } from '../../src/bootstrap/daemon-config.js';
import { closeSwarmPorts, openSwarmPorts } from '../../src/bootstrap/firewall.js';
import { aptSource } from '../../src/bootstrap/install-engine.js';
import type { Remote } from '../../src/remote/remote.js';
import { tempDir } from '../support/tmp.js';

test('collapseToCidrs covers exactly the members, in few blocks', () => {
  assert.deepEqual(collapseToCidrs(['198.18.0.2', '198.18.0.3', '198.18.0.4', '198.18.0.5', '198.18.0.6', '198.18.0.7']), ['198.18.0.2/31', '198.18.0.4/30']);
  assert.deepEqual(collapseToCidrs(['10.0.0.1']), ['10.0.0.1/32']);
  assert.deepEqual(collapseToCidrs(['10.0.0.9', '10.0.0.1', '10.0.0.9']), ['10.0.0.1/32', '10.0.0.9/32']);
  // 256 contiguous aligned addresses are one /24.
  const all = Array.from({ length: 256 }, (_, i) => `172.16.5.${i}`);
  assert.deepEqual(collapseToCidrs(all), ['172.16.5.0/24']);
  // Every produced block contains only members.
  const members = ['192.0.2.3', '192.0.2.4', '192.0.2.5', '192.0.2.6', '192.0.2.7', '192.0.2.8', '192.0.2.200'];
  const blocks = collapseToCidrs(members);
  for (let n = ipv4ToInt('192.0.2.0'); n <= ipv4ToInt('192.0.2.255'); n++) {
    const ip = intToIpv4(n);
    assert.equal(blocks.some((b) => inCidr(ip, b)), members.includes(ip), ip);
  }
});

test('collapseToCidrs stays fast at Swarm3k size', () => {
  const ips = Array.from({ length: 4700 }, (_, i) => intToIpv4(ipv4ToInt('10.1.0.0') + i * 3));
  const t0 = performance.now();
  const blocks = collapseToCidrs(ips);
  assert.equal(blocks.length, 4700);
  assert.ok(performance.now() - t0 < 2000);
});

test('ipv4ToInt rejects what is not an address', () => {
  assert.throws(() => ipv4ToInt('300.1.1.1'));
  assert.throws(() => ipv4ToInt('1.2.3'));
  assert.equal(inCidr('10.1.2.3', '10.0.0.0/8'), true);
  assert.equal(inCidr('11.1.2.3', '10.0.0.0/8'), false);
  assert.equal(inCidr('11.1.2.3', '0.0.0.0/0'), true);
});

test('parseFacts reads the facts script output', () => {
  const f = parseFacts(
    ['os_id=debian', 'os_like=', 'os_version=12', 'arch=x86_64', 'init=none', 'hostname=mgr-1', 'engine_running=no', 'bundle_sha=', 'firewall=iptables', 'address=198.18.0.2', 'address=10.0.0.5'].join('\n'),
  );
  assert.equal(f.osFamily, 'debian');
  assert.equal(f.init, 'none');
  assert.equal(f.enginePath, undefined);
  assert.equal(f.firewall, 'iptables');
  assert.deepEqual(f.addresses, ['198.18.0.2', '10.0.0.5']);
  assert.equal(parseFacts('os_id=rocky\nos_like=rhel centos fedora\ninit=systemd').osFamily, 'rhel');
  assert.equal(parseFacts('os_id=alpine\ninit=openrc').osFamily, 'alpine');
});

test('firewall templates allow members only and drop everyone else on the swarm ports', () => {
  const rules = render('firewall/iptables.rules.njk', { sources: ['198.18.0.2/31', '198.18.0.4/30'] });
  assert.match(rules, /-A SWARMFORM -s 198\.18\.0\.2\/31 -p tcp -m multiport --dports 2377,7946 -j ACCEPT/);
  assert.match(rules, /-A SWARMFORM -s 198\.18\.0\.4\/30 -p udp -m multiport --dports 7946,4789 -j ACCEPT/);
  assert.match(rules, /-A SWARMFORM -p udp -m multiport --dports 7946,4789 -j DROP/);
  assert.doesNotMatch(rules, /0\.0\.0\.0\/0/);
  for (const tool of ['nftables', 'ufw', 'firewalld']) {
    const script = render(`firewall/${tool}.sh.njk`, { sources: ['10.0.0.0/24'] });
    assert.match(script, /10\.0\.0\.0\/24/, tool);
    assert.match(script, /4789/, tool);
  }
});

test('daemon config: inventory keys override defaults', () => {
  const c = daemonConfig({ 'log-driver': 'local', debug: true });
  assert.equal(c['log-driver'], 'local');
  assert.equal(c.debug, true);
});

const debianFacts = parseFacts('os_id=debian\nos_version=12\nos_codename=bookworm\ninit=systemd\nfirewall=nftables');

test('parseFacts reads the codename', () => {
  assert.equal(debianFacts.osCodename, 'bookworm');
  assert.equal(debianFacts.init, 'systemd');
});

test('aptSource: the inventory mirror wins, then Docker\'s repository, then the provider\'s repository for the codename', () => {
  const lab = { bookworm: { url: 'http://198.18.0.1:3142/bookworm', suite: './', components: [], trusted: true } };
  assert.equal(aptSource('h', debianFacts, {}), undefined);
  const fromLab = aptSource('h', debianFacts, { providerMirrors: lab })!;
  assert.equal(fromLab.url, lab.bookworm.url);
  assert.equal(fromLab.options, 'trusted=yes');
  assert.equal(fromLab.only, true);
  const site = aptSource('h', debianFacts, {
    settings: { from: 'distribution', mirror: 'http://mirror.example.org/debian', key: '/k.asc', trusted: false },
    providerMirrors: lab,
  })!;
  assert.equal(site.url, 'http://mirror.example.org/debian');
  assert.equal(site.options, 'signed-by=/etc/apt/keyrings/swarmform.asc');
  assert.deepEqual(site.components, ['main']);
  assert.equal(site.suite, '');
  const docker = aptSource('h', debianFacts, { settings: { from: 'docker', trusted: false } })!;
  assert.equal(docker.url, 'https://download.docker.com/linux/debian');
  assert.equal(docker.keyUrl, 'https://download.docker.com/linux/debian/gpg');
  assert.equal(docker.only, false, 'docker-ce needs the distribution for its dependencies');
  const trixie = parseFacts('os_id=debian\nos_codename=trixie\ninit=systemd');
  assert.throws(() => aptSource('mgr-1', trixie, { providerMirrors: lab }), /mgr-1.*bookworm, not for trixie|bookworm, not for trixie/);
});

test('apt template: a flat mirror is the only source; the host codename fills an empty suite', () => {
  const only = render('install/apt.sh.njk', {
    packages: ['docker.io'],
    source: { url: 'http://198.18.0.1:3142/bookworm', suite: './', components: [], options: 'trusted=yes', only: true },
    systemd: true,
  });
  assert.match(only, /deb \[trusted=yes\] http:\/\/198\.18\.0\.1:3142\/bookworm \$\{suite:-\$VERSION_CODENAME\}/);
  assert.match(only, /suite='\.\/'/);
  assert.match(only, /Dir::Etc::sourceparts=-/);
  assert.match(only, /systemctl enable docker\.service/);
  const plain = render('install/apt.sh.njk', { packages: ['docker.io'], source: undefined, systemd: false });
  assert.doesNotMatch(plain, /sources\.list\.d\/swarmform/);
  assert.doesNotMatch(plain, /systemctl/);
});

test('firewall: kernel-only rules are kept with a boot unit on systemd hosts; removal takes the unit away', async () => {
  const calls: string[] = [];
  const files = new Map<string, string>();
  const remote = {
    name: 'h',
    run: async (c: string) => (calls.push(c), { code: 0, stdout: '', stderr: '' }),
    check: async (c: string) => (calls.push(c), ''),
    putContent: async (content: string, path: string) => void files.set(path, content),
  } as unknown as Remote;
  const msg = await openSwarmPorts(remote, { firewall: 'nftables', init: 'systemd' }, ['198.18.0.2/31']);
  assert.match(msg, /kept across reboots/);
  assert.match(files.get('/etc/swarmform/firewall.sh')!, /198\.18\.0\.2\/31/);
  assert.match(files.get('/etc/systemd/system/swarmform-firewall.service')!, /After=nftables\.service[\s\S]*Before=docker\.service/);
  assert.ok(calls.some((c) => /systemctl enable swarmform-firewall/.test(c)));
  files.clear();
  calls.length = 0;
  await openSwarmPorts(remote, { firewall: 'nftables', init: 'none' }, ['198.18.0.2/31']);
  assert.equal(files.size, 0, 'no unit without systemd');
  calls.length = 0;
  await closeSwarmPorts(remote, 'nftables');
  assert.ok(calls.some((c) => /nft delete table inet swarmform/.test(c)));
  assert.ok(calls.some((c) => /systemctl disable swarmform-firewall/.test(c)));
});

test('firewalld and ufw rules name the members only and record what they add', () => {
  const fw = render('firewall/firewalld.sh.njk', { sources: ['198.18.0.2/31', '198.18.0.4/30'] });
  assert.match(fw, /source address=\\"198\.18\.0\.4\/30\\" port port=/);
  assert.match(fw, /\/etc\/swarmform\/firewalld\.rules/);
  assert.doesNotMatch(fw, /new-zone|add-port=/, 'the default zone keeps its policy; no zone of our own');
  const ufw = render('firewall/ufw.sh.njk', { sources: ['198.18.0.2/31'] });
  assert.match(ufw, /keep=' 198\.18\.0\.2\/31 '/);
  assert.doesNotMatch(ufw, /default (allow|deny)/);
});

test('ufw: only the rules of blocks that left are deleted, also when ufw shows a member as a bare address', async () => {
  // ufw itself, faked: `status numbered` lists what a host with three members and one former member shows (ufw prints
  // a /32 without its suffix), `delete N` is recorded.
  const { writeFileSync, readFileSync, existsSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { execFileSync } = await import('node:child_process');
  const dir = tempDir('sf-ufw-');
  try {
    const status = [
      'Status: active',
      '',
      '     To                         Action      From',
      '     --                         ------      ----',
      '[ 1] 22/tcp                     ALLOW IN    Anywhere',
      '[ 2] 2377,7946/tcp              ALLOW IN    198.18.0.2/31              # swarmform',
      '[ 3] 2377,7946/tcp              ALLOW IN    198.18.0.4                 # swarmform',
      '[ 4] 2377,7946/tcp              ALLOW IN    198.18.0.9                 # swarmform',
      '[ 5] 7946,4789/udp              ALLOW IN    198.18.0.9                 # swarmform',
    ].join('\n');
    writeFileSync(join(dir, 'status'), `${status}\n`);
    writeFileSync(
      join(dir, 'ufw'),
      `#!/bin/sh\ncase "$1" in status) cat "${dir}/status" ;; --force) echo "$3" >> "${dir}/deleted" ;; esac\n`,
      { mode: 0o755 },
    );
    const script = render('firewall/ufw.sh.njk', { sources: ['198.18.0.2/31', '198.18.0.4/32'] });
    execFileSync('sh', ['-c', script], { env: { PATH: `${dir}:/usr/bin:/bin` } });
    const deleted = existsSync(join(dir, 'deleted')) ? readFileSync(join(dir, 'deleted'), 'utf8').trim().split('\n') : [];
    assert.deepEqual(deleted, ['5', '4'], 'the former member 198.18.0.9 goes, highest number first; 198.18.0.4 (a /32) stays');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
