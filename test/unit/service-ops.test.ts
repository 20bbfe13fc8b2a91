import assert from 'node:assert/strict';
import { test } from 'node:test';
import { detectShell, formatEnv, sshConfigStanza, type EnvResult } from '../../src/core/env.js';
import { LogDemuxer, parseLogDetails } from '../../src/core/service.js';
import { findNode, nodeRows, nodeUpdateSpec, type EngineNode } from '../../src/swarm/node-ops.js';
import { networkCreateBody } from '../../src/swarm/network-ops.js';
import {
  buildCreateSpec,
  buildUpdateSpec,
  type CreateOptions,
  formatDuration,
  humanDuration,
  parseDuration,
  parseMemory,
  parsePublish,
  parseScaleArgs,
  serviceRows,
  taskRows,
  type EngineService,
  type EngineTask,
} from '../../src/swarm/service-ops.js';
import { ProgressTracker, type ServiceProgressEvent, watchService } from '../../src/swarm/service-progress.js';
import { progressBar, ServiceProgressView } from '../../src/cli/render/service-progress.js';
import { emptyUpdate } from '../../src/core/service.js';

const base: CreateOptions = {
  image: 'web:v1', command: [], mode: 'replicated', publish: [], env: [], label: [], containerLabel: [], constraint: [], network: [], update: {}, rollback: {},
};

test('durations, sizes and ports parse like the docker CLI', () => {
  assert.equal(parseDuration('10s', '--x'), 10e9);
  assert.equal(parseDuration('1m30s', '--x'), 90e9);
  assert.equal(parseDuration('500ms', '--x'), 5e8);
  assert.equal(parseDuration('0', '--x'), 0);
  assert.throws(() => parseDuration('10', '--update-delay'), /--update-delay: invalid duration "10"/);
  assert.throws(() => parseDuration('5 sec', '--update-delay'), /invalid duration/);
  assert.equal(formatDuration(90e9), '1m30s');
  assert.equal(formatDuration(5e8), '500ms');
  assert.equal(parseMemory('128M', '--limit-memory'), 128 * 1024 * 1024);
  assert.equal(parseMemory('1g', '--limit-memory'), 1024 ** 3);
  assert.throws(() => parseMemory('lots', '--limit-memory'), /--limit-memory: invalid size/);
  assert.deepEqual(parsePublish('8080:80'), { Protocol: 'tcp', PublishedPort: 8080, TargetPort: 80, PublishMode: 'ingress' });
  assert.deepEqual(parsePublish('53:53/udp'), { Protocol: 'udp', PublishedPort: 53, TargetPort: 53, PublishMode: 'ingress' });
  assert.deepEqual(parsePublish('mode=host,published=8080,target=80'), { Protocol: 'tcp', PublishedPort: 8080, TargetPort: 80, PublishMode: 'host' });
  assert.deepEqual(parsePublish('mode=host,8080:80'), { Protocol: 'tcp', PublishedPort: 8080, TargetPort: 80, PublishMode: 'host' });
  assert.deepEqual(parsePublish('80'), { Protocol: 'tcp', PublishedPort: 0, TargetPort: 80, PublishMode: 'ingress' });
  assert.throws(() => parsePublish('mode=bridge,80'), /mode must be ingress or host/);
  assert.throws(() => parsePublish('99999:80'), /published must be a port number/);
  assert.throws(() => parsePublish('published=80'), /no target port/);
  assert.deepEqual(parseScaleArgs(['web=4', 'api=0']), [{ service: 'web', replicas: 4 }, { service: 'api', replicas: 0 }]);
  assert.throws(() => parseScaleArgs(['web']), /expected SERVICE=REPLICAS/);
  assert.throws(() => parseScaleArgs([]), /at least one/);
});

test('service create spec: replicas, global mode, ports, update and rollback config, resources', () => {
  const spec = buildCreateSpec({
    ...base,
    name: 'web',
    replicas: 3,
    command: ['sh', '-c', 'httpd -f'],
    publish: ['mode=host,published=8080,target=80'],
    env: ['A=1'],
    label: ['team=x'],
    constraint: ['node.role==worker'],
    update: { parallelism: 1, delay: '10s', failureAction: 'rollback', order: 'start-first', monitor: '2s' },
    rollback: { parallelism: 2 },
    restartCondition: 'on-failure',
    limitCpu: '0.5',
    limitMemory: '64M',
  });
  assert.equal(spec.Name, 'web');
  assert.deepEqual(spec.Mode, { Replicated: { Replicas: 3 } });
  assert.deepEqual(spec.TaskTemplate?.ContainerSpec?.Args, ['sh', '-c', 'httpd -f']);
  assert.equal(spec.TaskTemplate?.ContainerSpec?.Command, undefined, 'the image entrypoint stays (docker puts the command in Args)');
  assert.deepEqual(spec.TaskTemplate?.ContainerSpec?.Env, ['A=1']);
  assert.deepEqual(spec.Labels, { team: 'x' });
  assert.deepEqual(spec.TaskTemplate?.Placement?.Constraints, ['node.role==worker']);
  assert.deepEqual(spec.EndpointSpec?.Ports, [{ Protocol: 'tcp', PublishedPort: 8080, TargetPort: 80, PublishMode: 'host' }]);
  assert.deepEqual(spec.UpdateConfig, { Parallelism: 1, Delay: 10e9, FailureAction: 'rollback', Order: 'start-first', Monitor: 2e9 });
  assert.deepEqual(spec.RollbackConfig, { Parallelism: 2, FailureAction: 'pause', Order: 'stop-first' });
  assert.deepEqual(spec.TaskTemplate?.RestartPolicy, { Condition: 'on-failure' });
  assert.deepEqual(spec.TaskTemplate?.Resources, { Limits: { NanoCPUs: 5e8, MemoryBytes: 64 * 1024 * 1024 }, Reservations: {} });
  assert.deepEqual(buildCreateSpec({ ...base, mode: 'global' }).Mode, { Global: {} });
  assert.deepEqual(buildCreateSpec(base).Mode, { Replicated: { Replicas: 1 } });
  assert.throws(() => buildCreateSpec({ ...base, mode: 'global', replicas: 2 }), /--replicas: not allowed with --mode global/);
  assert.throws(() => buildCreateSpec({ ...base, update: { failureAction: 'explode' } }), /--update-failure-action: invalid "explode"/);
  assert.throws(() => buildCreateSpec({ ...base, rollback: { failureAction: 'rollback' } }), /--rollback-failure-action/);
  assert.throws(() => buildCreateSpec({ ...base, name: 'bad name' }), /--name: invalid service name/);
  assert.throws(() => buildCreateSpec({ ...base, restartCondition: 'always' }), /--restart-condition/);
});

test('service update spec changes only what was asked and never mutates the current spec', () => {
  const current = buildCreateSpec({ ...base, name: 'web', replicas: 3, env: ['A=1', 'B=2'], constraint: ['node.role == worker'], publish: ['8080:80'], label: ['x=1'] });
  const frozen = structuredClone(current);
  const next = buildUpdateSpec(current, {
    ...emptyUpdate(),
    image: 'web:v2',
    envAdd: ['A=9', 'C=3'],
    envRm: ['B'],
    labelAdd: ['y=2'],
    labelRm: ['x'],
    constraintAdd: ['node.labels.disk==ssd'],
    constraintRm: ['node.role==worker'],
    publishAdd: ['mode=host,published=9090,target=90'],
    publishRm: ['8080'],
    force: true,
    update: { parallelism: 1, failureAction: 'rollback' },
  });
  assert.deepEqual(current, frozen);
  assert.equal(next.TaskTemplate?.ContainerSpec?.Image, 'web:v2');
  assert.deepEqual(next.TaskTemplate?.ContainerSpec?.Env, ['A=9', 'C=3']);
  assert.deepEqual(next.Labels, { y: '2' });
  assert.deepEqual(next.TaskTemplate?.Placement?.Constraints, ['node.labels.disk==ssd']);
  assert.deepEqual(next.EndpointSpec?.Ports, [{ Protocol: 'tcp', PublishedPort: 9090, TargetPort: 90, PublishMode: 'host' }]);
  assert.equal(next.TaskTemplate?.ForceUpdate, 1);
  assert.deepEqual(next.UpdateConfig, { Parallelism: 1, FailureAction: 'rollback', Order: 'stop-first' });
  assert.deepEqual(next.Mode, { Replicated: { Replicas: 3 } });
  assert.throws(() => buildUpdateSpec(buildCreateSpec({ ...base, mode: 'global' }), { ...emptyUpdate(), replicas: 2 }), /only replicated services/);
});

const svc = (over: Partial<EngineService> & { replicas?: number; global?: boolean }): EngineService => ({
  ID: over.ID ?? 'svc1',
  Version: { Index: 1 },
  Spec: { Name: 'web', Mode: over.global ? { Global: {} } : { Replicated: { Replicas: over.replicas ?? 3 } }, TaskTemplate: { ContainerSpec: { Image: 'web:v1@sha256:abcd' } } },
  ...over,
});
const task = (id: string, slot: number, state: string, desired = 'running', extra: Partial<EngineTask> = {}): EngineTask => ({
  ID: id, ServiceID: 'svc1', NodeID: 'n1', Slot: slot, DesiredState: desired, Status: { State: state, Timestamp: '2026-01-01T00:00:00Z' }, ...extra,
});

test('service ls and ps rows follow the docker CLI', () => {
  const nodes = [{ ID: 'n1', Description: { Hostname: 'worker-1' }, Status: { State: 'ready' } }, { ID: 'n2', Description: { Hostname: 'worker-2' }, Status: { State: 'down' } }];
  const tasks = [task('t1', 1, 'running'), task('t2', 2, 'running'), task('t3', 3, 'running', 'running', { NodeID: 'n2' }), task('t4', 3, 'preparing')];
  const rows = serviceRows([svc({})], tasks, nodes);
  assert.equal(rows[0]!.replicas, '2/3', 'a task on a down node does not count');
  assert.equal(rows[0]!.image, 'web:v1', 'digest dropped');
  assert.equal(serviceRows([svc({ ServiceStatus: { RunningTasks: 3, DesiredTasks: 3 } })], [], nodes)[0]!.replicas, '3/3');
  const ps = taskRows(
    [
      task('aaaaaaaaaaaaaaaa', 1, 'shutdown', 'shutdown', { Status: { State: 'shutdown', Timestamp: '2026-01-01T00:00:00Z' } }),
      task('bbbbbbbbbbbbbbbb', 1, 'running', 'running', { Status: { State: 'running', Timestamp: '2026-01-01T00:05:00Z', PortStatus: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' }] } } }),
      task('cccccccccccccccc', 2, 'failed', 'shutdown', { Status: { State: 'failed', Err: 'task: non-zero exit (1)', Timestamp: '2026-01-01T00:09:58Z' } }),
    ],
    new Map([['svc1', 'web']]),
    nodes,
    { now: Date.parse('2026-01-01T00:10:00Z') },
  );
  assert.deepEqual(ps.map((r) => r.name), ['web.1', ' \\_ web.1', 'web.2']);
  assert.equal(ps[0]!.id, 'bbbbbbbbbbbb');
  assert.equal(ps[0]!.currentState, 'Running 5 minutes ago');
  assert.equal(ps[0]!.ports, '*:8080->80/tcp');
  assert.equal(ps[0]!.node, 'worker-1');
  assert.equal(ps[2]!.error, '"task: non-zero exit (1)"');
  assert.equal(ps[2]!.currentState, 'Failed 2 seconds ago');
  assert.equal(humanDuration(30 * 60_000), '30 minutes');
  assert.equal(humanDuration(90_000), 'About a minute');
  assert.equal(humanDuration(3 * 86400_000), '3 days');
});

test('progress tracker: docker lines per slot, overall progress, and rollback wording', () => {
  const events: ServiceProgressEvent[] = [];
  const t = new ProgressTracker('web', (e) => events.push(e));
  const active = new Set(['n1']);
  assert.equal(t.update(svc({}), [task('a', 1, 'preparing'), task('b', 2, 'running')], active, false), false);
  assert.deepEqual(events.map((e) => `${e.id}: ${e.action}`.trimEnd()), [
    'overall progress: 0 out of 3 tasks',
    '1/3:',
    '2/3:',
    '3/3:',
    '1/3: preparing',
    '2/3: running',
    'overall progress: 1 out of 3 tasks',
  ]);
  assert.equal(events.find((e) => e.action.startsWith('preparing'))!.current, 6);
  events.length = 0;
  assert.equal(t.update(svc({}), [task('a', 1, 'running'), task('b', 2, 'running'), task('c', 3, 'running')], active, false), true);
  assert.deepEqual(events.map((e) => `${e.id}: ${e.action}`.trimEnd()), ['1/3: running', '3/3: running', 'overall progress: 3 out of 3 tasks']);
  // An old task of a slot (desired shutdown) never hides the new one; a task error is shown on its line.
  const events2: ServiceProgressEvent[] = [];
  const t2 = new ProgressTracker('web', (e) => events2.push(e));
  t2.update(svc({ replicas: 1 }), [task('old', 1, 'running', 'shutdown'), task('new', 1, 'failed', 'running', { Status: { State: 'failed', Err: 'task: non-zero exit (1)' } })], active, true);
  assert.ok(events2.some((e) => e.id === '1/1' && e.action === 'task: non-zero exit (1)' && e.error));
  assert.ok(events2.some((e) => e.action === 'rolling back update: 0 out of 1 tasks'));
  // Global: one line per node, counted over nodes with tasks.
  const events3: ServiceProgressEvent[] = [];
  const t3 = new ProgressTracker('agent', (e) => events3.push(e));
  assert.equal(t3.update(svc({ global: true }), [], new Set(), false), false);
  assert.deepEqual(events3.map((e) => e.action), ['waiting for new tasks']);
  const g = [task('g1', 0, 'running', 'running', { NodeID: 'nodeaaaaaaaaaaaaa' }), task('g2', 0, 'running', 'running', { NodeID: 'nodebbbbbbbbbbbbb' })];
  assert.equal(t3.update(svc({ global: true }), g, new Set(['nodeaaaaaaaaaaaaa', 'nodebbbbbbbbbbbbb']), false), true);
  assert.ok(events3.some((e) => e.id === 'nodeaaaaaaaa' && e.action.startsWith('running')));
  assert.equal(events3.at(-1)!.action, '2 out of 2 tasks');
});

test('a rollback that starts and ends between two polls is still reported with the task that failed', async () => {
  // What a busy manager showed in CI: the update running, then at the next poll the rollback already completed, so
  // the engine's rollback_started message was never seen.
  const updating = { ...svc({ replicas: 2 }), UpdateStatus: { State: 'updating', Message: 'update in progress' } } as EngineService;
  const done = { ...svc({ replicas: 2 }), UpdateStatus: { State: 'rollback_completed', Message: 'rollback completed' } } as EngineService;
  const states = [updating, done, done, done];
  for (const x of [updating, done]) x.Spec.UpdateConfig = { Monitor: 10e6 };
  const newTask = task('fail1', 2, 'starting', 'running', { Status: { State: 'starting', Timestamp: '2026-01-01T00:00:01Z' } });
  let phase = 0;
  const engine = {
    getService: () => ({ inspect: async () => states[Math.min(phase++, states.length - 1)] }),
    listTasks: async (o: { filters: string }) => {
      const f = JSON.parse(o.filters) as Record<string, unknown>;
      if (phase <= 1) return f['_up-to-date'] ? [task('old1', 1, 'running'), newTask] : [];
      // Later: the failed task of the update, and both slots back on the old spec.
      const failed = { ...newTask, DesiredState: 'shutdown', Status: { State: 'failed', Err: 'task: non-zero exit (1)', Timestamp: '2026-01-01T00:00:03Z' } };
      return f['_up-to-date'] ? [task('old1', 1, 'running'), task('old2', 2, 'running')] : [failed, task('old1', 1, 'running'), task('old2', 2, 'running')];
    },
    listNodes: async () => [{ ID: 'n1', Status: { State: 'ready' } }],
  };
  const events: ServiceProgressEvent[] = [];
  const out = await watchService(engine as never, 'svc1', (e) => events.push(e), { pollMs: 1 });
  const reason = 'update rolled back due to failure or early termination of task fail1 (task: non-zero exit (1))';
  assert.equal(out.rolledBack, reason);
  const lines = events.filter((e) => e.id === 'rollback').map((e) => e.action);
  assert.deepEqual(lines, [reason, 'rollback completed']);
});

test('progress view: live lines on a terminal, plain lines otherwise, JSON with --json', () => {
  const sink = () => {
    const out = { text: '', columns: 120, write(s: string) { this.text += s; return true; } };
    return out;
  };
  const e = (id: string, action: string, extra: Partial<ServiceProgressEvent> = {}): ServiceProgressEvent => ({ type: 'progress', service: 'web', id, action, ...extra });
  const plain = sink();
  const pv = new ServiceProgressView(plain as never, 'plain');
  pv.onEvent(e('overall progress', '0 out of 1 tasks'));
  pv.onEvent(e('1/1', 'running   ', { current: 9, total: 9 }));
  assert.equal(plain.text, 'overall progress: 0 out of 1 tasks\n1/1: running\n');
  const tty = sink();
  const tv = new ServiceProgressView(tty as never, 'tty');
  tv.onEvent(e('overall progress', '0 out of 1 tasks'));
  tv.onEvent(e('overall progress', '1 out of 1 tasks'));
  assert.ok(tty.text.includes('\x1b[1A'), 'rewrites in place');
  assert.equal(progressBar(9, 9), `[${'='.repeat(50)}>]`);
  assert.equal(progressBar(6, 9), `[${'='.repeat(33)}>${' '.repeat(17)}]`);
  const json = sink();
  new ServiceProgressView(json as never, 'json').onEvent(e('verify', 'Service converged'));
  assert.deepEqual(JSON.parse(json.text), { type: 'progress', service: 'web', id: 'verify', action: 'Service converged' });
});

test('log stream: frames demultiplexed into lines, details parsed', () => {
  const frame = (type: number, text: string) => {
    const h = Buffer.alloc(8);
    h[0] = type;
    h.writeUInt32BE(Buffer.byteLength(text), 4);
    return Buffer.concat([h, Buffer.from(text)]);
  };
  const lines: string[] = [];
  const d = new LogDemuxer((s, l) => lines.push(`${s}:${l}`));
  const all = Buffer.concat([frame(1, 'one\ntw'), frame(1, 'o\n'), frame(2, 'err\n'), frame(1, 'tail')]);
  d.push(all.subarray(0, 5));
  d.push(all.subarray(5, 20));
  d.push(all.subarray(20));
  d.end();
  assert.deepEqual(lines, ['stdout:one', 'stdout:two', 'stderr:err', 'stdout:tail']);
  assert.deepEqual(parseLogDetails('com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1'), { node: 'n1', service: 's1', task: 't1' });
});

const node = (id: string, host: string, over: Partial<EngineNode> = {}): EngineNode => ({
  ID: id, Version: { Index: 1 }, Spec: { Role: 'worker', Availability: 'active', Labels: { 'swarmform.host': host } }, Description: { Hostname: host, Engine: { EngineVersion: '20.10.24' } }, Status: { State: 'ready' }, ...over,
});

test('nodes: found by inventory name, hostname or ID prefix; updates validated; ls rows', () => {
  const nodes = [node('abc123', 'mgr-1', { ManagerStatus: { Leader: true } }), node('abd456', 'worker-1'), node('xyz789', 'worker-2')];
  assert.equal(findNode(nodes, 'worker-1').ID, 'abd456');
  assert.equal(findNode(nodes, 'xyz').ID, 'xyz789');
  assert.throws(() => findNode(nodes, 'ab'), /ambiguous/);
  assert.throws(() => findNode(nodes, 'nope'), /no such node: nope/);
  const spec = nodeUpdateSpec(nodes[1]!.Spec, { availability: 'drain', labelAdd: ['disk=ssd'], labelRm: [] });
  assert.deepEqual(spec, { Role: 'worker', Availability: 'drain', Labels: { 'swarmform.host': 'worker-1', disk: 'ssd' } });
  assert.equal(nodes[1]!.Spec.Availability, 'active', 'not mutated');
  assert.throws(() => nodeUpdateSpec(spec, { availability: 'off', labelAdd: [], labelRm: [] }), /--availability: invalid "off"/);
  assert.throws(() => nodeUpdateSpec(spec, { labelAdd: [], labelRm: ['nope'] }), /does not exist/);
  assert.throws(() => nodeUpdateSpec(spec, { labelAdd: [], labelRm: ['swarmform.host'] }), /swarmform keeps it/);
  const rows = nodeRows(nodes);
  assert.deepEqual(rows[0], { id: 'abc123', hostname: 'mgr-1', status: 'Ready', availability: 'Active', managerStatus: 'Leader', engineVersion: '20.10.24' });
});

test('network create: overlay only, attachable, subnets', () => {
  const body = networkCreateBody({ name: 'backend', driver: 'overlay', attachable: true, internal: false, subnet: ['10.20.0.0/24'], gateway: [], label: [], opt: ['encrypted'] });
  assert.equal(body.Attachable, true);
  assert.deepEqual(body.Options, { encrypted: '' });
  assert.deepEqual(body.IPAM, { Driver: 'default', Config: [{ Subnet: '10.20.0.0/24' }] });
  assert.throws(() => networkCreateBody({ name: 'b', driver: 'bridge', attachable: false, internal: false, subnet: [], gateway: [], label: [], opt: [] }), /need -d overlay/);
  assert.throws(() => networkCreateBody({ name: 'b', driver: 'overlay', attachable: false, internal: false, subnet: ['10.0.0.0'], gateway: [], label: [], opt: [] }), /--subnet: invalid/);
});

test('env: DOCKER_HOST for each shell, and the ssh config docker needs', () => {
  const r: EnvResult = {
    cluster: 'lab', manager: 'mgr-1', isLeader: true, dockerHost: 'ssh://root@198.18.0.2:22',
    ssh: { host: '198.18.0.2', port: 22, user: 'root', keyPath: '/k/id', knownHosts: '/s/known_hosts' },
  };
  const bash = formatEnv(r, 'bash');
  assert.match(bash, /^export DOCKER_HOST="ssh:\/\/root@198\.18\.0\.2:22"$/m);
  assert.match(bash, /^# eval \$\(swarmform env\)$/m);
  assert.match(bash, /docker CLI there/);
  assert.match(formatEnv(r, 'fish'), /^set -gx DOCKER_HOST "ssh:\/\/root@198\.18\.0\.2:22";$/m);
  assert.match(formatEnv(r, 'powershell'), /^\$Env:DOCKER_HOST = "ssh:\/\/root@198\.18\.0\.2:22"$/m);
  assert.match(formatEnv(r, 'cmd'), /^SET DOCKER_HOST=ssh:\/\/root@198\.18\.0\.2:22$/m);
  assert.match(formatEnv(r, 'bash', { unset: true }), /^unset DOCKER_HOST$/m);
  assert.match(formatEnv(r, 'fish', { unset: true }), /^set -e DOCKER_HOST;$/m);
  assert.equal(sshConfigStanza(r), 'Host 198.18.0.2\n  User root\n  Port 22\n  IdentityFile /k/id\n  IdentitiesOnly yes\n  UserKnownHostsFile /s/known_hosts\n  StrictHostKeyChecking yes');
  assert.equal(detectShell({ SHELL: '/usr/bin/fish' }), 'fish');
  assert.equal(detectShell({}), 'bash');
});
