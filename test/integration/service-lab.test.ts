/**
 * The docker CLI's service, node, network, join-token and env verbs, run through swarmform against a lab cluster
 * (1 manager + 3 workers, then a 4th worker), checked with Docker itself on the manager. The guides' scenarios:
 * replicated service with a published port scaled and removed; rolling update v1 -> v2 with parallelism 1, then
 * rollback; a failing update that rolls back by itself; a global service that follows a joining node; drain, labels
 * and constraints, promote/demote. Images are made on every node by `docker import` of the lab's busybox rootfs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { cli, isRoot, labLeftovers, lastJson, machinesOf, onHost, testHome, type StateMachine } from '../support/lab.js';

const execFileP = promisify(execFile);
const cluster = 't-svc';
const home = testHome();
const env = { SWARMFORM_HOME: home, SVC_WORKERS: '3' };
const skip = isRoot ? false : 'lab tests need root';
let inventory = '';
let machines: StateMachine[] = [];

const INVENTORY = `cluster: ${cluster}
provider: lab
providers:
  lab: { subnet: 198.18.35.0/24 }
groups:
  managers:
    role: manager
    name: mgr-[1:1]
  workers:
    role: worker
    name: worker-[1:{{ env.SVC_WORKERS | default(3) }}]
`;

/** Two tags of one busybox rootfs that serve their version, and one whose command exits 1 (every node). */
const IMAGES = `set -e
f=$(mktemp /var/lib/docker/sf-rootfs.XXXXXX)
c=$(docker create swarmform/busybox:latest true)
docker export "$c" > "$f"
docker rm "$c" >/dev/null
for v in v1 v2; do
  docker import --change "ENV VERSION=$v" --change 'CMD ["sh","-c","mkdir -p /www; echo version $VERSION > /www/index.html; exec httpd -f -p 80 -h /www"]' "$f" sfweb:$v >/dev/null
done
docker import --change 'CMD ["sh","-c","echo failing on purpose; exit 1"]' "$f" sffail:v1 >/dev/null
rm -f "$f"
docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -c '^sf'`;

const sf = (args: string[], timeoutMs = 5 * 60_000) => cli(['-i', inventory, ...args], env, timeoutMs);
const manager = () => machines.find((m) => m.name === 'mgr-1')!;
const docker = async (cmd: string) => {
  const r = await onHost(manager(), cmd);
  assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
  return r.stdout.trim();
};
const ok = (r: { code: number; stdout: string; stderr: string }, what: string) => assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);

/** GET a page from a lab host's address (only lab addresses of this test receive traffic). */
async function page(address: string, port: number): Promise<string> {
  const res = await fetch(`http://${address}:${port}/`, { signal: AbortSignal.timeout(10_000) });
  return (await res.text()).trim();
}

before(async () => {
  if (!isRoot) return;
  mkdirSync(home, { recursive: true });
  inventory = join(home, `${cluster}.yml`);
  writeFileSync(inventory, INVENTORY);
});

after(async () => {
  if (!isRoot) return;
  const r = await cli(['down', '--force', '-i', inventory], env);
  if (r.code !== 0) console.error(r.stderr);
  assert.deepEqual(await labLeftovers(cluster), []);
});

test('lab cluster with v1, v2 and failing images on every node', { skip, timeout: 15 * 60_000 }, async () => {
  const up = await sf(['up'], 15 * 60_000);
  ok(up, 'up');
  machines = machinesOf(home, cluster);
  assert.equal(machines.length, 4);
  const imgs = await sf(['exec', 'all', '--', IMAGES]);
  ok(imgs, 'image import');
  assert.equal(imgs.stdout.trim().split('\n').filter((l) => / \| 3$/.test(l)).length, 4, imgs.stdout);
});

test('replicated service with a host-mode port: create with progress, ls, ps, scale to 4, rm', { skip, timeout: 5 * 60_000 }, async () => {
  const create = await sf([
    'service', 'create', '--name', 'web', '--replicas', '3', '--publish', 'mode=host,published=8080,target=80',
    '--update-parallelism', '1', '--update-delay', '1s', '--update-monitor', '2s', '--rollback-monitor', '2s', 'sfweb:v1',
  ]);
  ok(create, 'service create');
  const id = await docker("docker service inspect web --format '{{.ID}}'");
  assert.equal(create.stdout.split('\n')[0], id, 'prints the service ID first, like docker');
  assert.match(create.stdout, /^overall progress: 3 out of 3 tasks$/m);
  assert.match(create.stdout, /^1\/3: running/m);
  assert.match(create.stdout, /^verify: Service converged$/m);
  const running = await docker("docker service ps web --filter desired-state=running --format '{{.CurrentState}}|{{.Node}}|{{.Ports}}'");
  assert.equal(running.split('\n').filter((l) => l.startsWith('Running') && l.includes('*:8080->80/tcp')).length, 3, running);
  const node = running.split('\n')[0]!.split('|')[1]!;
  assert.equal(await page(machines.find((m) => m.name === node)!.privateAddress, 8080), 'version v1');

  const ls = await sf(['service', 'ls']);
  ok(ls, 'service ls');
  assert.match(ls.stdout, /^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS$/m);
  assert.match(ls.stdout, new RegExp(`^${id.slice(0, 12)}\\s+web\\s+replicated\\s+3/3\\s+sfweb:v1\\s+\\*:8080->80/tcp`, 'm'));
  const ps = await sf(['service', 'ps', 'web']);
  ok(ps, 'service ps');
  assert.match(ps.stdout, /^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS$/m);
  assert.equal(ps.stdout.split('\n').filter((l) => /\sweb\.[123]\s+sfweb:v1\s+\S+\s+Running\s+Running .* ago\s+\*:8080->80\/tcp$/.test(l)).length, 3, ps.stdout);

  const scale = await sf(['service', 'scale', 'web=4']);
  ok(scale, 'service scale');
  assert.match(scale.stdout, /^web scaled to 4$/m);
  assert.match(scale.stdout, /^overall progress: 4 out of 4 tasks$/m);
  const nodes = await docker("docker service ps web --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'");
  assert.equal(new Set(nodes.split('\n').filter((l) => / Running/.test(l)).map((l) => l.split(' ')[0])).size, 4, nodes);
  const pretty = await sf(['service', 'inspect', '--pretty', 'web']);
  ok(pretty, 'inspect --pretty');
  assert.match(pretty.stdout, /Replicas:\s+4/);
  assert.match(pretty.stdout, /PublishMode = host/);
});

test('rolling update v1 -> v2 one task at a time, then rollback to v1', { skip, timeout: 5 * 60_000 }, async () => {
  const upd = await sf(['service', 'update', '--image', 'sfweb:v2', 'web']);
  ok(upd, 'service update');
  assert.match(upd.stdout, /^web$/m);
  assert.match(upd.stdout, /^overall progress: 4 out of 4 tasks$/m);
  assert.match(upd.stdout, /^verify: Service converged$/m);
  assert.equal(await docker("docker service inspect web --format '{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.Spec.UpdateConfig.Parallelism}} {{.UpdateStatus.State}}'"), 'sfweb:v2 1 completed');
  // Every slot has a running v2 task and its v1 task shut down.
  const tasks = await docker("docker service ps web --format '{{.Name}}|{{.Image}}|{{.DesiredState}}|{{.CurrentState}}'");
  const lines = tasks.split('\n');
  for (const slot of [1, 2, 3, 4]) {
    const mine = lines.filter((l) => l.replace(/^\s*\\_\s*/, '').startsWith(`web.${slot}|`));
    assert.ok(mine.some((l) => /\|sfweb:v2\|Running\|Running/.test(l)), `slot ${slot}: ${tasks}`);
    assert.ok(mine.some((l) => /\|sfweb:v1\|Shutdown\|(Shutdown|Complete)/.test(l)), `slot ${slot}: ${tasks}`);
  }
  // One at a time, with the 1 s update delay between them: the new tasks were created at least 1 s apart.
  const created = (await docker("docker inspect --format '{{.CreatedAt}}' $(docker service ps web -q --filter desired-state=running)"))
    .split('\n')
    .map((t) => Date.parse(t.replace(/ \+0000 UTC$/, 'Z').replace(' ', 'T')))
    .sort((a, b) => a - b);
  assert.equal(created.length, 4);
  for (let i = 1; i < created.length; i++) assert.ok(created[i]! - created[i - 1]! >= 1000, `created too close together: ${created.join(', ')}`);
  assert.equal(await page(machines[1]!.privateAddress, 8080), 'version v2');

  const rb = await sf(['service', 'rollback', 'web']);
  ok(rb, 'service rollback');
  assert.match(rb.stdout, /^rollback: manually requested rollback$/m);
  assert.match(rb.stdout, /^overall progress: rolling back update: 4 out of 4 tasks$/m);
  assert.equal(await docker("docker service inspect web --format '{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.UpdateStatus.State}}'"), 'sfweb:v1 rollback_completed');
  const images = await docker("docker service ps web --filter desired-state=running --format '{{.Image}}'");
  assert.deepEqual([...new Set(images.split('\n'))], ['sfweb:v1']);
  assert.equal(await page(machines[2]!.privateAddress, 8080), 'version v1');

  const rm = await sf(['service', 'rm', 'web']);
  ok(rm, 'service rm');
  assert.equal(rm.stdout.trim(), 'web');
  assert.equal(await docker("docker service ls --format '{{.Name}}' | grep -c '^web$' || true"), '0');
});

test('a failing update with failure action rollback rolls back by itself', { skip, timeout: 5 * 60_000 }, async () => {
  ok(await sf(['service', 'create', '--name', 'api', '--replicas', '2', '--update-monitor', '2s', 'sfweb:v1']), 'create api');
  const upd = await sf(['service', 'update', '--image', 'sffail:v1', '--update-failure-action', 'rollback', '--update-monitor', '5s', '--rollback-monitor', '2s', 'api']);
  assert.equal(upd.code, 1, `${upd.stdout}\n${upd.stderr}`);
  assert.match(upd.stdout, /^rollback: update rolled back due to failure or early termination of task/m);
  assert.match(upd.stderr, /service api: the update failed and was rolled back/);
  assert.equal(await docker("docker service inspect api --format '{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.UpdateStatus.State}}'"), 'sfweb:v1 rollback_completed');
  const failed = await docker("docker service ps api --format '{{.Image}} {{.CurrentState}} {{.Error}}'");
  assert.match(failed, /sffail:v1 (Failed|Shutdown|Complete).*non-zero exit \(1\)|sffail:v1 Failed/, failed);
  ok(await sf(['service', 'rm', 'api']), 'rm api');
});

test('global service: a task on every node, one more when a node joins; logs name task and node', { skip, timeout: 10 * 60_000 }, async () => {
  const create = await sf(['service', 'create', '--name', 'agent', '--mode', 'global', 'swarmform/busybox:latest', '--', 'sh', '-c', 'echo hello from $(hostname); exec sleep 3600']);
  ok(create, 'create global');
  assert.match(create.stdout, /^overall progress: 4 out of 4 tasks$/m);
  const count = async () => (await docker("docker service ps agent --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'")).split('\n').filter((l) => / Running/.test(l));
  assert.equal((await count()).length, 4);

  const logs = await sf(['service', 'logs', '--tail', '5', 'agent']);
  ok(logs, 'service logs');
  assert.match(logs.stdout, /^agent\.[a-z0-9]{25}\.[a-z0-9]{12}@worker-1\s+\| hello from [0-9a-f]{12}$/m);
  const stamped = await sf(['service', 'logs', '-t', 'agent']);
  assert.match(stamped.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z agent\.\S+@\S+\s+\| hello from/m);

  // A fourth worker joins: the global service gets a task there without being touched.
  const grown = await cli(['-i', inventory, 'up'], { ...env, SVC_WORKERS: '4' }, 10 * 60_000);
  ok(grown, 'up with a 4th worker');
  machines = machinesOf(home, cluster);
  for (let i = 0; i < 60; i++) {
    if ((await count()).length === 5) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const after = await count();
  assert.equal(after.length, 5, after.join('\n'));
  assert.ok(after.some((l) => l.startsWith('worker-4 ')), after.join('\n'));
  ok(await sf(['service', 'rm', 'agent']), 'rm agent');
});

test('nodes: ls, label + constraint, drain moves tasks, promote and demote, rm refused while Ready', { skip, timeout: 10 * 60_000 }, async () => {
  const envW = { ...env, SVC_WORKERS: '4' };
  const t0 = Date.now();
  const sfw = async (args: string[]) => {
    const r = await cli(['-i', inventory, ...args], envW, 5 * 60_000);
    console.error(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${args.join(' ')}: exit ${r.code}`);
    return r;
  };
  const ls = await sfw(['node', 'ls']);
  ok(ls, 'node ls');
  assert.match(ls.stdout, /^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS\s+ENGINE VERSION$/m);
  assert.match(ls.stdout, /\smgr-1\s+Ready\s+Active\s+Leader\s+\d/);
  assert.equal(ls.stdout.trim().split('\n').length, machines.length + 1);

  ok(await sfw(['node', 'update', '--label-add', 'disk=ssd', 'worker-2']), 'label-add');
  assert.equal(await docker("docker node inspect worker-2 --format '{{index .Spec.Labels \"disk\"}}'"), 'ssd');
  ok(await sfw(['service', 'create', '--name', 'pinned', '--replicas', '3', '--constraint', 'node.labels.disk==ssd', 'swarmform/busybox:latest', 'sleep', '3600']), 'create pinned');
  assert.deepEqual([...new Set((await docker("docker service ps pinned --filter desired-state=running --format '{{.Node}}'")).split('\n'))], ['worker-2']);
  ok(await sfw(['node', 'update', '--label-rm', 'disk', 'worker-2']), 'label-rm');
  assert.equal(await docker("docker node inspect worker-2 --format '{{index .Spec.Labels \"disk\"}}'"), '');
  ok(await sfw(['service', 'rm', 'pinned']), 'rm pinned');

  ok(await sfw(['service', 'create', '--name', 'spread', '--replicas', '5', 'swarmform/busybox:latest', 'sleep', '3600']), 'create spread');
  const onW1 = async () => (await docker("docker service ps spread --filter desired-state=running --format '{{.Node}}'")).split('\n').filter((n) => n === 'worker-1').length;
  assert.ok((await onW1()) > 0, 'spread has a task on worker-1');
  ok(await sfw(['node', 'update', '--availability', 'drain', 'worker-1']), 'drain');
  assert.equal(await docker("docker node inspect worker-1 --format '{{.Spec.Availability}}'"), 'drain');
  for (let i = 0; i < 60 && (await onW1()) > 0; i++) await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await onW1(), 0, 'no task of spread is meant to run on the drained node');
  for (let i = 0; i < 60; i++) {
    const r = await docker("docker service ps spread --filter desired-state=running --format '{{.CurrentState}}'");
    if (r.split('\n').filter((l) => l.startsWith('Running')).length === 5) break;
    await new Promise((res) => setTimeout(res, 1000));
  }
  const moved = await docker("docker service ps spread --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'");
  assert.equal(moved.split('\n').filter((l) => / Running/.test(l) && !l.startsWith('worker-1 ')).length, 5, moved);
  ok(await sfw(['node', 'update', '--availability', 'active', 'worker-1']), 'activate');
  ok(await sfw(['service', 'rm', 'spread']), 'rm spread');

  const promote = await sfw(['node', 'promote', 'worker-3']);
  ok(promote, 'promote');
  assert.match(promote.stdout, /Node worker-3 promoted to a manager in the swarm\./);
  for (let i = 0; i < 30; i++) {
    if ((await docker("docker node inspect worker-3 --format '{{.ManagerStatus.Reachability}}' 2>/dev/null || true")) === 'reachable') break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.equal(await docker("docker node inspect worker-3 --format '{{.Spec.Role}} {{.ManagerStatus.Reachability}}'"), 'manager reachable');
  const demote = await sfw(['node', 'demote', 'worker-3']);
  ok(demote, 'demote');
  assert.match(demote.stdout, /Manager worker-3 demoted in the swarm\./);
  for (let i = 0; i < 30; i++) {
    if ((await docker("docker node ls --filter role=manager --format '{{.Hostname}}'")) === 'mgr-1') break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.equal(await docker("docker node ls --filter role=manager --format '{{.Hostname}}'"), 'mgr-1');

  const last = machines.filter((m) => m.role === 'worker').at(-1)!.name;
  const rm = await sfw(['node', 'rm', last]);
  assert.equal(rm.code, 1, rm.stderr);
  assert.match(rm.stderr, new RegExp(`node ${last} \\(\\w{12}\\) is not down and can't be removed`));
  assert.match(await docker("docker node ls --format '{{.Hostname}}'"), new RegExp(last));
});

test('overlay network create, ls, rm; join tokens only on request, rotation updates the state', { skip, timeout: 10 * 60_000 }, async () => {
  const envW = { ...env, SVC_WORKERS: '4' };
  const sfw = (args: string[]) => cli(['-i', inventory, ...args], envW, 5 * 60_000);
  const created = await sfw(['network', 'create', '-d', 'overlay', '--attachable', 'backend']);
  ok(created, 'network create');
  assert.equal(await docker("docker network inspect backend --format '{{.Driver}} {{.Scope}} {{.Attachable}}'"), 'overlay swarm true');
  assert.equal(created.stdout.trim(), await docker("docker network inspect backend --format '{{.Id}}'"));
  const ls = await sfw(['network', 'ls']);
  assert.match(ls.stdout, /^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$/m);
  assert.match(ls.stdout, /\sbackend\s+overlay\s+swarm$/m);
  ok(await sfw(['network', 'rm', 'backend']), 'network rm');
  assert.equal(await docker("docker network ls --filter name=^backend$ -q | wc -l"), '0');
  const bad = await sfw(['network', 'create', '-d', 'bridge', 'x']);
  assert.equal(bad.code, 2, bad.stderr);

  const tokenNow = await docker('docker swarm join-token -q worker');
  const q = await sfw(['swarm', 'join-token', '-q', 'worker']);
  ok(q, 'join-token -q');
  assert.equal(q.stdout.trim(), tokenNow);
  const full = await sfw(['swarm', 'join-token', 'manager']);
  ok(full, 'join-token manager');
  assert.match(full.stdout, /docker swarm join --token SWMTKN-1-\S+ 198\.18\.35\.\d+:2377/);
  // Other commands never show tokens.
  const ls2 = await sfw(['node', 'ls', '--json']);
  assert.doesNotMatch(ls2.stdout + ls2.stderr, /SWMTKN/);
  const rot = await sfw(['swarm', 'join-token', '--rotate', '-q', 'worker']);
  ok(rot, 'rotate');
  const tokenAfter = await docker('docker swarm join-token -q worker');
  assert.notEqual(tokenAfter, tokenNow);
  assert.equal(rot.stdout.trim(), tokenAfter);
  const secrets = JSON.parse(readFileSync(join(home, cluster, 'secrets.json'), 'utf8')) as { workerToken?: string };
  assert.ok(secrets.workerToken === tokenAfter, 'secrets.json holds the rotated worker token');
});

test('env: the docker CLI on this machine reaches the leader through DOCKER_HOST=ssh://', { skip, timeout: 5 * 60_000 }, async () => {
  const out = await sf(['env', '--shell', 'bash']);
  ok(out, 'env');
  const addr = manager().ssh.host;
  assert.match(out.stdout, new RegExp(`^export DOCKER_HOST="ssh://root@${addr.replace(/\./g, '\\.')}:22"$`, 'm'));
  assert.match(out.stdout, /docker CLI there/);
  const fish = await sf(['env', '--shell', 'fish']);
  assert.match(fish.stdout, /^set -gx DOCKER_HOST "ssh:\/\/root@/m);
  const json = lastJson<{ dockerHost: string; manager: string; isLeader: boolean }>((await sf(['env', '--json'])).stdout, 'result');
  assert.equal(json?.manager, 'mgr-1');
  assert.equal(json?.isLeader, true);
  // The ssh config stanza it prints is all docker's ssh needs: use it through a wrapper, not the user's ~/.ssh/config.
  const docker = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
  const cfg = await sf(['env', '--ssh-config']);
  ok(cfg, 'env --ssh-config');
  const bin = join(home, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(home, 'ssh_config'), `${cfg.stdout}\n  BatchMode yes\n`);
  writeFileSync(join(bin, 'ssh'), `#!/bin/sh\nexec /usr/bin/ssh -F ${join(home, 'ssh_config')} "$@"\n`);
  chmodSync(join(bin, 'ssh'), 0o755);
  const dockerHost = /DOCKER_HOST="([^"]+)"/.exec(out.stdout)![1]!;
  const { stdout } = await execFileP(docker, ['node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}'], {
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, DOCKER_HOST: dockerHost, DOCKER_CONFIG: join(home, 'docker-config') },
    timeout: 60_000,
  });
  assert.match(stdout, /^mgr-1 Leader$/m);
  assert.equal(stdout.trim().split('\n').length, machines.length);
});
