/** What a user sees at scale: the aggregate view's step breakdown, failures grouped once per host, status summaries. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRenderer, formatSummary, summary } from '../../src/cli/render/index.js';
import { StepCounts } from '../../src/cli/render/aggregate-renderer.js';
import { formatStatus } from '../../src/cli/format.js';
import type { SwarmformEvent } from '../../src/base/events.js';
import type { ClusterStatus, NodeStatus } from '../../src/swarm/status.js';

type E = SwarmformEvent;
const T = 1_000_000;
const step = (host: string, name: string, status: 'start' | 'ok' | 'fail', message?: string): E =>
  ({ type: 'step', phase: 'bootstrap', host, step: name, status, message, ts: T }) as E;

describe('aggregate view at scale', () => {
  it('shows what the running hosts are doing, leaving out the fan-out step named like the phase', async () => {
    const chunks: string[] = [];
    const r = createRenderer({ json: false, hosts: 4700, mode: 'aggregate', stream: { isTTY: true, columns: 200, write: (s: string) => (chunks.push(s), true) }, now: () => T });
    r.listener({ type: 'phase', phase: 'bootstrap', status: 'start', total: 4700, ts: T });
    for (let i = 0; i < 5; i++) {
      r.listener(step(`w-${i}`, 'bootstrap', 'start'));
      r.listener(step(`w-${i}`, 'facts', 'start'));
      r.listener(step(`w-${i}`, 'facts', 'ok'));
      r.listener(step(`w-${i}`, 'install engine', 'start'));
    }
    r.listener(step('w-4', 'install engine', 'fail', 'w-4: install engine: command failed (exit 100): E: 503\nE: Unable to fetch'));
    r.listener(step('w-4', 'bootstrap', 'fail', 'w-4: install engine: command failed (exit 100): E: 503\nE: Unable to fetch'));
    r.listener(step('w-0', 'start engine', 'start'));
    r.listener({ type: 'log', level: 'warn', message: 'redraw', ts: T });
    const text = chunks.join('').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    assert.match(text, /bootstrap +0\/4700 done {2}1 failed {2}4 running/);
    assert.match(text, /\n {2}now: install engine 4, start engine 1\n/);
    assert.match(text, /✖ w-4: install engine: command failed \(exit 100\): E: 503\n/, 'failures stay one line each');
    await r.done();
    assert.deepEqual(r.summary(), ['1 host: install engine: command failed (exit 100): E: 503 | E: Unable to fetch (w-4)']);
  });

  it('step counts are O(1) per event and forget a phase when it ends', () => {
    const c = new StepCounts();
    for (let i = 0; i < 10_000; i++) c.step(step(`w-${i}`, 'facts', 'start') as never);
    for (let i = 0; i < 9_990; i++) c.step(step(`w-${i}`, 'facts', 'ok') as never);
    assert.equal(c.line('bootstrap'), 'facts 10');
    c.clear('bootstrap');
    assert.equal(c.line('bootstrap'), '');
  });
});

describe('run summary', () => {
  it('groups failures by cause and counts each host once per phase', () => {
    const events: E[] = [];
    for (let i = 1; i <= 300; i++) {
      const msg = `worker-${i}: install engine: command failed (exit 100): E: Failed to fetch docker.io 503\nE: Unable to fetch some archives`;
      events.push(step(`worker-${i}`, 'install engine', 'fail', msg), step(`worker-${i}`, 'bootstrap', 'fail', msg));
    }
    for (let i = 301; i <= 320; i++) {
      events.push({ type: 'step', phase: 'swarm', host: `worker-${i}`, step: 'join worker', status: 'fail', message: `worker-${i}: join worker: join via mgr-${i % 3} failed: rpc error: code = Unavailable`, ts: T } as E);
    }
    const groups = summary(events);
    assert.equal(groups.length, 2);
    assert.equal(groups[0]!.hosts.length, 300);
    assert.deepEqual(formatSummary(groups, { maxHosts: 3 }), [
      '300 hosts: install engine: command failed (exit 100): E: Failed to fetch docker.io 503 | E: Unable to fetch some archives (worker-1, worker-2, worker-3, +297 more)',
      '20 hosts: join worker: join via mgr-N failed: rpc error: code = Unavailable (worker-301, worker-302, worker-303, +17 more)',
    ]);
  });
});

describe('status on thousands of nodes', () => {
  const node = (i: number, role: string, state: string): NodeStatus => ({
    name: role === 'manager' ? `mgr-${i}` : `worker-${i}`, hostname: '', id: `id${String(i).padStart(12, '0')}`, role, state,
    availability: role === 'manager' ? 'Drain' : 'Active', managerStatus: role === 'manager' ? (i === 1 ? 'Leader' : 'Reachable') : '', address: '127.64.0.1', engineVersion: '20.10.24',
  });
  const status = (down: number): ClusterStatus => ({
    cluster: 'sim3k', swarmId: 'abcdefabcdefabcdef', manager: 'mgr-1',
    nodes: [1, 2, 3].map((i) => node(i, 'manager', 'Ready')).concat(Array.from({ length: 4697 }, (_, i) => node(i + 1, 'worker', i < down ? 'Down' : 'Ready'))),
    services: [], raft: { managers: 3, reachable: 3, quorum: 2, tolerates: 1, leader: 'mgr-1' },
  } as ClusterStatus);

  it('summarises: counts first, managers, at most 50 not-Ready workers, and says what was left out', () => {
    const text = formatStatus(status(72));
    assert.match(text, /Nodes: 4700 \(3 manager Ready, 72 worker Down, 4625 worker Ready; availability 3 Drain, 4697 Active\)/);
    const rows = text.split('\n').filter((l) => /^id0/.test(l));
    assert.equal(rows.length, 3 + 50);
    assert.match(text, /\.\.\. 4625 Ready worker\(s\) and 22 more not-Ready worker\(s\) not shown \(--all lists every node; --json has them all\)/);
    assert.equal(formatStatus(status(72), { all: true }).split('\n').filter((l) => /^id0/.test(l)).length, 4700);
  });
});
