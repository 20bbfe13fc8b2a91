/**
 * Compose stacks on real lab hosts (1 manager + 2 workers): a stack named in the inventory is applied by `up`, more
 * are deployed with `stack deploy`, one with the docker CLI itself; every result is checked with Docker on the
 * manager (`docker stack ls`, `docker stack services`, `docker service ps`, `docker network ls`, ...).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { cli, deriveInventory, isRoot, labLeftovers, lastJson, machinesOf, onHost, ROOT, testHome, type StateMachine } from '../support/lab.js';

const cluster = 't-stack2';
const home = testHome();
const env = { SWARMFORM_HOME: home };
const FIX = join(ROOT, 'test/fixtures/stacks');
let inventory = '';
let machines: StateMachine[] = [];
const skip = isRoot ? false : 'lab tests need root';
const manager = () => machines.find((m) => m.role === 'manager')!;

before(() => {
  inventory = deriveInventory(home, 'inventories/lab.yml', cluster, '198.18.31.0/24', (text) =>
    text
      .replace('name: mgr-[1:3]', 'name: mgr-[1:1]')
      .replace('name: worker-[1:3]', 'name: worker-[1:2]')
      // Two workers: the demo service's host-mode port fits two replicas.
      .replace(/^(\s+)replicas: 3$/m, '$1replicas: 2')
      .concat(`  stacks:\n    - name: wp\n      compose: ${join(FIX, 'wordpress.yml')}\n      env: { SITE_TITLE: Lab }\n`),
  );
});

after(async () => {
  if (!isRoot) return;
  const r = await cli(['down', '--force', '-i', inventory], env);
  if (r.code !== 0) console.error(r.stderr);
  assert.deepEqual(await labLeftovers(cluster), []);
});

async function docker(command: string): Promise<string> {
  const r = await onHost(manager(), command);
  assert.equal(r.code, 0, `${command}: ${r.stderr}`);
  return r.stdout.trim();
}

test('up with an invalid stack file stops before touching anything', { skip, timeout: 2 * 60_000 }, async () => {
  const bad = deriveInventory(home, 'inventories/lab.yml', 't-stack3', '198.18.32.0/24', (text) =>
    text.concat(`  stacks:\n    - name: bad\n      compose: ${join(FIX, 'invalid.yml')}\n`),
  );
  const r = await cli(['up', '-i', bad], env);
  assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
  assert.ok(r.stderr.includes(`${join(FIX, 'invalid.yml')}:7:7: services.web.deploy.placment: unknown key`), r.stderr);
  assert.deepEqual(await labLeftovers('t-stack3'), []);
  assert.deepEqual(machinesOf(home, 't-stack3'), []);
});

test('up applies the inventory stack: front end of 3, database on the manager, overlay network, named volume', { skip, timeout: 20 * 60_000 }, async () => {
  const r = await cli(['up', '-i', inventory], env);
  assert.equal(r.code, 0, `up failed:\n${r.stdout}\n${r.stderr}`);
  machines = machinesOf(home, cluster);
  assert.equal(machines.length, 3);

  assert.match(await docker('docker stack ls --format "{{.Name}} {{.Services}}"'), /^wp 2$/m);
  const services = (await docker('docker stack services wp --format "{{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}"')).split('\n').sort();
  assert.deepEqual(services, ['wp_db replicated 1/1 swarmform/busybox:latest', 'wp_wordpress replicated 3/3 (max 1 per node) swarmform/busybox:latest']);
  assert.equal(await docker('docker service ps wp_db --filter desired-state=running --format "{{.Node}} {{.CurrentState}}" | cut -d" " -f1-2'), 'mgr-1 Running');
  const nodes = (await docker('docker service ps wp_wordpress --filter desired-state=running --format "{{.Node}}"')).split('\n').sort();
  assert.deepEqual(nodes, ['mgr-1', 'worker-1', 'worker-2']);
  assert.equal(await docker('docker network ls --filter label=com.docker.stack.namespace=wp --format "{{.Name}} {{.Driver}} {{.Scope}}"'), 'wp_backend overlay swarm');
  assert.equal(await docker('docker volume ls --filter label=com.docker.stack.namespace=wp --format "{{.Name}}"'), 'wp_db_data');
  assert.equal(await docker('docker secret ls --format "{{.Name}}"'), 'wp_db_password');
  assert.equal(await docker('docker config ls --format "{{.Name}}"'), 'wp_site');
  // The labels docker reads, on the service itself.
  assert.equal(await docker(`docker service inspect wp_wordpress --format '{{index .Spec.Labels "com.docker.stack.namespace"}} {{index .Spec.Labels "com.docker.stack.image"}}'`), 'wp swarmform/busybox:latest');

  // Every node publishes its front-end task on 8081 (host mode); the page was interpolated from the inventory's env.
  for (const m of machines) {
    const res = await fetch(`http://${m.privateAddress}:8081/`, { signal: AbortSignal.timeout(10_000) });
    assert.match(await res.text(), /<h1>Lab on [0-9a-f]{12}<\/h1>/);
  }
  // Across the overlay network, by the short service name and by the network alias; the secret and config are there.
  const inFront = (cmd: string) => docker(`docker exec $(docker ps -q -f label=com.docker.swarm.service.name=wp_wordpress | head -1) ${cmd}`);
  assert.equal(await inFront('wget -q -O - http://db:3306/'), 'db-ok');
  assert.equal(await inFront('wget -q -O - http://mysql:3306/'), 'db-ok');
  assert.equal(await inFront('cat /etc/site.conf'), 'title = swarmform demo');
  assert.equal(await inFront('stat -c %a /run/secrets/db_password'), '444');
});

test('a second up changes nothing: no service, secret or network is touched', { skip, timeout: 10 * 60_000 }, async () => {
  const probe = `docker service inspect wp_db wp_wordpress --format '{{.Version.Index}}'; docker secret inspect wp_db_password --format '{{.Version.Index}}'; docker network ls -q --filter name=wp_`;
  const before = await docker(probe);
  const r = await cli(['up', '--json', '-i', inventory], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(lastJson<{ changed: number }>(r.stdout, 'result')?.changed, 0);
  assert.equal(await docker(probe), before);
});

test('stack ls, services and ps read like the docker CLI', { skip, timeout: 5 * 60_000 }, async () => {
  const ls = await cli(['stack', 'ls', '-i', inventory], env);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /^NAME\s+SERVICES\nwp\s+2$/m);
  const svc = await cli(['stack', 'services', 'wp', '-i', inventory], env);
  assert.match(svc.stdout, /^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS$/m);
  assert.match(svc.stdout, /^[0-9a-z]{12}\s+wp_wordpress\s+replicated\s+3\/3 \(max 1 per node\)\s+swarmform\/busybox:latest\s+\*:8081->80\/tcp \(host\)$/m);
  const json = await cli(['stack', 'services', 'wp', '--json', '-i', inventory], env);
  const rows = JSON.parse(json.stdout) as { name: string; running: number; desired: number }[];
  assert.deepEqual(rows.map((x) => [x.name, x.running, x.desired]), [['wp_db', 1, 1], ['wp_wordpress', 3, 3]]);
  const ps = await cli(['stack', 'ps', 'wp', '-i', inventory], env);
  assert.match(ps.stdout, /^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS$/m);
  assert.match(ps.stdout, /^[0-9a-z]{12}\s+wp_db\.1\s+swarmform\/busybox:latest\s+mgr-1\s+Running\s+Running /m);
  const psJson = JSON.parse((await cli(['stack', 'ps', 'wp', '--json', '-i', inventory], env)).stdout) as { name: string; node: string; desiredState: string; state: string }[];
  const running = psJson.filter((t) => t.desiredState === 'Running' && t.state === 'running');
  assert.deepEqual(running.map((t) => t.name).sort(), ['wp_db.1', 'wp_wordpress.1', 'wp_wordpress.2', 'wp_wordpress.3']);
});

test('stack deploy: merged files, unchanged redeploy, invalid file and changed secret change nothing', { skip, timeout: 10 * 60_000 }, async () => {
  const files = ['-c', join(FIX, 'wordpress.yml'), '-c', join(FIX, 'override.yml')];
  const d = await cli(['stack', 'deploy', 'app2', ...files, '-i', inventory], { ...env, FRONT_PORT: '8082' });
  assert.equal(d.code, 0, `${d.stdout}\n${d.stderr}`);
  assert.match(d.stderr, /Ignoring unsupported option build \(service cache\)/);
  assert.match(d.stderr, /app2_cache use endpoint_mode vip \(the default\): the lab kernel has no IPVS/);
  const services = (await docker('docker stack services app2 --format "{{.Name}} {{.Replicas}}"')).split('\n').sort();
  assert.deepEqual(services, ['app2_cache 1/1', 'app2_db 1/1', 'app2_wordpress 2/2 (max 1 per node)']);
  assert.match(await docker('docker network ls --format "{{.Name}}"'), /^app2_default$/m);

  const probe = `docker service inspect app2_cache app2_db app2_wordpress --format '{{.Version.Index}}'; docker secret inspect app2_db_password --format '{{.Version.Index}}'`;
  const before = await docker(probe);
  const again = await cli(['stack', 'deploy', 'app2', ...files, '-i', inventory], { ...env, FRONT_PORT: '8082' });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /Nothing to change: stack app2 is up to date \(3 service\(s\) unchanged\)/);
  assert.equal(await docker(probe), before);

  // An invalid file: exit 2, FILE:LINE:COL: key, and nothing deployed.
  const stacksBefore = await docker('docker stack ls');
  const bad = await cli(['stack', 'deploy', 'bad', '-c', join(FIX, 'invalid.yml'), '-i', inventory], env);
  assert.equal(bad.code, 2);
  assert.ok(bad.stderr.includes(`${join(FIX, 'invalid.yml')}:6:17: services.web.deploy.replicas: expected a number of replicas, got "three"`), bad.stderr);
  assert.equal(await docker('docker stack ls'), stacksBefore);

  // New content for an existing secret: refused before anything changes, and the content is never printed.
  const dir = mkdtempSync(join(home, 'changed-'));
  writeFileSync(join(dir, 'wordpress.yml'), readFileSync(join(FIX, 'wordpress.yml'), 'utf8').replace('replicas: 3', 'replicas: 1'));
  copyFileSync(join(FIX, 'site.conf'), join(dir, 'site.conf'));
  writeFileSync(join(dir, 'db_password.txt'), 'a-new-password-9f3a\n');
  const changed = await cli(['stack', 'deploy', 'app2', '-c', join(dir, 'wordpress.yml'), '-i', inventory], { ...env, FRONT_PORT: '8082' });
  assert.equal(changed.code, 1);
  assert.match(changed.stderr, /secret app2_db_password already exists with different content, and swarm secrets cannot change/);
  assert.doesNotMatch(changed.stdout + changed.stderr, /a-new-password-9f3a|not-a-real-password/);
  assert.equal(await docker(probe), before);
});

test('a stack deployed with the docker CLI shows up in swarmform, and swarmform adopts it', { skip, timeout: 10 * 60_000 }, async () => {
  const file = ['version: "3.8"', 'services:', '  app:', '    image: swarmform/busybox:latest', '    command: ["sleep", "3600"]', '    deploy:', '      replicas: 2', '      endpoint_mode: dnsrr', ''].join('\n');
  await docker(`mkdir -p /tmp/clistack && cat > /tmp/clistack/docker-compose.yml <<'EOF'\n${file}EOF\ncd /tmp/clistack && docker stack deploy -c docker-compose.yml clistack`);
  const ls = await cli(['stack', 'ls', '--json', '-i', inventory], env);
  assert.deepEqual(JSON.parse(ls.stdout), [{ name: 'app2', services: 3 }, { name: 'clistack', services: 1 }, { name: 'wp', services: 2 }]);
  const svc = await cli(['stack', 'services', 'clistack', '-i', inventory], env);
  assert.match(svc.stdout, /clistack_app\s+replicated\s+\d\/2\s+swarmform\/busybox:latest/);
  // The same file deployed by swarmform: one update (the spec hash label), then nothing.
  const local = join(mkdtempSync(join(home, 'cli-')), 'docker-compose.yml');
  writeFileSync(local, file);
  const first = await cli(['stack', 'deploy', 'clistack', '-c', local, '-i', inventory], env);
  assert.equal(first.code, 0, first.stderr);
  const second = await cli(['stack', 'deploy', 'clistack', '-c', local, '-i', inventory], env);
  assert.match(second.stdout, /Nothing to change/);
});

test('stack rm removes services, networks, secrets and configs; volumes stay', { skip, timeout: 5 * 60_000 }, async () => {
  const r = await cli(['stack', 'rm', 'app2', 'clistack', '-i', inventory], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Removed stack app2: 3 service\(s\), 1 secret\(s\), 1 config\(s\), 2 network\(s\)/);
  assert.equal(await docker('docker stack ls --format "{{.Name}}"'), 'wp');
  assert.equal(await docker('docker service ls --format "{{.Name}}" | grep -c -e ^app2_ -e ^clistack_ || true'), '0');
  // The swarm networks are gone at once; the manager's local copy goes when its last task container has stopped.
  let left = '';
  for (let i = 0; i < 60; i++) {
    left = await docker('docker network ls --format "{{.Name}}" | grep -e ^app2_ -e ^clistack_ || true');
    if (left === '') break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.equal(left, '');
  assert.equal(await docker('docker secret ls --format "{{.Name}}"'), 'wp_db_password');
  assert.equal(await docker('docker config ls --format "{{.Name}}"'), 'wp_site');
  // The database's named volume lives on the manager (its constraint) and is kept, as docker stack rm keeps it.
  assert.match(await docker('docker volume ls --format "{{.Name}}"'), /^app2_db_data$/m);
  const none = await cli(['stack', 'rm', 'nosuch', '-i', inventory], env);
  assert.equal(none.code, 0);
  assert.match(none.stdout, /Nothing found in stack: nosuch/);
});
