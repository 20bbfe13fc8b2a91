import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collapseToCidrs, inCidr, intToIpv4, ipv4ToInt } from '../../src/bootstrap/cidrs.js';
import { parseFacts } from '../../src/bootstrap/facts.js';
import { render } from '../../src/bootstrap/templates.js';
import { daemonConfig } from '../../src/bootstrap/daemon-config.js';

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
