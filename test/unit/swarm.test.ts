import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planQuorum } from '../../src/raft/quorum.js';
import { advertiseAddress } from '../../src/swarm/advertise.js';
import { SPEC_HASH_LABEL, toEngineSpec } from '../../src/swarm/service-spec.js';
import type { Machine } from '../../src/base/machine.js';
import type { ServiceSpec } from '../../src/inventory/types.js';

test('quorum sizes and warnings', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 7, 9].map((n) => [planQuorum(n).quorum, planQuorum(n).tolerates]), [
    [1, 0], [2, 0], [2, 1], [3, 1], [3, 2], [4, 3], [5, 4],
  ]);
  assert.equal(planQuorum(3).warnings.length, 0);
  assert.match(planQuorum(4).warnings.join(), /odd/);
  assert.match(planQuorum(9).warnings.join(), /more than 7/);
});

const machine: Machine = {
  name: 'w1', role: 'worker', group: 'workers', provider: 'ssh', providerId: 'x', privateAddress: '10.0.0.5', publicAddress: '192.0.2.5',
  ssh: { host: '192.0.2.5', port: 22, user: 'root' }, labels: {}, init: 'detect',
};

test('advertise address: private by default, public or a CIDR on request', () => {
  assert.equal(advertiseAddress(machine, { kind: 'private' }), '10.0.0.5');
  assert.equal(advertiseAddress(machine, { kind: 'public' }), '192.0.2.5');
  assert.equal(advertiseAddress(machine, { kind: 'cidr', cidr: '172.16.0.0/12' }, ['172.17.3.4']), '172.17.3.4');
  assert.throws(() => advertiseAddress(machine, { kind: 'cidr', cidr: '172.16.0.0/12' }), /w1: advertise address: no address .* inside 172\.16\.0\.0\/12/);
});

test('service spec: host-mode ports, labels, and a hash that changes only with the spec', () => {
  const s: ServiceSpec = {
    name: 'web', image: 'swarmform/busybox:latest', mode: 'replicated', replicas: 3, command: ['httpd', '-f'], env: { A: '1' },
    ports: [{ published: 8080, target: 80, protocol: 'tcp', mode: 'host' }], constraints: ['node.role == worker'], labels: {},
  };
  const spec = toEngineSpec(s, 'lab') as { Labels: Record<string, string>; EndpointSpec: { Ports: { PublishMode: string }[] }; Mode: unknown };
  assert.equal(spec.EndpointSpec.Ports[0]!.PublishMode, 'host');
  assert.deepEqual(spec.Mode, { Replicated: { Replicas: 3 } });
  assert.equal(spec.Labels['swarmform.cluster'], 'lab');
  const same = toEngineSpec({ ...s }, 'lab') as typeof spec;
  const other = toEngineSpec({ ...s, replicas: 4 }, 'lab') as typeof spec;
  assert.equal(same.Labels[SPEC_HASH_LABEL], spec.Labels[SPEC_HASH_LABEL]);
  assert.notEqual(other.Labels[SPEC_HASH_LABEL], spec.Labels[SPEC_HASH_LABEL]);
  assert.deepEqual((toEngineSpec({ ...s, mode: 'global' }, 'lab') as typeof spec).Mode, { Global: {} });
});
