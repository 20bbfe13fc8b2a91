/** Compose stacks: interpolation, loading with positions, merging, conversion to Engine API specs, deploy logic. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type Docker from 'dockerode';
import { InventoryError } from '../../src/base/errors.js';
import { EventBus } from '../../src/base/events.js';
import { labWarnings, planStack } from '../../src/core/stack.js';
import { interpolate } from '../../src/swarm/compose/interpolate.js';
import { loadStack } from '../../src/swarm/compose/load.js';
import { parseBytes, parseDuration } from '../../src/swarm/compose/units.js';
import { deployStack, ago } from '../../src/swarm/stacks.js';
import { tempDir } from '../support/tmp.js';

const FIX = join(import.meta.dirname, '../fixtures/stacks');
const wordpress = join(FIX, 'wordpress.yml');

/** A compose file in a fresh directory (with optional side files); returns its path. */
function compose(text: string, files: Record<string, string> = {}): string {
  const dir = tempDir('compose-test-');
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  const p = join(dir, 'docker-compose.yml');
  writeFileSync(p, text);
  return p;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InventoryError, `expected an InventoryError, got ${String(err)}`);
    assert.equal(err.exitCode, 2);
    return err.problems.map((p) => `${p.line}:${p.column}: ${p.key}: ${p.message}`);
  }
  assert.fail('expected the file to be rejected');
}

const spec = (s: { spec: Record<string, unknown> }) => s.spec as any; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('interpolation', () => {
  const env = { A: 'a', EMPTY: '' };
  test('forms docker reads', () => {
    assert.equal(interpolate('x-$A-${A}', env).value, 'x-a-a');
    assert.equal(interpolate('${EMPTY:-d} ${EMPTY-d} ${NOPE-d} ${NOPE:-d}', env).value, 'd  d d');
    assert.equal(interpolate('${A:+alt}${NOPE:+alt}', env).value, 'alt');
    assert.equal(interpolate('$$A costs $$5', env).value, '$A costs $5');
    assert.equal(interpolate('${NOPE:-${A}}', env).value, 'a');
    assert.deepEqual(interpolate('${NOPE}', env).unset, ['NOPE']);
  });
  test('errors', () => {
    assert.match(interpolate('${NOPE:?give it}', env).error!, /required variable NOPE is missing a value: give it/);
    assert.match(interpolate('${A', env).error!, /no closing/);
    assert.match(interpolate('${A!x}', env).error!, /invalid interpolation/);
    assert.match(interpolate('a $ b', env).error!, /lone "\$"/);
  });
});

describe('units', () => {
  test('durations and sizes', () => {
    assert.equal(parseDuration('1m30s'), 90e9);
    assert.equal(parseDuration('250ms'), 250e6);
    assert.equal(parseDuration('1.5h'), 5400e9);
    assert.equal(parseDuration('10'), undefined);
    assert.equal(parseBytes('64M'), 64 * 1024 * 1024);
    assert.equal(parseBytes('1gb'), 1024 ** 3);
    assert.equal(parseBytes('lots'), undefined);
  });
  test('ago reads like the docker CLI', () => {
    assert.equal(ago(500), 'Less than a second ago');
    assert.equal(ago(90_000), 'About a minute ago');
    assert.equal(ago(5 * 60_000), '5 minutes ago');
  });
});

describe('the WordPress stack converts as docker stack deploy does', () => {
  const { loaded, plan } = planStack('wp', [wordpress], { SITE_TITLE: 'Lab' });
  const front = plan.services.find((s) => s.short === 'wordpress')!;
  const db = plan.services.find((s) => s.short === 'db')!;

  test('names, labels and namespace', () => {
    assert.deepEqual(plan.services.map((s) => s.name), ['wp_db', 'wp_wordpress']);
    assert.equal(spec(front).Labels['com.docker.stack.namespace'], 'wp');
    assert.equal(spec(front).Labels['com.docker.stack.image'], 'swarmform/busybox:latest');
    assert.equal(spec(front).Labels['com.example.role'], 'frontend');
    assert.match(spec(front).Labels['swarmform.spec-hash'], /^[0-9a-f]{16}$/);
    assert.deepEqual(spec(front).TaskTemplate.ContainerSpec.Labels, { 'com.example.tier': 'front', 'com.docker.stack.namespace': 'wp' });
    assert.deepEqual(loaded.warnings, []);
  });

  test('networks: overlay by default, scoped, with the short name as alias', () => {
    assert.deepEqual(plan.networks.map((n) => [n.name, n.spec.Driver, (n.spec.Labels as Record<string, string>)['com.docker.stack.namespace']]), [['wp_backend', 'overlay', 'wp']]);
    assert.deepEqual(spec(db).TaskTemplate.Networks, [{ Target: 'wp_backend', Aliases: ['mysql', 'db'] }]);
    assert.deepEqual(spec(front).TaskTemplate.Networks, [{ Target: 'wp_backend', Aliases: ['wordpress'] }]);
  });

  test('deploy key: mode, placement, resources, policies, endpoint mode', () => {
    const f = spec(front);
    assert.deepEqual(f.Mode, { Replicated: { Replicas: 3 } });
    assert.deepEqual(spec(db).TaskTemplate.Placement, { Constraints: ['node.role == manager'] });
    assert.deepEqual(f.TaskTemplate.Placement, { MaxReplicas: 1 });
    assert.deepEqual(f.TaskTemplate.Resources, { Limits: { NanoCPUs: 5e8, MemoryBytes: 64 * 1024 * 1024 } });
    assert.deepEqual(f.TaskTemplate.RestartPolicy, { Condition: 'any', Delay: 2e9 });
    assert.deepEqual(f.UpdateConfig, { Parallelism: 1, Delay: 2e9, FailureAction: 'rollback', Monitor: 5e9, Order: 'stop-first' });
    assert.deepEqual(f.RollbackConfig, { Parallelism: 0, Order: 'stop-first' });
    assert.deepEqual(f.EndpointSpec, { Mode: 'dnsrr', Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8081, PublishMode: 'host' }] });
    assert.equal(f.TaskTemplate.ContainerSpec.StopGracePeriod, 5e9);
    assert.deepEqual(f.TaskTemplate.ContainerSpec.Healthcheck.Test, ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1/']);
  });

  test('interpolation, environment, volumes, secrets and configs', () => {
    const c = spec(front).TaskTemplate.ContainerSpec;
    assert.match(c.Args[2], /<h1>Lab on \$\(hostname\)<\/h1>/);
    assert.deepEqual(c.Env, ['WORDPRESS_DB_HOST=db:3306', 'WORDPRESS_DB_PASSWORD_FILE=/run/secrets/db_password']);
    assert.deepEqual(c.Configs, [{ File: { Name: '/etc/site.conf', UID: '0', GID: '0', Mode: 0o444 }, ConfigID: '', ConfigName: 'wp_site' }]);
    const d = spec(db).TaskTemplate.ContainerSpec;
    assert.deepEqual(d.Secrets, [{ File: { Name: 'db_password', UID: '0', GID: '0', Mode: 0o400 }, SecretID: '', SecretName: 'wp_db_password' }]);
    assert.deepEqual(d.Mounts, [{ Type: 'volume', Target: '/var/lib/db', Source: 'wp_db_data', VolumeOptions: { Labels: { 'com.docker.stack.namespace': 'wp' } } }]);
    assert.deepEqual(plan.secrets.map((s) => [s.name, s.file.endsWith('db_password.txt')]), [['wp_db_password', true]]);
    assert.deepEqual(plan.configs.map((s) => s.name), ['wp_site']);
  });

  test('the same files give the same hashes; a change gives another', () => {
    const again = planStack('wp', [wordpress], { SITE_TITLE: 'Lab' }).plan;
    assert.deepEqual(again.services.map((s) => s.hash), plan.services.map((s) => s.hash));
    const other = planStack('wp', [wordpress], { SITE_TITLE: 'Other' }).plan;
    assert.notEqual(other.services.find((s) => s.short === 'wordpress')!.hash, front.hash);
    assert.equal(other.services.find((s) => s.short === 'db')!.hash, db.hash);
  });

  test('lab warnings: nothing for this stack (host ports, dnsrr)', () => {
    assert.deepEqual(labWarnings(plan), []);
  });
});

describe('loading', () => {
  test('an invalid file names file, line, column and key, for every problem', () => {
    const got = problems(() => loadStack('bad', [join(FIX, 'invalid.yml')], { processEnv: {} }));
    assert.deepEqual(got, [
      '6:17: services.web.deploy.replicas: expected a number of replicas, got "three"',
      '7:7: services.web.deploy.placment: unknown key (expected one of: mode, replicas, labels, endpoint_mode, placement, resources, restart_policy, update_config, rollback_config); did you mean "placement"?',
      '12:12: services.db.image: required variable DB_IMAGE is missing a value: set DB_IMAGE to the database image',
    ]);
  });

  test('the error message starts with FILE:LINE:COL', () => {
    const file = join(FIX, 'invalid.yml');
    assert.throws(() => loadStack('bad', [file], { processEnv: {} }), (err: Error) => err.message.startsWith(`${file}:6:17: services.web.deploy.replicas: expected`));
  });

  test('ports: short syntax, ranges, long syntax; bad ones at their position', () => {
    const p = compose('services:\n  s:\n    image: x\n    ports:\n      - "8080:80"\n      - "53:53/udp"\n      - "9000-9001:9000-9001"\n      - 7000\n      - { target: 81, published: 8081, mode: host }\n');
    const { plan } = planStack('t', [p]);
    assert.deepEqual(spec(plan.services[0]!).EndpointSpec.Ports, [
      { Protocol: 'tcp', TargetPort: 7000, PublishMode: 'ingress' },
      { Protocol: 'udp', TargetPort: 53, PublishedPort: 53, PublishMode: 'ingress' },
      { Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' },
      { Protocol: 'tcp', TargetPort: 81, PublishedPort: 8081, PublishMode: 'host' },
      { Protocol: 'tcp', TargetPort: 9000, PublishedPort: 9000, PublishMode: 'ingress' },
      { Protocol: 'tcp', TargetPort: 9001, PublishedPort: 9001, PublishMode: 'ingress' },
    ]);
    assert.match(labWarnings(plan)[0]!, /publishes 7000|publishes .*8080.* in ingress mode: the lab kernel has no IPVS/);
    const bad = compose('services:\n  s:\n    image: x\n    ports:\n      - "80:80:80"\n');
    assert.deepEqual(problems(() => loadStack('t', [bad])), ['5:9: services.s.ports[0]: invalid port "80:80:80" (expected [[IP:]PUBLISHED:]TARGET[/PROTOCOL], e.g. "8080:80" or "53:53/udp")']);
  });

  test('a default network when a service names none; external objects referenced, not created', () => {
    const p = compose(
      'services:\n  a:\n    image: x\n    secrets: [ext]\n  b:\n    image: x\n    networks: [outside]\nnetworks:\n  outside:\n    external: true\n    name: shared-net\nsecrets:\n  ext:\n    external: true\n',
    );
    const { plan } = planStack('t', [p]);
    assert.deepEqual(plan.networks.map((n) => n.name), ['t_default']);
    assert.deepEqual(plan.externalNetworks, ['shared-net']);
    assert.deepEqual(plan.externalSecrets, ['ext']);
    assert.deepEqual(plan.secrets, []);
    assert.deepEqual(spec(plan.services[0]!).TaskTemplate.Networks, [{ Target: 't_default', Aliases: ['a'] }]);
    assert.deepEqual(spec(plan.services[1]!).TaskTemplate.Networks, [{ Target: 'shared-net', Aliases: ['b'] }]);
    assert.equal(spec(plan.services[0]!).TaskTemplate.ContainerSpec.Secrets[0].SecretName, 'ext');
  });

  test('undefined references, a missing secret file and dnsrr with ingress ports are errors at their keys', () => {
    const p = compose(
      'services:\n  a:\n    image: x\n    networks: [nope]\n    volumes: ["data:/d"]\n    secrets: [s]\n    ports: ["80:80"]\n    deploy:\n      endpoint_mode: dnsrr\nsecrets:\n  s:\n    file: ./missing.txt\n',
    );
    const got = problems(() => loadStack('t', [p]));
    assert.equal(got.length, 1);
    assert.match(got[0]!, /^12:11: secrets\.s\.file: file not found: .*missing\.txt$/);
    const q = compose('services:\n  a:\n    image: x\n    networks: [nope]\n    volumes: ["data:/d"]\n    ports: ["80:80"]\n    deploy:\n      endpoint_mode: dnsrr\n');
    assert.deepEqual(problems(() => loadStack('t', [q])), [
      '4:16: services.a.networks[0]: undefined network "nope" (declare it under the top-level networks:)',
      '5:15: services.a.volumes[0]: undefined volume "data" (declare it under the top-level volumes:)',
      '8:22: services.a.deploy.endpoint_mode: endpoint_mode dnsrr cannot be used with ports published in ingress mode: publish them with mode: host',
    ]);
  });

  test('several files merge in order; ignored keys warn as the docker CLI does', () => {
    const { loaded, plan } = planStack('m', [wordpress, join(FIX, 'override.yml')]);
    assert.deepEqual(plan.services.map((s) => s.short), ['cache', 'db', 'wordpress']);
    const f = spec(plan.services.find((s) => s.short === 'wordpress')!);
    assert.deepEqual(f.Mode, { Replicated: { Replicas: 2 } });
    assert.deepEqual(f.TaskTemplate.ContainerSpec.Env, ['EXTRA=1', 'WORDPRESS_DB_HOST=db:3306', 'WORDPRESS_DB_PASSWORD_FILE=/run/secrets/db_password']);
    const cache = spec(plan.services.find((s) => s.short === 'cache')!);
    assert.deepEqual(cache.TaskTemplate.ContainerSpec.Args, ['sleep', '3600']);
    assert.deepEqual(cache.TaskTemplate.RestartPolicy, { Condition: 'any' });
    assert.equal(loaded.warnings.length, 2);
    assert.match(loaded.warnings[0]!, /^Ignoring unsupported option build \(service cache\)/);
    assert.match(loaded.warnings[1]!, /^Ignoring unsupported option restart \(service cache\)/);
    assert.match(labWarnings(plan).join('\n'), /m_cache use endpoint_mode vip/);
  });

  test('an override file without image is fine; a service without one after merging is not', () => {
    const base = compose('services:\n  a:\n    image: x\n');
    const over = compose('services:\n  a:\n    environment: [A=1]\n  b:\n    command: ["true"]\n');
    assert.deepEqual(problems(() => loadStack('t', [base, over])), ['4:3: services.b.image: missing (expected an image reference: swarm services cannot be built)']);
  });

  test('.env < process environment < the stack variables; unset variables warn', () => {
    const p = compose('services:\n  a:\n    image: ${IMG}\n    environment:\n      - FROM_DOTENV=${D}\n      - PASS\n      - MISSING=${NOT_SET}\n', { '.env': 'IMG=from-dotenv\nD=dot\n# comment\n' });
    const a = loadStack('t', [p], { processEnv: { IMG: 'from-process', PASS: 'through' } });
    assert.equal(a.project.services.a!.image, 'from-process');
    assert.deepEqual(a.project.services.a!.environment, { FROM_DOTENV: 'dot', PASS: 'through', MISSING: '' });
    assert.deepEqual(a.warnings, ['The "NOT_SET" variable is not set. Defaulting to a blank string.']);
    const b = loadStack('t', [p], { processEnv: { IMG: 'from-process' }, env: { IMG: 'from-stack' } });
    assert.equal(b.project.services.a!.image, 'from-stack');
  });

  test('YAML errors, duplicate keys and an unsupported version', () => {
    assert.deepEqual(problems(() => loadStack('t', [compose('services:\n  a:\n    image: x\n    image: y\n')])), ['4:5: services.a.image: duplicate key (first defined on line 3)']);
    assert.deepEqual(problems(() => loadStack('t', [compose('version: "2.4"\nservices:\n  a:\n    image: x\n')])), [
      '1:10: version: unsupported Compose file version "2.4": docker stack deploy reads version 3.x',
    ]);
    assert.throws(() => loadStack('Bad Name!', [wordpress]), /invalid stack name/);
  });
});

/** A fake engine holding objects in memory: enough of dockerode for deployStack. */
function fakeEngine() {
  const calls: string[] = [];
  const state = {
    services: [] as { ID: string; Version: { Index: number }; Spec: Record<string, unknown> & { Name: string; Labels?: Record<string, string> } }[],
    secrets: [] as { ID: string; Version: { Index: number }; Spec: { Name: string; Labels?: Record<string, string>; Data?: string } }[],
    configs: [] as { ID: string; Version: { Index: number }; Spec: { Name: string; Labels?: Record<string, string>; Data?: string } }[],
    networks: [] as { Id: string; Name: string; Scope: string }[],
  };
  let n = 0;
  const engine = {
    swarmInspect: async () => ({ ID: 'swarm-id' }),
    listNetworks: async () => state.networks,
    listSecrets: async () => state.secrets.map((s) => ({ ...s, Spec: { Name: s.Spec.Name, Labels: s.Spec.Labels } })),
    listConfigs: async () => state.configs,
    listServices: async () => state.services,
    createSecret: async (spec: { Name: string; Labels: Record<string, string>; Data: string }) => {
      calls.push(`create secret ${spec.Name}`);
      state.secrets.push({ ID: `s${++n}`, Version: { Index: 1 }, Spec: spec });
      return { id: `s${n}` };
    },
    createConfig: async (spec: { Name: string; Labels: Record<string, string>; Data: string }) => {
      calls.push(`create config ${spec.Name}`);
      state.configs.push({ ID: `c${++n}`, Version: { Index: 1 }, Spec: spec });
      return { id: `c${n}` };
    },
    createNetwork: async (spec: { Name: string }) => {
      calls.push(`create network ${spec.Name}`);
      state.networks.push({ Id: `n${++n}`, Name: spec.Name, Scope: 'swarm' });
    },
    createService: async (spec: { Name: string }) => {
      calls.push(`create service ${spec.Name}`);
      state.services.push({ ID: `v${++n}`, Version: { Index: 1 }, Spec: spec as never });
    },
    getService: (id: string) => ({
      update: async (opts: { _body: { Name: string } }) => {
        calls.push(`update service ${opts._body.Name}`);
        const s = state.services.find((x) => x.ID === id)!;
        s.Spec = opts._body as never;
        s.Version.Index++;
      },
      remove: async () => calls.push(`remove service ${id}`),
    }),
  };
  return { engine: engine as unknown as Docker, calls, state };
}

describe('deployStack against a fake engine', () => {
  test('creates secrets, configs, networks, services; an unchanged redeploy changes nothing; a changed secret fails before any change', async () => {
    const { engine, calls, state } = fakeEngine();
    const events = new EventBus();
    const { plan } = planStack('wp', [wordpress]);
    const r = await deployStack(engine, plan, { events });
    assert.deepEqual(calls, ['create secret wp_db_password', 'create config wp_site', 'create network wp_backend', 'create service wp_db', 'create service wp_wordpress']);
    assert.deepEqual([r.created.length, r.updated.length, r.unchanged.length], [2, 0, 0]);
    // Secret IDs are filled in from the created objects.
    const db = state.services.find((s) => s.Spec.Name === 'wp_db')!.Spec as unknown as { TaskTemplate: { ContainerSpec: { Secrets: { SecretID: string }[] } } };
    assert.equal(db.TaskTemplate.ContainerSpec.Secrets[0]!.SecretID, state.secrets[0]!.ID);
    // The secret's content is labelled with a keyed hash, never stored in clear outside the engine's Data.
    assert.match(state.secrets[0]!.Spec.Labels!['swarmform.content-hash']!, /^[0-9a-f]{32}$/);

    calls.length = 0;
    const again = await deployStack(engine, planStack('wp', [wordpress]).plan, { events });
    assert.deepEqual(calls, []);
    assert.deepEqual(again.unchanged, ['wp_db', 'wp_wordpress']);

    const changed = planStack('wp', [wordpress], { SITE_TITLE: 'New' }).plan;
    await deployStack(engine, changed, { events });
    assert.deepEqual(calls, ['update service wp_wordpress']);

    calls.length = 0;
    const dir = tempDir('compose-secret-');
    const text = (await import('node:fs')).readFileSync(wordpress, 'utf8');
    writeFileSync(join(dir, 'wordpress.yml'), text.replace('replicas: 3', 'replicas: 4'));
    writeFileSync(join(dir, 'db_password.txt'), 'another');
    writeFileSync(join(dir, 'site.conf'), (await import('node:fs')).readFileSync(join(FIX, 'site.conf')));
    await assert.rejects(deployStack(engine, planStack('wp', [join(dir, 'wordpress.yml')]).plan, { events }), /secret wp_db_password already exists with different content/);
    assert.deepEqual(calls, [], 'nothing changed');
  });

  test('a missing external network is an error before any change', async () => {
    const { engine, calls } = fakeEngine();
    const p = compose('services:\n  a:\n    image: x\n    networks: [n]\nnetworks:\n  n:\n    external: true\n');
    await assert.rejects(deployStack(engine, planStack('t', [p]).plan, { events: new EventBus() }), /network "n" is declared as external, but could not be found/);
    assert.deepEqual(calls, []);
  });
});
