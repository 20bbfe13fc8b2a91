/**
 * Real servers, as users have them, on lab OS hosts: Debian 12 systems booted under systemd, a login user with sudo
 * and no root login, the engine from packages (the lab's apt repository on the bridge), nftables. `up` on
 * inventories/lab-debian.yml (renamed), checked on every host with its own tools and with `sudo docker node ls`;
 * the swarm ports checked from a host that is not a member; a manager and a worker rebooted; one Debian 13 host
 * joined (mixed engine versions); a second `up` changes nothing; `down` leaves nothing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { cli, deriveInventory, isRoot, labLeftovers, lastJson, machinesOf, onHost, testHome, type StateMachine } from '../support/lab.js';
import { outsider, type Outsider } from '../support/outsider.js';

const execFileP = promisify(execFile);
const cluster = `t-deb-${process.pid % 10000}`;
const subnet = '198.18.71.0/24';
const home = testHome();
const env = { SWARMFORM_HOME: home };
let inventory = '';
let machines: StateMachine[] = [];
let stranger: Outsider | undefined;
const skip = isRoot ? false : 'lab tests need root';

before(() => {
  inventory = deriveInventory(home, 'inventories/lab-debian.yml', cluster, subnet);
});

after(async () => {
  if (!isRoot) return;
  await stranger?.remove();
  const r = await cli(['down', '--force', '-i', inventory], env);
  if (r.code !== 0) console.error(r.stderr);
  assert.deepEqual(await labLeftovers(cluster), []);
});

const host = (name: string) => machines.find((m) => m.name === name)!;
const sudo = (m: StateMachine, cmd: string) => onHost(m, `sudo -n ${cmd}`);

/** `docker node ls` on mgr-1 through sudo: hostname, status, manager status, engine version. */
async function nodeLs(): Promise<string[]> {
  const r = await sudo(host('mgr-1'), "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}} {{.EngineVersion}}'");
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split('\n').sort();
}

async function waitReady(count: number, ms: number): Promise<string[]> {
  const until = Date.now() + ms;
  let last: string[] = [];
  while (Date.now() < until) {
    last = await nodeLs().catch(() => last);
    if (last.length === count && last.every((l) => / Ready /.test(l))) return last;
    await new Promise((r) => setTimeout(r, 2000));
  }
  assert.fail(`not all ${count} nodes Ready within ${ms / 1000} s:\n${last.join('\n')}`);
}

test('up on Debian 12 hosts as a non-root user: engine from packages under systemd, 3+3 Ready, workload up', { skip, timeout: 30 * 60_000 }, async () => {
  const r = await cli(['up', '-i', inventory], env);
  if (r.code !== 0) {
    // The documented answer to a timed-out join is to run up again.
    const again = await cli(['up', '-i', inventory], env);
    assert.equal(again.code, 0, `up failed twice:\n${r.stdout.slice(-3000)}\n${r.stderr}\n---\n${again.stdout.slice(-3000)}\n${again.stderr}`);
  }
  machines = machinesOf(home, cluster);
  assert.equal(machines.length, 6);
  for (const m of machines) assert.equal(m.ssh.user, 'admin', `${m.name} is reached as the login user`);

  const nodes = await waitReady(6, 120_000);
  assert.equal(nodes.filter((l) => / Leader /.test(l)).length, 1, nodes.join('\n'));
  assert.equal(nodes.filter((l) => / Reachable /.test(l)).length, 2, nodes.join('\n'));

  const ps = await sudo(host('mgr-1'), "docker service ps web --filter desired-state=running --format '{{.CurrentState}}'");
  assert.equal(ps.stdout.trim().split('\n').filter((l) => l.startsWith('Running')).length, 3, ps.stdout);
  const url = /web: (http:\/\/[\d.]+:8080\/)/.exec((await cli(['up', '-i', inventory], env)).stdout)?.[1];
  assert.ok(url, 'up tells where the workload answers');
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
});

test('every host: docker.io from packages, active under systemd, the user not in the docker group, root login refused', { skip, timeout: 5 * 60_000 }, async () => {
  assert.equal(machines.length, 6, 'the cluster is up');
  for (const m of machines) {
    const r = await onHost(
      m,
      "systemctl is-active docker; systemctl is-enabled docker; dpkg-query -W -f='${Status}\\n' docker.io; id -nG; sudo -n sshd -T | grep -i '^permitrootlogin'",
    );
    assert.equal(r.code, 0, `${m.name}: ${r.stderr}`);
    const [active, enabled, pkg, groups, root] = r.stdout.trim().split('\n');
    assert.equal(active, 'active', m.name);
    assert.equal(enabled, 'enabled', m.name);
    assert.equal(pkg, 'install ok installed', m.name);
    assert.doesNotMatch(groups!, /\bdocker\b/, `${m.name}: swarmform must not add the user to the docker group`);
    assert.equal(root, 'permitrootlogin no', m.name);
    const asRoot = await onHost({ ...m, ssh: { ...m.ssh, user: 'root' } }, 'true');
    assert.notEqual(asRoot.code, 0, `${m.name}: root login must be refused`);
  }
});

test('nftables: the swarm ports are open to members and closed to a lab host that is not one', { skip, timeout: 5 * 60_000 }, async () => {
  const mgr = host('mgr-1');
  const table = await sudo(mgr, 'nft list table inet swarmform');
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /198\.18\.71\.\d+/);
  assert.equal((await onHost(mgr, 'systemctl is-enabled swarmform-firewall')).stdout.trim(), 'enabled');

  const probe = `timeout 3 bash -c '</dev/tcp/${mgr.privateAddress}/2377' && echo open || echo closed`;
  const fromMember = await onHost(host('worker-1'), probe);
  assert.equal(fromMember.stdout.trim(), 'open', 'a member reaches 2377');
  stranger = await outsider(cluster, subnet, 250);
  assert.equal(await stranger.tcpOpen(mgr.privateAddress, 2377), false, 'a non-member must not reach 2377');
  assert.equal(await stranger.tcpOpen(mgr.privateAddress, 7946), false, 'a non-member must not reach 7946');
  assert.equal(await stranger.tcpOpen(mgr.privateAddress, 22), true, 'the rest of the host policy is left alone (SSH still answers)');
});

test('a rebooted manager and worker come back by themselves, Ready, with their firewall; up then changes nothing', { skip, timeout: 15 * 60_000 }, async () => {
  for (const name of ['worker-2', 'mgr-2']) {
    // /run is a fresh tmpfs at each boot (a container's uptime and boot_id are the machine's): the marker's absence
    // says the host did reboot.
    const marked = await sudo(host(name), 'touch /run/swarmform-test-before-reboot');
    assert.equal(marked.code, 0, marked.stderr);
    await onHost(host(name), 'sudo -n systemctl reboot');
    const until = Date.now() + 240_000;
    let back = await onHost(host(name), 'test ! -e /run/swarmform-test-before-reboot && systemctl is-active docker');
    while (back.code !== 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 2000));
      back = await onHost(host(name), 'test ! -e /run/swarmform-test-before-reboot && systemctl is-active docker');
    }
    assert.equal(back.code, 0, `${name} did not come back with its engine active within 240 s: ${back.stdout}${back.stderr}`);
    await waitReady(6, 240_000);
    const fw = await sudo(host(name), 'nft list table inet swarmform');
    assert.equal(fw.code, 0, `${name}: the swarm rules are back after the reboot: ${fw.stderr}`);
    assert.match(fw.stdout, /198\.18\.71\.\d+/, `${name}: the members are in the rules again`);
  }
  const json = await cli(['up', '--json', '-i', inventory], env);
  assert.equal(json.code, 0, json.stderr);
  assert.equal(lastJson<{ changed: number }>(json.stdout, 'result')?.changed, 0, json.stdout.slice(-2000));
});

test('a Debian 13 host joins the Debian 12 swarm (mixed engine versions)', { skip, timeout: 20 * 60_000 }, async () => {
  const extended = deriveInventory(home, 'inventories/lab-debian.yml', cluster, subnet, (t) =>
    t.replace('workloads:', ['  trixie:', '    role: worker', '    hosts: [{ name: trixie-1 }]', '    options:', '      os: debian-13', '', 'workloads:'].join('\n')),
  );
  const r = await cli(['up', '-i', extended], env);
  if (r.code !== 0) {
    const again = await cli(['up', '-i', extended], env);
    assert.equal(again.code, 0, `up failed twice:\n${r.stdout.slice(-3000)}\n${r.stderr}\n---\n${again.stdout.slice(-3000)}\n${again.stderr}`);
  }
  machines = machinesOf(home, cluster);
  const nodes = await waitReady(7, 120_000);
  const versions = new Set(nodes.map((l) => l.split(' ').pop()));
  assert.ok(versions.size >= 2, `two engine versions in one swarm:\n${nodes.join('\n')}`);
  const os = await onHost(host('trixie-1'), ". /etc/os-release; echo $VERSION_CODENAME; dpkg-query -W -f='${Version}\\n' docker.io; command -v docker");
  assert.match(os.stdout, /^trixie\n26\.\S+\n\/usr\/bin\/docker\n$/, 'trixie\'s docker.io, with its CLI (docker-cli) for the engine relay');
  inventory = extended;
});

test('down removes every booted host, its mounts and namespace', { skip, timeout: 10 * 60_000 }, async () => {
  const r = await cli(['down', '-i', inventory], env);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await labLeftovers(cluster), []);
  const { stdout } = await execFileP('ps', ['-eo', 'args']);
  assert.doesNotMatch(stdout, new RegExp(`systemd-nspawn.*${cluster}`), 'no booted machine is left');
});
