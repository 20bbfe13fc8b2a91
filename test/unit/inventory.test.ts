import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { InventoryError, UsageError, type InventoryProblem } from '../../src/base/errors.js';
import { loadInventory, parseInventory } from '../../src/inventory/load-inventory.js';
import { NameRangeError, expandNameRange, hostnameProblem, parseNameRange } from '../../src/inventory/name-range.js';
import type { ProviderRegistry } from '../../src/inventory/provider-registry.js';
import { labHostLimit } from '../../src/providers/lab/settings.js';
import { ShellWordsError, splitShellWords } from '../../src/inventory/shell-words.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURES = path.join(ROOT, 'test/fixtures/inventory');
const FILE = path.join(FIXTURES, 'test.yml');

const providers: ProviderRegistry = {
  lab: { schemas: { settings: z.object({ subnet: z.string().default('198.18.0.0/24') }).strict() }, hostLimit: labHostLimit },
  ssh: { schemas: {} },
  // A provider with required settings and typed options, to check that provider schemas are applied with positions.
  cloud: {
    schemas: {
      settings: z.object({ region: z.string(), batch: z.number().int().positive().default(10) }).strict(),
      options: z.object({ size: z.enum(['small', 'large']).default('small'), disk: z.number().int().positive().optional() }).strict(),
    },
  },
};

const ENV = { HOME: '/home/tester', ZONE: 'eu-1', WORKERS: '4' };

/** Inventory text from lines, so positions in the assertions are easy to count. */
const lines = (...ls: string[]) => `${ls.join('\n')}\n`;

function load(text: string, env: NodeJS.ProcessEnv = ENV) {
  return parseInventory(text, FILE, { providers, env });
}

function problemsOf(text: string, env: NodeJS.ProcessEnv = ENV): InventoryProblem[] {
  try {
    load(text, env);
  } catch (err) {
    assert.ok(err instanceof InventoryError, `expected InventoryError, got ${String(err)}`);
    assert.ok(err instanceof UsageError, 'InventoryError is a UsageError (exit code 2)');
    for (const p of err.problems) assert.equal(p.file, FILE);
    return err.problems;
  }
  assert.fail('expected the inventory to be rejected');
}

/** 1-based column of `needle` on line `line` of `text`. */
function columnOf(text: string, line: number, needle: string): number {
  const index = text.split('\n')[line - 1]?.indexOf(needle) ?? -1;
  assert.ok(index >= 0, `"${needle}" is not on line ${line}`);
  return index + 1;
}

/**
 * The only problem of `text`, checked against position, key and message. `column` is a number, or text on that
 * line whose first character is the expected column.
 */
function assertProblem(text: string, want: { line: number; column: number | string; key: string; message: string | RegExp }) {
  const problems = problemsOf(text);
  assert.equal(problems.length, 1, `expected one problem, got:\n${problems.map(show).join('\n')}`);
  const [p] = problems;
  const column = typeof want.column === 'string' ? columnOf(text, want.line, want.column) : want.column;
  assert.deepEqual({ line: p.line, column: p.column, key: p.key }, { line: want.line, column, key: want.key }, show(p));
  if (typeof want.message === 'string') assert.equal(p.message, want.message);
  else assert.match(p.message, want.message);
}

const show = (p: InventoryProblem) => `${p.line}:${p.column}: ${p.key}: ${p.message}`;

const MINIMAL = lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1 }');

describe('name ranges', () => {
  it('expands numeric ranges, inclusive', () => {
    assert.deepEqual(expandNameRange(parseNameRange('mgr-[1:3]')!), ['mgr-1', 'mgr-2', 'mgr-3']);
    assert.deepEqual(expandNameRange(parseNameRange('n[8:11]x')!), ['n8x', 'n9x', 'n10x', 'n11x']);
  });

  it('keeps zero padding of the start', () => {
    const names = expandNameRange(parseNameRange('worker-[001:100]')!);
    assert.equal(names.length, 100);
    assert.deepEqual([names[0], names[9], names[99]], ['worker-001', 'worker-010', 'worker-100']);
    assert.deepEqual(expandNameRange(parseNameRange('w[0:2]')!), ['w0', 'w1', 'w2']);
  });

  it('expands letter ranges', () => {
    assert.deepEqual(expandNameRange(parseNameRange('db-[a:f]')!), ['db-a', 'db-b', 'db-c', 'db-d', 'db-e', 'db-f']);
  });

  it('returns null for a name without range', () => {
    assert.equal(parseNameRange('db'), null);
  });

  it('rejects bad ranges with a reason', () => {
    const cases: [string, RegExp][] = [
      ['w-[5:1]', /counts down/],
      ['w-[01:100]', /same width/],
      ['w-[1:3]-[1:2]', /only one range/],
      ['w-[a:5]', /expected a range like/],
      ['w-[1:]', /expected a range like/],
      ['w-[1-3]', /expected a range like/],
      ['w-]1:3[', /"\[" before "\]"/],
      ['w-[1:3', /only one range|"\[" before/],
      ['w-[1:1000000]', /more than the 100000 allowed/],
    ];
    for (const [name, why] of cases) {
      assert.throws(() => parseNameRange(name), (err: unknown) => err instanceof NameRangeError && why.test(err.message), name);
    }
  });

  it('checks host names', () => {
    assert.equal(hostnameProblem('worker-1'), undefined);
    assert.equal(hostnameProblem('9lives'), undefined);
    assert.match(hostnameProblem('Worker-1')!, /not a valid host name/);
    assert.match(hostnameProblem('-w')!, /not a valid host name/);
    assert.match(hostnameProblem('w_1')!, /not a valid host name/);
    assert.match(hostnameProblem('a'.repeat(64))!, /longer than 63/);
  });
});

describe('shell words', () => {
  it('splits like a shell', () => {
    assert.deepEqual(splitShellWords('httpd -f -p 80'), ['httpd', '-f', '-p', '80']);
    assert.deepEqual(splitShellWords(`  echo "hello world"   'a b'  `), ['echo', 'hello world', 'a b']);
    assert.deepEqual(splitShellWords(`sh -c 'echo "$HOME" | wc -c'`), ['sh', '-c', 'echo "$HOME" | wc -c']);
    assert.deepEqual(splitShellWords(`a\\ b "c\\"d" 'e\\f' x""y ''`), ['a b', 'c"d', 'e\\f', 'xy', '']);
    assert.deepEqual(splitShellWords('one \\\ntwo\tthree\nfour'), ['one', 'two', 'three', 'four']);
    assert.deepEqual(splitShellWords(''), []);
    assert.deepEqual(splitShellWords(`"\\$5"`), ['$5']);
  });

  it('refuses what needs a shell or is unterminated', () => {
    for (const bad of [`echo 'hi`, `echo "hi`, 'echo \\', 'a && b', 'a | b', 'echo $HOME', 'a > f', 'echo `id`', 'echo "$(id)"']) {
      assert.throws(() => splitShellWords(bad), ShellWordsError, bad);
    }
  });
});

describe('groups to hosts', () => {
  it('expands count, name ranges and explicit hosts in file order', () => {
    const inv = load(
      lines(
        'cluster: lab',
        'groups:',
        '  managers: { role: manager, name: "mgr-[1:3]" }',
        '  workers: { role: worker, count: 2 }',
        '  web: { role: worker, name: web, count: 2 }',
        '  db: { role: worker, name: "db-[a:b]" }',
        '  edge:',
        '    role: worker',
        '    hosts:',
        '      - name: edge-1',
        '      - name: edge-2',
      ),
    );
    assert.deepEqual(
      inv.hosts.map((h) => `${h.group}/${h.name}/${h.role}`),
      [
        'managers/mgr-1/manager',
        'managers/mgr-2/manager',
        'managers/mgr-3/manager',
        'workers/workers-1/worker',
        'workers/workers-2/worker',
        'web/web-1/worker',
        'web/web-2/worker',
        'db/db-a/worker',
        'db/db-b/worker',
        'edge/edge-1/worker',
        'edge/edge-2/worker',
      ],
    );
  });

  it('keeps file order for group names JavaScript would reorder', () => {
    const inv = load(lines('cluster: lab', 'groups:', '  b: { role: manager, count: 1 }', '  "2": { role: worker, count: 1 }'));
    assert.deepEqual(inv.hosts.map((h) => h.name), ['b-1', '2-1']);
  });

  it('merges ssh cluster -> group -> host and applies defaults', () => {
    const inv = load(
      lines(
        'cluster: lab',
        'provider: ssh',
        'ssh: { user: admin, key: ~/.ssh/id_ed25519, connectTimeout: 30 }',
        'groups:',
        '  managers:',
        '    role: manager',
        '    ssh: { port: 2200, key: keys/group }',
        '    hosts:',
        '      - { name: m-1, address: 203.0.113.1 }',
        '      - { name: m-2, address: 203.0.113.2, privateAddress: 10.0.0.2, ssh: { user: ops, port: 2222 } }',
        '  plain:',
        '    role: worker',
        '    hosts: [{ name: p-1, address: p1.example.com }]',
      ),
    );
    const [m1, m2, p1] = inv.hosts;
    assert.deepEqual(m1.ssh, { user: 'admin', port: 2200, key: path.join(FIXTURES, 'keys/group'), connectTimeout: 30 });
    assert.deepEqual(m2.ssh, { user: 'ops', port: 2222, key: path.join(FIXTURES, 'keys/group'), connectTimeout: 30 });
    // The port no level wrote stays marked as swarmform's default, so the OpenSSH config (~/.ssh/config) may set it.
    assert.deepEqual(p1.ssh, { user: 'admin', port: 22, key: path.join(os.homedir(), '.ssh/id_ed25519'), connectTimeout: 30, defaults: ['port'] });
    assert.equal(m1.address, '203.0.113.1');
    assert.equal(m1.privateAddress, undefined);
    assert.equal(m2.privateAddress, '10.0.0.2');
    assert.equal(p1.address, 'p1.example.com');

    const defaults = load(MINIMAL).hosts[0].ssh;
    assert.deepEqual(defaults, { user: 'root', port: 22, connectTimeout: 120, defaults: ['user', 'port'] });
    assert.ok(!('key' in defaults), 'no key unless one is given');
  });

  it('merges labels group -> host, coercing numbers and booleans to strings', () => {
    const inv = load(
      lines(
        'cluster: lab',
        'groups:',
        '  managers: { role: manager, count: 2, labels: { zone: a, rack: 7, ssd: true } }',
        '  workers:',
        '    role: worker',
        '    labels: { zone: a, tier: app }',
        '    hosts:',
        '      - { name: w-1, labels: { zone: b, gpu: "yes" } }',
        '      - { name: w-2 }',
      ),
    );
    assert.deepEqual(inv.hosts[0].labels, { zone: 'a', rack: '7', ssd: 'true' });
    assert.notEqual(inv.hosts[0].labels, inv.hosts[1].labels, 'each host has its own labels object');
    assert.deepEqual(inv.hosts[2].labels, { zone: 'b', tier: 'app', gpu: 'yes' });
    assert.deepEqual(inv.hosts[3].labels, { zone: 'a', tier: 'app' });
  });

  it('applies provider defaults to settings and options, with an entry per used provider', () => {
    const inv = load(
      lines(
        'cluster: lab',
        'providers:',
        '  cloud: { region: eu-west-1 }',
        'groups:',
        '  managers: { role: manager, count: 1 }',
        '  big: { role: worker, count: 1, provider: cloud, options: { size: large } }',
        '  small:',
        '    role: worker',
        '    provider: cloud',
        '    options: { disk: 20 }',
        '    hosts: [{ name: s-1 }, { name: s-2, options: { size: large } }]',
        '  metal: { role: worker, provider: ssh, hosts: [{ name: m-1, address: 203.0.113.9 }] }',
      ),
    );
    assert.deepEqual(inv.providers, { cloud: { region: 'eu-west-1', batch: 10 }, lab: { subnet: '198.18.0.0/24' }, ssh: {} });
    const byName = Object.fromEntries(inv.hosts.map((h) => [h.name, h]));
    assert.equal(byName['managers-1'].provider, 'lab');
    assert.deepEqual(byName['big-1'].options, { size: 'large' });
    assert.deepEqual(byName['s-1'].options, { size: 'small', disk: 20 });
    assert.deepEqual(byName['s-2'].options, { size: 'large', disk: 20 });
    assert.deepEqual(byName['m-1'].options, {});
    assert.equal(byName['m-1'].provider, 'ssh');
  });

  it('supports anchors and merge keys, with x- keys to hold them', () => {
    const text = lines(
      'cluster: lab',
      'x-worker: &worker { role: worker, labels: { tier: app }, ssh: { user: ops } }',
      'groups:',
      '  managers: { role: manager, count: 1 }',
      '  workers:',
      '    <<: *worker',
      '    count: 2',
    );
    const inv = load(text);
    assert.deepEqual(inv.hosts.slice(1).map((h) => [h.name, h.role, h.labels.tier, h.ssh.user]), [
      ['workers-1', 'worker', 'app', 'ops'],
      ['workers-2', 'worker', 'app', 'ops'],
    ]);
    // A problem in merged content points at where it is written: the anchor.
    assertProblem(text.replace('role: worker', 'role: wroker'), {
      line: 2,
      column: 'wroker',
      key: 'groups.workers.role',
      message: 'expected "manager" or "worker", got "wroker"',
    });
  });

  it('resolves swarm settings and their defaults', () => {
    assert.deepEqual(load(MINIMAL).swarm, {
      advertise: { kind: 'private' },
      joinConcurrency: 12,
      maxHosts: 100000,
      bootstrapConcurrency: 32,
      joinPacing: 'adaptive',
      install: 'auto',
      firewall: true,
      drainManagers: false,
      ingress: true,
      daemon: {},
      autolock: false,
      profile: 'default',
    });
    const inv = load(
      lines(
        'cluster: lab',
        'swarm: { advertise: 10.0.0.0/8, joinConcurrency: 50, joinPacing: fixed, ingress: false, install: bundle, firewall: false, drainManagers: true, daemon: { debug: true },',
        '  autolock: true, profile: large, raft: { snapshotInterval: 5000, keepOldSnapshots: 2, electionTick: 20 },',
        '  dispatcher: { heartbeatPeriod: 20 }, certExpiryHours: 720, taskHistoryLimit: 2 }',
        'groups:',
        '  managers: { role: manager, count: 1 }',
      ),
    );
    assert.deepEqual(inv.swarm, {
      advertise: { kind: 'cidr', cidr: '10.0.0.0/8' },
      joinConcurrency: 50,
      maxHosts: 100000,
      bootstrapConcurrency: 32,
      joinPacing: 'fixed',
      install: 'bundle',
      firewall: false,
      drainManagers: true,
      ingress: false,
      daemon: { debug: true },
      autolock: true,
      profile: 'large',
      raft: { snapshotInterval: 5000, keepOldSnapshots: 2, electionTick: 20 },
      dispatcher: { heartbeatPeriod: 20 },
      certExpiryHours: 720,
      taskHistoryLimit: 2,
    });
    assert.deepEqual(load(lines('cluster: lab', 'swarm: { advertise: public }', 'groups:', '  m: { role: manager, count: 1 }')).swarm.advertise, {
      kind: 'public',
    });
  });

  it('loads a 4,700-host range quickly', () => {
    const text = lines(
      'cluster: swarm3k',
      'providers: { lab: { subnet: 198.18.0.0/19 } }',
      'groups:',
      '  managers: { role: manager, name: "mgr-[1:3]", labels: { tier: control } }',
      '  workers: { role: worker, name: "worker-[0001:4700]", labels: { tier: app }, ssh: { user: ops } }',
    );
    load(text); // warm up module-level work (zod, nunjucks)
    const started = performance.now();
    const inv = load(text);
    const elapsed = performance.now() - started;
    assert.equal(inv.hosts.length, 4703);
    assert.equal(inv.hosts[3].name, 'worker-0001');
    assert.equal(inv.hosts[4702].name, 'worker-4700');
    assert.deepEqual(inv.hosts[4702].labels, { tier: 'app' });
    assert.equal(inv.hosts[4702].ssh.user, 'ops');
    assert.ok(elapsed < 500, `took ${elapsed.toFixed(0)} ms`);
  });
});

describe('host limits, checked on counts before expansion', () => {
  const big = (subnet: string | undefined, workers: string) =>
    lines(
      'cluster: big',
      ...(subnet === undefined ? [] : ['providers:', '  lab:', `    subnet: ${subnet}`]),
      'groups:',
      '  managers: { role: manager, count: 1 }',
      '  workers:',
      '    role: worker',
      `    ${workers}`,
    );

  it('worker-[1:99999] on a lab /24 is one problem at the name key, with the count and the capacity, at once', () => {
    const text = big('198.18.0.0/24', 'name: worker-[1:99999]');
    const started = performance.now();
    let error: InventoryError | undefined;
    try {
      load(text);
    } catch (err) {
      error = err as InventoryError;
    }
    const elapsed = performance.now() - started;
    console.log(`worker-[1:99999] on a /24 rejected in ${elapsed.toFixed(1)} ms`);
    assert.ok(error instanceof InventoryError, 'rejected');
    assert.equal(error.exitCode, 2);
    assert.equal(error.problems.length, 1, error.message);
    const [p] = error.problems;
    assert.deepEqual({ file: p.file, line: p.line, column: p.column, key: p.key }, { file: FILE, line: 9, column: columnOf(text, 9, 'worker-['), key: 'groups.workers.name' });
    assert.match(p.message, /^worker-\[1:99999\] makes 99999 lab hosts, 100000 with the other lab groups \(workers 99999, managers 1\)/);
    assert.match(p.message, /providers\.lab\.subnet 198\.18\.0\.0\/24 holds 253 \(256 addresses less the network, the bridge's \.1 and the broadcast\)/);
    assert.match(p.message, /set providers\.lab\.subnet to a \/15 inside 198\.18\.0\.0\/15/);
    assert.ok(error.message.startsWith(`${FILE}:9:${p.column}: groups.workers.name: worker-[1:99999] makes 99999 lab hosts`), error.message);
  });

  it('names the default subnet, a count key and the subnet that would fit', () => {
    assertProblem(big(undefined, 'count: 300'), {
      line: 6,
      column: '300',
      key: 'groups.workers.count',
      message:
        'count: 300 makes 300 lab hosts, 301 with the other lab groups (workers 300, managers 1), but providers.lab.subnet 198.18.0.0/24 ' +
        "(the default) holds 253 (256 addresses less the network, the bridge's .1 and the broadcast): set providers.lab.subnet to a /23 " +
        'or larger inside 198.18.0.0/15 (e.g. 198.18.0.0/23), or use fewer hosts',
    });
  });

  it('a range that fits the subnet still loads, up to the last address', () => {
    assert.equal(load(big('198.18.0.0/24', 'name: worker-[1:252]')).hosts.length, 253);
    assertProblem(big('198.18.0.0/24', 'name: worker-[1:253]'), { line: 9, column: 'worker-[', key: 'groups.workers.name', message: /makes 253 lab hosts, 254 with/ });
    const inv = load(big('198.18.0.0/20', 'name: "worker-[0001:4000]"'));
    assert.equal(inv.hosts.length, 4001);
    assert.equal(inv.hosts[4000].name, 'worker-4000');
  });

  it('only lab groups count against the lab subnet', () => {
    const text = lines('cluster: mixed', 'groups:', '  managers: { role: manager, count: 1 }', '  metal: { role: worker, provider: ssh, name: "m-[1:5000]" }');
    assert.equal(load(text).hosts.length, 5001);
  });

  it('all groups together may have at most MAX_HOSTS (100000) hosts', () => {
    const text = lines(
      'cluster: huge',
      'provider: ssh',
      'groups:',
      '  managers: { role: manager, count: 3 }',
      '  a: { role: worker, name: "a-[1:60000]" }',
      '  b: { role: worker, count: 50000 }',
    );
    const started = performance.now();
    assertProblem(text, {
      line: 5,
      column: '"a-',
      key: 'groups.a.name',
      message:
        'a-[1:60000] makes 60000 hosts, 110003 with the other groups (a 60000, b 50000, managers 3): more than the 100000 one inventory ' +
        'may have (swarm.maxHosts); raise swarm.maxHosts (up to 1000000) or split the cluster into several inventories',
    });
    // The user may raise the limit: the same groups then load.
    assert.equal(load(`${text}swarm: { maxHosts: 120000 }\n`).hosts.length, 110_003);
    console.log(`110003 hosts rejected in ${(performance.now() - started).toFixed(1)} ms`);
    // Exactly the limit loads, and expanding it stays well inside what a signal may wait for.
    const full = lines('cluster: huge', 'provider: ssh', 'groups:', '  managers: { role: manager, count: 3 }', '  a: { role: worker, name: "a-[1:99997]" }');
    const t0 = performance.now();
    assert.equal(load(full).hosts.length, 100_000);
    const ms = performance.now() - t0;
    console.log(`100000 hosts expanded in ${ms.toFixed(0)} ms`);
    assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
  });

  it('a group over the per-range limit is still reported at its own key', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1 }', '  w: { role: worker, count: 100001 }'), {
      line: 4,
      column: '100001',
      key: 'groups.w.count',
      message: 'expected at most 100000 hosts in a group, got 100001',
    });
  });

  it('the real lab provider: 99,999 workers on a /24 fail at the name key', async () => {
    const { providers: real } = await import('../../src/providers/registry.js');
    const text = big('198.18.0.0/24', 'name: worker-[1:99999]');
    assert.throws(
      () => parseInventory(text, FILE, { providers: real, env: {} }),
      (err: unknown) =>
        err instanceof InventoryError && err.problems.length === 1 && err.problems[0].key === 'groups.workers.name' && /holds 253/.test(err.message),
    );
  });
});

describe('workloads and images', () => {
  it('resolves services with defaults and both port syntaxes', () => {
    const inv = load(
      lines(
        'cluster: lab',
        'groups:',
        '  managers: { role: manager, count: 1 }',
        'workloads:',
        '  services:',
        '    - name: web',
        '      image: nginx:1.27',
        '      command: httpd -f -p "80"',
        '      args: [-v, 3]',
        '      env: [A=1, B=x=y]',
        '      ports: ["8080:80", "53/udp", 9000, { published: 8081, target: 80, mode: host }, { target: 81, protocol: udp }]',
        '      labels: { team: web }',
        '    - name: agent',
        '      image: alpine',
        '      mode: global',
        '      env: { LEVEL: 3 }',
        '      constraints: ["node.labels.zone != a"]',
      ),
    );
    assert.deepEqual(inv.services, [
      {
        name: 'web',
        image: 'nginx:1.27',
        mode: 'replicated',
        replicas: 1,
        command: ['httpd', '-f', '-p', '80'],
        args: ['-v', '3'],
        env: { A: '1', B: 'x=y' },
        ports: [
          { published: 8080, target: 80, protocol: 'tcp', mode: 'ingress' },
          { published: 0, target: 53, protocol: 'udp', mode: 'ingress' },
          { published: 0, target: 9000, protocol: 'tcp', mode: 'ingress' },
          { published: 8081, target: 80, protocol: 'tcp', mode: 'host' },
          { published: 0, target: 81, protocol: 'udp', mode: 'ingress' },
        ],
        constraints: [],
        labels: { team: 'web' },
      },
      {
        name: 'agent',
        image: 'alpine',
        mode: 'global',
        replicas: 0,
        env: { LEVEL: '3' },
        ports: [],
        constraints: ['node.labels.zone != a'],
        labels: {},
      },
    ]);
  });

  it('allows one published port in host and ingress mode at once', () => {
    const inv = load(
      lines(
        'cluster: lab',
        'groups:',
        '  managers: { role: manager, count: 1 }',
        'workloads:',
        '  services:',
        '    - { name: a, image: x, ports: ["8080:80"] }',
        '    - { name: b, image: x, ports: [{ published: 8080, target: 80, mode: host }] }',
        '    - { name: c, image: x, ports: [{ published: 8080, target: 80, mode: host }] }',
      ),
    );
    assert.equal(inv.services.length, 3);
  });

  it('resolves image files against the inventory directory', async () => {
    const inv = await loadInventory(path.join(FIXTURES, 'with-images.yml'), { providers });
    assert.equal(inv.file, path.join(FIXTURES, 'with-images.yml'));
    assert.deepEqual(inv.images, [
      { file: path.join(FIXTURES, 'images/app.tar'), kind: 'load' },
      { file: path.join(FIXTURES, 'rootfs.tar'), kind: 'import', tag: 'myorg/base:1' },
    ]);
  });
});

describe('templates', () => {
  it('renders env variables and loops before parsing', () => {
    const inv = load(
      lines(
        'cluster: lab',
        'ssh: { key: "{{ env.HOME }}/.ssh/lab" }',
        'groups:',
        '  managers: { role: manager, count: 1, labels: { zone: "{{ env.ZONE }}", unset: "x{{ env.NOT_SET }}" } }',
        '  workers:',
        '    role: worker',
        '    hosts:',
        '{% for i in range(1, env.WORKERS | int + 1) %}',
        '      - name: w-{{ i }}',
        '        labels: { n: "{{ i * 10 }}" }',
        '{% endfor %}',
      ),
    );
    assert.equal(inv.hosts[0].ssh.key, '/home/tester/.ssh/lab');
    assert.deepEqual(inv.hosts[0].labels, { zone: 'eu-1', unset: 'x' });
    assert.deepEqual(
      inv.hosts.slice(1).map((h) => `${h.name}:${h.labels.n}`),
      ['w-1:10', 'w-2:20', 'w-3:30', 'w-4:40'],
    );
  });

  it('uses process.env when no env is given', () => {
    const inv = parseInventory(lines('cluster: lab', 'groups:', '  m: { role: manager, count: 1, labels: { p: "{{ env.PATH }}" } }'), FILE, {
      providers,
    });
    assert.equal(inv.hosts[0].labels.p, process.env.PATH);
  });

  it('points at the rendered line when the template changed it', () => {
    const problems = problemsOf(
      lines(
        'cluster: lab',
        'groups:',
        '  managers: { role: manager, count: 1 }',
        '  workers:',
        '    role: worker',
        '    hosts:',
        '{% for i in [1, 2] %}',
        '      - { name: w-{{ i }}, labels: { n: {{ i }} }, cuont: 1 }',
        '{% endfor %}',
      ),
    );
    assert.deepEqual(
      problems.map((p) => `${p.line}:${p.column}:${p.key}`),
      // Positions are in the rendered text: "      - { name: w-1, labels: { n: 1 }, cuont: 1 }"
      ['8:40:groups.workers.hosts[0].cuont', '10:40:groups.workers.hosts[1].cuont'],
    );
    assert.match(problems[0].message, /^unknown key \(expected one of: name, address, privateAddress, labels, ssh, options\) \(line 8 of the rendered inventory: "- \{ name: w-1, labels: \{ n: 1 \}, cuont: 1 \}"\)$/);
  });

  it('reports a template syntax error with its position', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  m: { role: manager, count: {{ 1 + }} }'), {
      line: 3,
      column: '}} }',
      key: '',
      message: 'template error: unexpected token: }}',
    });
  });

  it('points at a block the template never closes', () => {
    assertProblem(lines('cluster: lab', 'groups:', '{% for i in [1] %}', '  m{{ i }}: { role: manager, count: 1 }'), {
      line: 3,
      column: 1,
      key: '',
      message: 'template error: {% for %} is not closed: add {% endfor %}',
    });
  });

  it('reports errors raised while rendering with their position', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  m: { role: manager, count: {{ nothing() }} }'), {
      line: 3,
      column: '()',
      key: '',
      message: /Unable to call `nothing`/,
    });
    assertProblem(lines('cluster: lab', 'x: {{ 1 | nofilter }}'), { line: 2, column: '| nofilter', key: '', message: 'template error: filter not found: nofilter' });
  });

  it('caps what rendering may build: loops through range(), padding widths, the rendered size, the source size', () => {
    // Nested loops of 10^4 x 10^4 once built a text that killed node with a fatal "invalid size" (exit 132).
    const loops = problemsOf(lines('cluster: lab', 'x: |', '  {% for i in range(10000) %}{% for j in range(10000) %}xxxxxxxxxx{% endfor %}{% endfor %}'));
    assert.equal(loops.length, 1, loops.map(show).join('\n'));
    assert.equal(loops[0].line, 3, show(loops[0]));
    assert.match(loops[0].message, /loops would run more than 200,000 times in all/);
    // Lists written in the source (4 KB each) nest as well as range() does: three levels were 10^9 iterations.
    const list = `[${Array.from({ length: 1000 }, (_, i) => i).join(',')}]`;
    const listed = problemsOf(lines('cluster: lab', 'x: |', `  {% for i in ${list} %}`, `  {% for j in ${list} %}{% for k in ${list} %}.{% endfor %}{% endfor %}{% endfor %}`));
    assert.equal(listed.length, 1, listed.map(show).join('\n'));
    assert.equal(listed[0].line, 4, show(listed[0]));
    assert.match(listed[0].message, /loops would run more than 200,000 times in all \(a loop over 1,000 items here\)/);
    assert.deepEqual(problemsOf(lines('cluster: lab', `# {% for i in ${list} %}{% for j in [1, 2] %}.{% endfor %}{% endfor %}`)).map(show), problemsOf(lines('cluster: lab', '#')).map(show), 'loops under the cap render');
    const wide = problemsOf(lines('cluster: lab', 'x: "{{ "a" | indent(100000000) }}"'));
    assert.equal(wide.length, 1, wide.map(show).join('\n'));
    assert.equal(wide[0].line, 2, show(wide[0]));
    assert.match(wide[0].message, /indent\(100000000\): at most 10000 columns/);
    assertProblem(lines('cluster: lab', `# {% for i in range(180000) %}{{ "${'y'.repeat(200)}" }}{% endfor %}`), {
      line: 1, column: 1, key: '', message: /the rendered inventory is \d+\.\d MiB; at most 32 MiB/,
    });
    assertProblem(`cluster: lab\n# ${'z'.repeat(5 << 20)}\n`, { line: 1, column: 1, key: '', message: /at most 4 MiB is read/ });
  });
});

describe('problems', () => {
  it('unknown key: at the key, listing the expected keys, suggesting the closest', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1 }', '  workers:', '    role: worker', '    cuont: 3'), {
      line: 6,
      column: 5,
      key: 'groups.workers.cuont',
      message: 'unknown key (expected one of: role, count, name, provider, labels, ssh, options, hosts); did you mean "count"?',
    });
    assertProblem(lines('cluster: lab', 'sawrm: {}', 'groups:', '  managers: { role: manager, count: 1 }'), {
      line: 2,
      column: 1,
      key: 'sawrm',
      message: /^unknown key \(expected one of: cluster, provider, providers, ssh, swarm, groups, images, workloads\); did you mean "swarm"\?$/,
    });
  });

  it('wrong type: says what was expected and what was found', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  managers:', '    role: manager', '    count: three'), {
      line: 5,
      column: 12,
      key: 'groups.managers.count',
      message: 'expected a positive integer, got "three"',
    });
    assertProblem(lines('cluster: lab', 'swarm:', '  firewall: yes', 'groups:', '  managers: { role: manager, count: 1 }'), {
      line: 3,
      column: 13,
      key: 'swarm.firewall',
      message: 'expected true or false, got "yes"',
    });
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1, labels: [a, b] }'), {
      line: 3,
      column: '[a, b]',
      key: 'groups.managers.labels',
      message: 'expected a mapping (key: value), got a list',
    });
  });

  it('keys that are not plain words are quoted in the path', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1, labels: { com.example.rack: [1] } }'), {
      line: 3,
      column: '[1]',
      key: 'groups.managers.labels["com.example.rack"]',
      message: 'expected a label value (a string), got a list',
    });
  });

  it('missing role: at the group', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1 }', '  workers:', '    count: 3'), {
      line: 4,
      column: 3,
      key: 'groups.workers.role',
      message: 'missing (expected "manager" or "worker")',
    });
  });

  it('missing cluster and groups: at the top', () => {
    const problems = problemsOf(lines('provider: lab'));
    assert.deepEqual(
      problems.map(show),
      ['1:1: cluster: missing (expected a cluster name)', '1:1: groups: missing (expected a mapping of groups by name)'],
    );
    assert.deepEqual(problemsOf('').map(show), ['1:1: : expected a mapping with at least cluster and groups, got an empty value']);
  });

  it('bad cluster name', () => {
    assertProblem(lines('cluster: My_Lab', 'groups:', '  m: { role: manager, count: 1 }'), {
      line: 1,
      column: 10,
      key: 'cluster',
      message: 'expected a cluster name: lowercase letters, digits and "-", got "My_Lab"',
    });
  });

  it('duplicate host names across groups', () => {
    assertProblem(
      lines(
        'cluster: lab',
        'provider: ssh',
        'groups:',
        '  managers: { role: manager, name: "node-[1:3]" }',
        '  workers:',
        '    role: worker',
        '    hosts:',
        '      - { name: node-4 }',
        '      - { name: node-2 }',
      ),
      { line: 9, column: 'node-2', key: 'groups.workers.hosts[1].name', message: 'duplicate host name "node-2": already defined by group managers (line 4)' },
    );
    assertProblem(lines('cluster: lab', 'groups:', '  a: { role: manager, name: "w-[1:5]" }', '  b: { role: worker, name: "w-[4:9]" }'), {
      line: 4,
      column: '"w-[4:9]"',
      key: 'groups.b.name',
      message: 'duplicate host name "w-4" (and 1 more of this group\'s names): already defined by group a',
    });
  });

  it('group needs exactly one of count, name range, hosts', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager }'), {
      line: 3,
      column: 3,
      key: 'groups.managers',
      message: 'a group needs exactly one of count:, a name range like name: web-[1:3], or hosts:',
    });
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, name: boss }'), {
      line: 3,
      column: 3,
      key: 'groups.managers',
      message: 'name "boss" has no range: add count:, write a range like boss-[1:3], or list hosts:',
    });
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, name: "m-[1:3]", count: 3 }'), {
      line: 3,
      column: 'count: 3',
      key: 'groups.managers.count',
      message: 'count cannot be combined with a name range: the range gives the number of hosts',
    });
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1, hosts: [{ name: m }] }'), {
      line: 3,
      column: 'count',
      key: 'groups.managers.count',
      message: 'count cannot be combined with hosts: the list gives the hosts',
    });
  });

  it('bad range and bad host names at the name', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, name: "m-[5:1]" }'), {
      line: 3,
      column: '"m-[5:1]"',
      key: 'groups.managers.name',
      message: 'range [5:1] counts down: its start must not be after its end',
    });
    assertProblem(lines('cluster: lab', 'groups:', '  Managers: { role: manager, count: 2 }'), {
      line: 3,
      column: 3,
      key: 'groups.Managers',
      message: /^"Managers-1" is not a valid host name: .*; set name: to choose another prefix$/,
    });
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, hosts: [{ name: db_1 }] }'), {
      line: 3,
      column: 'db_1',
      key: 'groups.managers.hosts[0].name',
      message: /^"db_1" is not a valid host name/,
    });
  });

  it('at least one manager', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  workers: { role: worker, count: 3 }'), {
      line: 2,
      column: 1,
      key: 'groups',
      message: 'no manager: at least one group needs role: manager',
    });
  });

  it('bad CIDR for advertise', () => {
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'privat', '10.0.0.0']) {
      assertProblem(lines('cluster: lab', 'swarm:', `  advertise: ${bad}`, 'groups:', '  m: { role: manager, count: 1 }'), {
        line: 3,
        column: 14,
        key: 'swarm.advertise',
        message: `expected private, public or a CIDR like 10.0.0.0/8, got "${bad}"`,
      });
    }
    assert.deepEqual(
      load(lines('cluster: lab', 'swarm: { advertise: "fd00::/8" }', 'groups:', '  m: { role: manager, count: 1 }')).swarm.advertise,
      { kind: 'cidr', cidr: 'fd00::/8' },
    );
  });

  it('bad ports', () => {
    const service = (port: string) =>
      lines('cluster: lab', 'groups:', '  m: { role: manager, count: 1 }', 'workloads:', '  services:', '    - name: web', '      image: x', '      ports:', `        - ${port}`);
    assertProblem(service('"70000:80"'), {
      line: 9,
      column: 11,
      key: 'workloads.services[0].ports[0]',
      message: 'expected "[published:]target[/udp]" like "8080:80" with ports from 1 to 65535, got "70000:80"',
    });
    assertProblem(service('"8080:80/sctp"'), {
      line: 9,
      column: 11,
      key: 'workloads.services[0].ports[0]',
      message: 'expected "[published:]target[/udp]" like "8080:80", got "8080:80/sctp"',
    });
    assertProblem(service('{ published: 0, target: 80 }'), {
      line: 9,
      column: '0,',
      key: 'workloads.services[0].ports[0].published',
      message: 'expected a port number (1-65535), got 0',
    });
    assertProblem(service('{ target: 80, mode: global }'), {
      line: 9,
      column: 'global',
      key: 'workloads.services[0].ports[0].mode',
      message: 'expected "ingress" or "host", got "global"',
    });
    assertProblem(service('{ published: 80 }'), {
      line: 9,
      column: '{',
      key: 'workloads.services[0].ports[0].target',
      message: 'missing (expected a port number (1-65535))',
    });
  });

  it('one ingress port per swarm, no duplicate service names, no replicas on global services', () => {
    const problems = problemsOf(
      lines(
        'cluster: lab',
        'groups:',
        '  m: { role: manager, count: 1 }',
        'workloads:',
        '  services:',
        '    - { name: a, image: x, ports: ["8080:80"] }',
        '    - { name: b, image: x, ports: ["8080:81"], mode: global, replicas: 2 }',
        '    - { name: a, image: x }',
      ),
    );
    assert.deepEqual(problems.map(show), [
      '7:36: workloads.services[1].ports[0]: port 8080/tcp is already published in ingress mode by service "a"',
      '7:62: workloads.services[1].replicas: replicas cannot be set on a global service (it runs one task on every node)',
      '8:15: workloads.services[2].name: duplicate service name "a" (first defined on line 6)',
    ]);
  });

  it('swarm.ingress false: an ingress-mode port is a problem at its position; host mode is fine', () => {
    const problems = problemsOf(
      lines(
        'cluster: lab',
        'swarm: { ingress: false }',
        'groups:',
        '  m: { role: manager, count: 1 }',
        'workloads:',
        '  services:',
        '    - { name: a, image: x, ports: ["8080:80"] }',
        '    - { name: b, image: x, ports: [{ published: 8081, target: 80, mode: host }] }',
      ),
    );
    assert.deepEqual(problems.map(show), [
      '7:36: workloads.services[0].ports[0]: port 8080/tcp is published in ingress mode, but swarm.ingress is false (no ingress network): use mode: host',
    ]);
  });

  it('a command string that needs a shell', () => {
    const text = lines(
      'cluster: lab',
      'groups:',
      '  m: { role: manager, count: 1 }',
      'workloads:',
      '  services:',
      '    - { name: a, image: x, command: "echo hi && sleep 1" }',
    );
    assertProblem(text, {
      line: 6,
      column: '"echo',
      key: 'workloads.services[0].command',
      message: '"&" needs a shell, but the command is not run by one: quote it, or write a list like ["sh", "-c", "..."]',
    });
  });

  it('image files must exist; tags go with import', () => {
    const problems = problemsOf(
      lines(
        'cluster: lab',
        'groups:',
        '  m: { role: manager, count: 1 }',
        'images:',
        '  - images/missing.tar',
        '  - { file: rootfs.tar, import: true }',
        '  - { file: images/app.tar, tag: a:1 }',
      ),
    );
    assert.deepEqual(problems.map(show), [
      `5:5: images[0].file: file not found: ${path.join(FIXTURES, 'images/missing.tar')}`,
      '6:5: images[1].tag: an imported root filesystem needs a tag, like tag: myorg/base:1',
      '7:29: images[2].tag: tag is only used with import: true (a `docker save` tarball keeps its own tags)',
    ]);
  });

  it('YAML syntax error with its position', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1', '  workers: {}'), {
      line: 4,
      column: 3,
      key: 'groups.workers',
      message: 'YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }',
    });
    assertProblem(lines('cluster: lab', 'groups:', '\tm: { role: manager, count: 1 }'), {
      line: 3,
      column: 1,
      key: '',
      message: 'YAML syntax error: Tabs are not allowed as indentation',
    });
  });

  it('duplicate keys are errors', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1 }', '  managers: { role: worker, count: 2 }'), {
      line: 4,
      column: 3,
      key: 'groups.managers',
      message: 'duplicate key (first defined on line 3)',
    });
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1, role: worker }'), {
      line: 3,
      column: 'role: worker',
      key: 'groups.managers.role',
      message: 'duplicate key (first defined on line 3, column 15)',
    });
  });

  it('unknown provider: in a group, at the top level, in providers', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1, provider: aws }'), {
      line: 3,
      column: 'aws',
      key: 'groups.managers.provider',
      message: 'unknown provider "aws" (known: lab, ssh, cloud)',
    });
    assertProblem(lines('cluster: lab', 'provider: docker-machine', 'groups:', '  managers: { role: manager, count: 1 }'), {
      line: 2,
      column: 11,
      key: 'provider',
      message: 'unknown provider "docker-machine" (known: lab, ssh, cloud)',
    });
    assertProblem(lines('cluster: lab', 'providers:', '  digitalocean: { token: x }', 'groups:', '  managers: { role: manager, count: 1 }'), {
      line: 3,
      column: 3,
      key: 'providers.digitalocean',
      message: 'unknown provider "digitalocean" (known: lab, ssh, cloud)',
    });
  });

  it('provider settings are checked by the provider schema, at their position', () => {
    assertProblem(lines('cluster: lab', 'providers:', '  lab:', '    subnet: 24', 'groups:', '  managers: { role: manager, count: 1 }'), {
      line: 4,
      column: 13,
      key: 'providers.lab.subnet',
      message: 'expected a string, got 24',
    });
    assertProblem(lines('cluster: lab', 'providers:', '  lab: { subnet: 198.18.0.0/24, bridge: br0 }', 'groups:', '  m: { role: manager, count: 1 }'), {
      line: 3,
      column: 'bridge',
      key: 'providers.lab.bridge',
      message: 'unknown key (expected one of: subnet)',
    });
    // A used provider whose settings are required but absent: reported at the nearest existing parent.
    assertProblem(lines('cluster: lab', 'groups:', '  managers: { role: manager, count: 1, provider: cloud }'), {
      line: 1,
      column: 1,
      key: 'providers.cloud.region',
      message: 'missing (expected a string)',
    });
    assertProblem(lines('cluster: lab', 'providers:', '  ssh: { port: 22 }', 'groups:', '  m: { role: manager, count: 1 }'), {
      line: 3,
      column: '{',
      key: 'providers.ssh',
      message: 'provider "ssh" takes no settings',
    });
  });

  it('group and host options are checked by the provider schema, each at the level that set them', () => {
    const problems = problemsOf(
      lines(
        'cluster: lab',
        'provider: cloud',
        'providers: { cloud: { region: r1 } }',
        'groups:',
        '  managers: { role: manager, count: 1, options: { size: huge } }',
        '  workers:',
        '    role: worker',
        '    options: { disk: 10, sise: small }',
        '    hosts:',
        '      - { name: w-1, options: { disk: -1 } }',
        '      - { name: w-2 }',
      ),
    );
    assert.deepEqual(problems.map(show), [
      '5:57: groups.managers.options.size: expected one of "small", "large", got "huge"',
      '8:26: groups.workers.options.sise: unknown key (expected one of: size, disk); did you mean "size"?',
      '10:39: groups.workers.hosts[0].options.disk: expected a number > 0, got -1',
    ]);
  });

  it('options for a provider without an options schema are refused', () => {
    assertProblem(lines('cluster: lab', 'groups:', '  m: { role: manager, count: 1, provider: ssh, options: { cpus: 2 } }'), {
      line: 3,
      column: 'cpus',
      key: 'groups.m.options.cpus',
      message: 'provider "ssh" takes no options',
    });
  });

  it('collects every schema problem in one error, in file order', () => {
    let error: InventoryError | undefined;
    try {
      load(
        lines(
          'cluster: lab',
          'swarm: { joinConcurrency: 0, install: apt }',
          'groups:',
          '  managers: { role: boss, count: -1 }',
          'workloads:',
          '  services:',
          '    - { name: Web, image: "", replicas: 1.5, env: [NOPE] }',
        ),
      );
    } catch (err) {
      error = err as InventoryError;
    }
    assert.ok(error instanceof InventoryError);
    assert.deepEqual(error.problems.map(show), [
      '2:27: swarm.joinConcurrency: expected a whole number from 1 to 1000, got 0',
      '2:39: swarm.install: expected "auto", "packages" or "bundle", got "apt"',
      '4:21: groups.managers.role: expected "manager" or "worker", got "boss"',
      '4:34: groups.managers.count: expected a positive integer, got -1',
      '7:15: workloads.services[0].name: expected a service name: lowercase letters, digits, "_", "." and "-", got "Web"',
      '7:27: workloads.services[0].image: expected an image reference like alpine:3.20, got ""',
      '7:41: workloads.services[0].replicas: expected a whole number of replicas (0 or more), got 1.5',
      '7:52: workloads.services[0].env[0]: expected "KEY=value", got "NOPE"',
    ]);
    assert.equal(error.exitCode, 2);
    assert.equal(error.message.split('\n')[0], `${FILE}:2:27: swarm.joinConcurrency: expected a whole number from 1 to 1000, got 0`);
  });
});

describe('files', () => {
  const PROVIDERS = providers;

  it('inventories/lab.yml: 3 managers, 3 workers, a web service on a host-mode port', async () => {
    const inv = await loadInventory(path.join(ROOT, 'inventories/lab.yml'), { providers: PROVIDERS, env: {} });
    assert.equal(inv.cluster, 'lab');
    assert.equal(inv.file, path.join(ROOT, 'inventories/lab.yml'));
    assert.deepEqual(inv.providers, { lab: { subnet: '198.18.0.0/24' } });
    assert.deepEqual(
      inv.hosts.map((h) => `${h.name}:${h.role}:${h.provider}`),
      ['mgr-1:manager:lab', 'mgr-2:manager:lab', 'mgr-3:manager:lab', 'worker-1:worker:lab', 'worker-2:worker:lab', 'worker-3:worker:lab'],
    );
    assert.equal(inv.services.length, 1);
    const [web] = inv.services;
    assert.equal(web.name, 'web');
    assert.equal(web.image, 'swarmform/busybox:latest');
    assert.equal(web.replicas, 3);
    assert.deepEqual(web.ports, [{ published: 8080, target: 80, protocol: 'tcp', mode: 'host' }]);
    assert.deepEqual(web.constraints, ['node.role == worker']);
    assert.equal(web.command?.[0], 'sh');
    assert.equal(web.command?.[1], '-c');
    assert.match(web.command?.[2] ?? '', /hostname/);
    assert.match(web.command?.[2] ?? '', /httpd -f -p 80 -h \/www/);
  });

  it('inventories/lab-large.yml: 3 managers and 30 workers', async () => {
    const inv = await loadInventory(path.join(ROOT, 'inventories/lab-large.yml'), { providers: PROVIDERS, env: {} });
    assert.equal(inv.cluster, 'lab30');
    assert.deepEqual(inv.providers, { lab: { subnet: '198.18.2.0/24' } });
    assert.equal(inv.hosts.filter((h) => h.role === 'manager').length, 3);
    assert.equal(inv.hosts.filter((h) => h.role === 'worker').length, 30);
    assert.equal(inv.services[0].replicas, 6);
  });

  it('inventories/metal.yml: explicit ssh hosts', async () => {
    const inv = await loadInventory(path.join(ROOT, 'inventories/metal.yml'), { providers: PROVIDERS, env: { SWARMFORM_SSH_KEY: '/keys/metal' } });
    assert.ok(inv.hosts.every((h) => h.provider === 'ssh' && h.address?.startsWith('203.0.113.')));
    assert.equal(inv.hosts.filter((h) => h.role === 'manager').length, 3);
    assert.ok(inv.hosts.every((h) => h.ssh.key === '/keys/metal'));
    const db = inv.hosts.find((h) => h.name === 'db-1');
    assert.deepEqual(db?.ssh, { user: 'ops', port: 2222, key: '/keys/metal', connectTimeout: 60 });
    assert.deepEqual(db?.labels, { tier: 'data', disk: 'ssd' });
    const defaulted = await loadInventory(path.join(ROOT, 'inventories/metal.yml'), { providers: PROVIDERS, env: {} });
    assert.equal(defaulted.hosts[0].ssh.key, path.join(os.homedir(), '.ssh/id_ed25519'));
  });

  it('the example in FORMAT.md is a valid inventory', () => {
    const doc = readFileSync(path.join(ROOT, 'src/inventory/FORMAT.md'), 'utf8');
    const example = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(example, 'FORMAT.md has a yaml example');
    const inv = parseInventory(example, path.join(FIXTURES, 'format-example.yml'), { providers, env: {} });
    assert.equal(inv.hosts.length, 7);
    assert.equal(inv.images.length, 2);
  });

  it('an unreadable file is a usage error naming it', async () => {
    const missing = path.join(FIXTURES, 'nope.yml');
    await assert.rejects(loadInventory(missing, { providers }), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.ok(!(err instanceof InventoryError));
      assert.match(err.message, /cannot read inventory .*nope\.yml: no such file/);
      return true;
    });
  });
});

it('swarm.packages: a mirror needs its key or trusted, and is read with defaults', () => {
  const base = (pk: string) => lines('cluster: lab', 'swarm:', '  install: packages', `  packages: ${pk}`, 'groups:', '  managers: { role: manager, count: 1 }');
  const inv = load(base('{ mirror: "http://198.18.0.1:3142/bookworm", suite: ./, trusted: true }'));
  assert.deepEqual(inv.swarm.packages, { from: 'distribution', mirror: 'http://198.18.0.1:3142/bookworm', suite: './', trusted: true });
  assertProblem(base('{ mirror: "http://mirror.example.org/debian" }'), {
    line: 4,
    column: '"http',
    key: 'swarm.packages.mirror',
    message: /signing key \(swarm\.packages\.key\) or `trusted: true`/,
  });
  assertProblem(base('{ from: ce }'), { line: 4, column: 'ce', key: 'swarm.packages.from', message: /"distribution" \(docker\.io\) or "docker"/ });
  assertProblem(base('{ mirror: "ftp://x" , trusted: true }'), { line: 4, column: '"ftp', key: 'swarm.packages.mirror', message: /http or https URL/ });
});
