import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { EventBus, type SwarmformEvent } from '../../src/base/events.js';
import {
  aggregateLine,
  chooseMode,
  createRenderer,
  formatSummary,
  normaliseCause,
  PhaseProgress,
  summary,
} from '../../src/cli/render/index.js';
import { Feed, fanout, phase, skip } from '../../src/run/index.js';

/** A stream that records what is written; `tty` decides which renderer createRenderer picks. */
function sink(tty = false, columns = 120) {
  const chunks: string[] = [];
  return {
    stream: { isTTY: tty, columns, rows: 50, write: (s: string) => (chunks.push(s), true) },
    text: () => chunks.join(''),
    plain: () => chunks.join('').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ''),
  };
}

const joinToken = () => ['SWMTKN', '1', randomBytes(25).toString('hex'), randomBytes(12).toString('hex')].join('-');

const T = 1_000_000;
type E = SwarmformEvent;
const start = (total: number, ts = T): E => ({ type: 'phase', phase: 'swarm', status: 'start', total, ts });
const step = (host: string, status: 'start' | 'ok' | 'fail' | 'skip' | 'retry', ts: number, extra: Partial<E> = {}): E =>
  ({ type: 'step', phase: 'swarm', host, step: 'join worker', status, ts, ...extra }) as E;

describe('chooseMode', () => {
  it('json, then plain without a terminal, rows up to 30 hosts, aggregate beyond', () => {
    assert.equal(chooseMode({ json: true, hosts: 3, tty: true }), 'json');
    assert.equal(chooseMode({ json: false, hosts: 3, tty: false }), 'plain');
    assert.equal(chooseMode({ json: false, hosts: 4700, tty: false }), 'plain');
    assert.equal(chooseMode({ json: false, hosts: 30, tty: true }), 'rows');
    assert.equal(chooseMode({ json: false, hosts: 31, tty: true }), 'aggregate');
    assert.equal(createRenderer({ json: false, hosts: 2384, stream: sink(true).stream }).mode, 'aggregate');
  });
});

describe('json renderer', () => {
  it('writes one parseable, redacted line per event and nothing else', async () => {
    const out = sink(true);
    const bus = new EventBus();
    const r = createRenderer({ json: true, hosts: 3, stream: out.stream });
    assert.equal(r.mode, 'json');
    bus.on(r.listener);
    const token = joinToken();
    await phase(bus, 'swarm', 3, () =>
      fanout(
        ['manager-1', 'worker-1', 'worker-2'],
        async (h) => {
          if (h === 'worker-2') throw new Error(`join failed: docker swarm join --token ${token}`);
          return h;
        },
        { phase: 'swarm', step: 'join', key: (h) => h, concurrency: 2, events: bus },
      ),
    );
    bus.warn(`token leaked? ${token}`);
    bus.emit({ type: 'result', command: 'up', data: { changed: 2 } });
    await r.done();
    const text = out.text();
    assert.ok(!text.includes(token));
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, 1 + 6 + 1 + 1 + 1, 'phase start, 3 starts + 3 outcomes, phase end, warning, result');
    const parsed = lines.map((l) => JSON.parse(l) as E & Record<string, unknown>);
    assert.ok(parsed.every((e) => typeof e.type === 'string' && typeof e.ts === 'number'));
    const kinds = parsed.map((e) => (e.type === 'step' ? `${e.host}:${e.status}` : e.type === 'phase' ? `phase:${e.status}` : e.type));
    assert.deepEqual([kinds[0], ...kinds.slice(-3)], ['phase:start', 'phase:end', 'log', 'result']);
    assert.deepEqual(kinds.slice(1, -3).sort(), ['manager-1:ok', 'manager-1:start', 'worker-1:ok', 'worker-1:start', 'worker-2:fail', 'worker-2:start']);
    const fail = parsed.find((e) => e.type === 'step' && e.status === 'fail') as Extract<E, { type: 'step' }>;
    assert.deepEqual(Object.keys(fail).sort(), ['host', 'message', 'ms', 'phase', 'status', 'step', 'ts', 'type']);
    assert.equal(fail.message, 'join failed: docker swarm join --token [redacted]');
    assert.deepEqual(r.summary(), ['1 host: join: join failed: docker swarm join --token [redacted] (worker-2)']);
  });
});

describe('plain renderer', () => {
  it('small cluster with --verbose: a line per phase edge, host step outcome, retry, warning and info, with relative times', async () => {
    const out = sink(false);
    const r = createRenderer({ json: false, hosts: 3, stream: out.stream, startTs: T, verbose: true });
    assert.equal(r.mode, 'plain');
    const token = joinToken();
    const events: E[] = [
      start(3),
      step('worker-1', 'start', T + 100),
      step('worker-1', 'ok', T + 1200, { ms: 1100 }),
      step('worker-2', 'start', T + 150),
      step('worker-2', 'retry', T + 1300, { attempt: 2, ms: 400, message: 'connection refused' }),
      step('worker-2', 'fail', T + 2300, { ms: 2000, message: 'worker-2: join worker: connection refused' }),
      step('worker-3', 'skip', T + 2400, { message: 'already a member' }),
      { type: 'log', level: 'warn', message: `manager-1 is also a worker ${token}`, ts: T + 2500 },
      { type: 'log', level: 'info', message: 'all 2 nodes Ready', ts: T + 2600 },
      { type: 'phase', phase: 'swarm', status: 'end', ok: 1, failed: 1, skipped: 1, ms: 2700, ts: T + 2700 },
      { type: 'result', command: 'up', data: {}, ts: T + 2800 },
    ];
    for (const e of events) r.listener(e);
    await r.done();
    assert.deepEqual(out.text().split('\n'), [
      '[   0.0s] swarm: started, 3 hosts',
      '[   1.2s] worker-1: join worker: ok (1.1s)',
      '[   1.3s] worker-2: join worker: retry 2 in 400ms: connection refused',
      '[   2.3s] worker-2: join worker: failed: connection refused (2.0s)',
      '[   2.4s] worker-3: join worker: skipped: already a member',
      '[   2.5s] warning: manager-1 is also a worker [redacted]',
      '[   2.6s] all 2 nodes Ready',
      '[   2.7s] swarm: 1 ok, 1 failed, 1 skipped (2.7s)',
      '',
    ]);
  });

  it('small cluster: skipped steps summed up in one line at the end of their phase, failures and done steps as they come', async () => {
    const out = sink(false);
    const r = createRenderer({ json: false, hosts: 4, stream: out.stream, startTs: T });
    const events: E[] = [
      start(4),
      step('worker-1', 'skip', T + 100, { message: 'already a member' }),
      step('worker-2', 'skip', T + 200, { message: 'already a member' }),
      step('worker-3', 'ok', T + 300, { ms: 200 }),
      step('worker-4', 'skip', T + 400, { message: 'drained' }),
      step('worker-4', 'fail', T + 500, { message: 'worker-4: join worker: connection refused' }),
      { type: 'phase', phase: 'swarm', status: 'end', ok: 1, failed: 1, skipped: 2, ms: 600, ts: T + 600 },
    ];
    for (const e of events) r.listener(e);
    await r.done();
    assert.deepEqual(out.text().split('\n'), [
      '[   0.0s] swarm: started, 4 hosts',
      '[   0.3s] worker-3: join worker: ok (200ms)',
      '[   0.5s] worker-4: join worker: failed: connection refused',
      '[   0.6s] swarm: skipped for 3 hosts: already a member (2); drained (--verbose lists each)',
      '[   0.6s] swarm: 1 ok, 1 failed, 2 skipped (600ms)',
      '',
    ]);
  });

  it('large cluster: no per-host success lines, failures always, progress at most every 5 s', async () => {
    const out = sink(false);
    const r = createRenderer({ json: false, hosts: 500, stream: out.stream, startTs: T });
    r.listener({ type: 'phase', phase: 'swarm', status: 'start', total: 500, ts: T });
    for (let i = 0; i < 500; i++) {
      const ts = T + i * 40; // 20 s in all
      r.listener(step(`worker-${i}`, 'start', ts));
      if (i % 100 === 7) r.listener(step(`worker-${i}`, 'fail', ts + 10, { message: 'connection refused' }));
      else r.listener(step(`worker-${i}`, 'ok', ts + 10, { ms: 10 }));
    }
    r.listener({ type: 'phase', phase: 'swarm', status: 'end', ok: 495, failed: 5, skipped: 0, ms: 20_000, ts: T + 20_000 });
    await r.done();
    const lines = out.text().trimEnd().split('\n');
    assert.equal(lines.filter((l) => l.includes(': ok')).length, 0);
    assert.equal(lines.filter((l) => l.includes('failed: connection refused')).length, 5);
    const progress = lines.filter((l) => / done, \d+ failed, \d+ running, [\d.]+\/s, ETA /.test(l));
    assert.equal(progress.length, 3, progress.join('\n'));
    assert.match(progress[0], /^\[ {3}5\.0s\] swarm: 1\d\d\/500 done, \d failed, 1 running, [\d.]+\/s, ETA 0:\d\d$/);
    assert.equal(lines.at(-1), '[  20.0s] swarm: 495 ok, 5 failed, 0 skipped (20.0s)');
  });

  it('collapses cancelled hosts into one line at the end of the phase', async () => {
    const out = sink(false);
    const bus = new EventBus();
    const r = createRenderer({ json: false, hosts: 10, stream: out.stream });
    bus.on(r.listener);
    const ac = new AbortController();
    ac.abort();
    await phase(bus, 'bootstrap', 10, () =>
      fanout(Array.from({ length: 10 }, (_, i) => `h${i}`), async () => 1, {
        phase: 'bootstrap',
        step: 'install',
        key: (h) => h,
        concurrency: 2,
        events: bus,
        signal: ac.signal,
      }),
    );
    await r.done();
    const lines = out.text().trimEnd().split('\n').map((l) => l.slice(10));
    assert.deepEqual(lines, ['bootstrap: started, 10 hosts', 'bootstrap: 10 hosts not started: cancelled', lines[2]]);
    assert.match(lines[2], /^bootstrap: 0 ok, 10 failed, 0 skipped/);
  });
});

describe('aggregate renderer', () => {
  it('formats the progress line with rate and ETA', () => {
    const p = new PhaseProgress('swarm', 2384, 0);
    for (let i = 0; i < 1550; i++) {
      p.step({ type: 'step', phase: 'swarm', host: `w${i}`, step: 'join', status: 'start', ts: 0 });
      if (i < 1532) p.step({ type: 'step', phase: 'swarm', host: `w${i}`, step: 'join', status: 'ok', ts: 0 });
      else if (i < 1535) p.step({ type: 'step', phase: 'swarm', host: `w${i}`, step: 'join', status: 'fail', message: 'refused', ts: 0 });
    }
    // 1535 finished in 37.2 s: 41.3/s; 849 left: ETA 0:21.
    assert.equal(aggregateLine(p, 37_200), 'swarm      1532/2384 done  3 failed  15 running  41.3/s  ETA 0:21');
  });

  it('redraws in place: live line with recent failures, permanent lines above it, final line at the end', async () => {
    const out = sink(true, 200);
    let now = T;
    const r = createRenderer({ json: false, hosts: 100, stream: out.stream, startTs: T, now: () => now });
    assert.equal(r.mode, 'aggregate');
    r.listener(start(100));
    for (let i = 0; i < 40; i++) {
      r.listener(step(`worker-${i}`, 'start', T + i));
      if (i < 35) r.listener(step(`worker-${i}`, i % 10 === 3 ? 'fail' : 'ok', T + i, { message: `connection refused ${i}` }));
    }
    now = T + 10_000;
    r.listener({ type: 'log', level: 'warn', message: `check 4789/udp ${joinToken()}`, ts: now });
    const afterWarn = out.plain();
    assert.match(afterWarn, /warning: check 4789\/udp \[redacted\]\n/);
    // 35 finished in 10 s: 3.5/s; 65 left: 0:19.
    assert.match(afterWarn, /swarm {6}31\/100 done {2}4 failed {2}5 running {2}3\.5\/s {2}ETA 0:19\n/);
    assert.match(afterWarn, /  ✖ worker-13: join worker: connection refused 13\n  ✖ worker-23: join worker: connection refused 23\n  ✖ worker-33: join worker: connection refused 33\n$/);
    assert.ok(out.text().includes('\x1b[0J'), 'the live region is cleared before a redraw');
    r.listener({ type: 'phase', phase: 'swarm', status: 'end', ok: 96, failed: 4, skipped: 0, ms: 12_300, ts: T + 12_300 });
    await r.done();
    assert.match(out.plain(), /swarm {6}96\/100 done {2}4 failed {2}in 12\.3s\n$/);
    assert.deepEqual(r.summary(), ['4 hosts: join worker: connection refused N (worker-3, worker-13, worker-23, worker-33)']);
  });
});

describe('rows renderer (listr2)', () => {
  it('draws a task per phase and a row per host, failed hosts with their message', async () => {
    const out = sink(true);
    const bus = new EventBus();
    const r = createRenderer({ json: false, hosts: 4, stream: out.stream, tty: true });
    assert.equal(r.mode, 'rows');
    bus.on(r.listener);
    const token = joinToken();
    await phase(bus, 'bootstrap', 4, () =>
      fanout(
        ['manager-1', 'worker-1', 'worker-2', 'worker-3'],
        async (h) => {
          bus.emit({ type: 'step', phase: 'bootstrap', host: h, step: 'install engine', status: 'start' });
          await new Promise((res) => setTimeout(res, 20));
          bus.emit({ type: 'step', phase: 'bootstrap', host: h, step: 'install engine', status: 'ok', ms: 20 });
          if (h === 'worker-2') throw new Error(`apt-get failed ${token}`);
          if (h === 'worker-3') return skip('engine 27.1 already running');
          return 'installed';
        },
        { phase: 'bootstrap', step: 'bootstrap', key: (h) => h, concurrency: 4, events: bus },
      ),
    );
    bus.warn('firewall: ufw inactive');
    await r.done();
    const text = out.plain();
    assert.ok(!out.text().includes(token));
    const final = text.slice(text.lastIndexOf('bootstrap  '));
    assert.match(final, /bootstrap {2}3\/4 hosts, 1 failed \(\d+ms\)/);
    assert.match(final, /✔ manager-1 {2}bootstrap \(\d+ms\)/);
    assert.match(final, /✖ worker-2 {2}bootstrap: apt-get failed \[redacted\]/);
    assert.match(final, /↓ worker-3 {2}bootstrap: engine 27\.1 already running/);
    assert.match(text, /warning: firewall: ufw inactive/);
    assert.deepEqual(r.summary(), ['1 host: bootstrap: apt-get failed [redacted] (worker-2)']);
  });

  it('a phase that starts while another is open (bootstrap during provision) keeps both, each with its own rows', async () => {
    const out = sink(true);
    const bus = new EventBus();
    const r = createRenderer({ json: false, hosts: 3, stream: out.stream, tty: true });
    bus.on(r.listener);
    const hosts = ['mgr-1', 'worker-1', 'worker-2'];
    // Each host is bootstrapped as soon as it is created, while the others are still being created (as `up` does).
    const arrived = new Feed<string>();
    const provisioning = phase(bus, 'provision', 3, async () => {
      try {
        return await fanout(hosts, async (h) => {
          await new Promise((res) => setTimeout(res, 10 * (hosts.indexOf(h) + 1)));
          arrived.push(h);
          return 'created';
        }, { phase: 'provision', step: 'create host', key: (h) => h, concurrency: 3, events: bus });
      } finally {
        arrived.close();
      }
    });
    const booting = phase(bus, 'bootstrap', 3, () =>
      fanout(arrived, async (h) => {
        bus.emit({ type: 'step', phase: 'bootstrap', host: h, step: 'install engine', status: 'start' });
        await new Promise((res) => setTimeout(res, 40));
        bus.emit({ type: 'step', phase: 'bootstrap', host: h, step: 'install engine', status: 'ok', ms: 40 });
        return 'engine 20.10';
      }, { phase: 'bootstrap', step: 'bootstrap', key: (h) => h, concurrency: 3, events: bus }),
    );
    await Promise.all([provisioning, booting]);
    await r.done();
    const text = out.plain();
    assert.match(text, /provision {2}3\/3 hosts \(\d+ms\)/);
    // Bootstrap's rows are drawn after provision's, each host's row ending done.
    const boot = text.slice(text.lastIndexOf('provision  '));
    assert.match(boot, /bootstrap {2}3\/3 hosts \(\d+ms\)\n$/);
    for (const h of hosts) assert.match(boot, new RegExp(`✔ ${h} {2}bootstrap \\(\\d+ms\\)`));
  });
});

describe('summary', () => {
  const fail = (host: string, message: string, stepName = 'ssh'): E => ({
    type: 'step',
    phase: 'bootstrap',
    host,
    step: stepName,
    status: 'fail',
    message,
    ts: 0,
  });

  it('groups identical causes: 3 hosts: ssh: connection refused (worker-1, worker-7, worker-9)', () => {
    const groups = summary([
      fail('worker-9', 'connection refused'),
      fail('worker-1', 'worker-1: ssh: connection refused'),
      fail('worker-7', 'connection refused'),
      { type: 'step', phase: 'bootstrap', host: 'worker-2', step: 'ssh', status: 'ok', ts: 0 },
    ]);
    assert.deepEqual(formatSummary(groups), ['3 hosts: ssh: connection refused (worker-1, worker-7, worker-9)']);
  });

  it('normalises host names, addresses, ids and numbers, biggest groups first', () => {
    const events = [
      fail('worker-1', 'connect ECONNREFUSED 10.0.0.11:22'),
      fail('worker-7', 'connect ECONNREFUSED 10.0.0.17:22'),
      fail('worker-9', 'worker-9: ssh: connect ECONNREFUSED [fd00::9]:22'),
      fail('worker-3', 'timed out after 30000ms waiting for node 4f1c2a9b8e7d6c5b', 'join worker'),
      fail('worker-4', 'worker-4 has no route to manager-2', 'join worker'),
      fail('worker-5', 'worker-5 has no route to manager-3', 'join worker'),
    ];
    assert.deepEqual(formatSummary(summary(events)), [
      '3 hosts: ssh: connect ECONNREFUSED <addr> (worker-1, worker-7, worker-9)',
      '2 hosts: join worker: <host> has no route to manager-N (worker-4, worker-5)',
      '1 host: join worker: timed out after 30000ms waiting for node 4f1c2a9b8e7d6c5b (worker-3)',
    ]);
    assert.equal(normaliseCause('timed out after 30000ms on 10.1.2.3', 'x'), 'timed out after Nms on <addr>');
  });

  it('lists at most a few hosts per group', () => {
    const events = Array.from({ length: 12 }, (_, i) => fail(`node-${i + 1}`, 'permission denied (publickey)'));
    assert.deepEqual(formatSummary(summary(events), { maxHosts: 3 }), ['12 hosts: ssh: permission denied (publickey) (node-1, node-2, node-3, +9 more)']);
  });
});
