import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { UsageError } from '../../src/base/errors.js';
import { EventBus, type SwarmformEvent } from '../../src/base/events.js';
import {
  backoffDelay,
  CancelledError,
  Feed,
  fanout,
  isCancelled,
  isRetryable,
  KeyedLimiter,
  notRetryable,
  phase,
  retry,
  skip,
  succeeded,
} from '../../src/run/index.js';

type StepEvent = Extract<SwarmformEvent, { type: 'step' }>;

function recorder(): { bus: EventBus; events: SwarmformEvent[]; steps: (status?: string) => StepEvent[] } {
  const bus = new EventBus();
  const events: SwarmformEvent[] = [];
  bus.on((e) => events.push(e));
  const steps = (status?: string) =>
    events.filter((e): e is StepEvent => e.type === 'step' && (status === undefined || e.status === status));
  return { bus, events, steps };
}

const names = (n: number, prefix = 'host') => Array.from({ length: n }, (_, i) => `${prefix}-${i + 1}`);

describe('fanout', () => {
  it('never exceeds the concurrency cap, and reaches it', async () => {
    const { bus } = recorder();
    let inFlight = 0;
    let max = 0;
    const r = await fanout(
      names(100),
      async (h) => {
        inFlight++;
        max = Math.max(max, inFlight);
        await delay(1 + (h.length % 4));
        inFlight--;
        return h.toUpperCase();
      },
      { phase: 'bootstrap', step: 'probe', key: (h) => h, concurrency: 7, events: bus },
    );
    assert.equal(max, 7);
    assert.equal(r.done.length, 100);
    assert.equal(r.failed.length, 0);
    assert.equal(r.cancelled, false);
    assert.ok(r.done.every((d) => d.value === d.item.toUpperCase()));
  });

  it('holds the per-key limit on top of the global cap, without starving other keys', async () => {
    const { bus } = recorder();
    const items = names(60).map((name, i) => ({ name, manager: `manager-${(i % 3) + 1}` }));
    const perKey = new Map<string, number>();
    let maxPerKey = 0;
    let inFlight = 0;
    let max = 0;
    const r = await fanout(
      items,
      async (w) => {
        inFlight++;
        max = Math.max(max, inFlight);
        const n = (perKey.get(w.manager) ?? 0) + 1;
        perKey.set(w.manager, n);
        maxPerKey = Math.max(maxPerKey, n);
        await delay(2);
        perKey.set(w.manager, perKey.get(w.manager)! - 1);
        inFlight--;
        return w.manager;
      },
      {
        phase: 'swarm',
        step: 'join worker',
        key: (w) => w.name,
        concurrency: 50,
        events: bus,
        keyLimit: { key: (w) => w.manager, limit: 2 },
      },
    );
    assert.equal(r.done.length, 60);
    assert.equal(maxPerKey, 2);
    assert.equal(max, 6, 'three keys of two each run together');
  });

  it('retries with exponential backoff and full jitter, reporting each retry', async () => {
    const { bus, steps } = recorder();
    const attempts: number[] = [];
    const r = await fanout(
      ['flaky'],
      async (_h, ctx) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt < 3) throw new Error(`connection refused (attempt ${ctx.attempt})`);
        return 'up';
      },
      {
        phase: 'bootstrap',
        step: 'ssh',
        key: (h) => h,
        concurrency: 4,
        events: bus,
        retry: { retries: 5, minMs: 10, maxMs: 1000, factor: 3, random: () => 0.999999 },
      },
    );
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.equal(r.done.length, 1);
    const retries = steps('retry');
    assert.deepEqual(
      retries.map((e) => [e.attempt, e.ms, e.message]),
      [
        [2, 9, 'connection refused (attempt 1)'],
        [3, 29, 'connection refused (attempt 2)'],
      ],
    );
    const ok = steps('ok')[0];
    assert.equal(ok.host, 'flaky');
    assert.equal(ok.attempt, 3);
    assert.equal(typeof ok.ms, 'number');
  });

  it('stops at the retry limit and reports the last error', async () => {
    const { bus, steps } = recorder();
    let calls = 0;
    const r = await fanout(
      ['down-host'],
      async () => {
        calls++;
        throw new Error(`timeout ${calls}`);
      },
      { phase: 'bootstrap', step: 'ssh', key: (h) => h, concurrency: 1, events: bus, retry: { retries: 2, minMs: 1, maxMs: 2 } },
    );
    assert.equal(calls, 3);
    assert.equal(r.failed.length, 1);
    assert.equal(r.failed[0].error.message, 'timeout 3');
    assert.equal(steps('retry').length, 2);
    const fail = steps('fail')[0];
    assert.equal(fail.message, 'timeout 3');
    assert.equal(fail.attempt, 3);
  });

  it('does not retry usage errors, errors marked retryable=false, or a custom predicate', async () => {
    const { bus } = recorder();
    const calls = new Map<string, number>();
    const policy = { retries: 5, minMs: 1, maxMs: 1 };
    const r = await fanout(
      ['usage', 'marked', 'plain'],
      async (h) => {
        calls.set(h, (calls.get(h) ?? 0) + 1);
        if (h === 'usage') throw new UsageError('bad option');
        if (h === 'marked') throw notRetryable(new Error('host key mismatch'));
        throw new Error('no route');
      },
      { phase: 'bootstrap', step: 'x', key: (h) => h, concurrency: 3, events: bus, retry: { ...policy, retryable: (e) => e.message !== 'no route' } },
    );
    assert.deepEqual(Object.fromEntries(calls), { usage: 1, marked: 1, plain: 1 });
    assert.equal(r.failed.length, 3);
    assert.equal(isRetryable(new UsageError('x')), false);
    assert.equal(isRetryable(new CancelledError()), false);
    assert.equal(isRetryable(new Error('x')), true);
  });

  it('keeps going when an item fails, and never throws for item failures', async () => {
    const { bus, steps } = recorder();
    const r = await fanout(
      names(10),
      async (h) => {
        if (h === 'host-4') throw new Error('disk full');
        if (h === 'host-7') throw 'a string';
        return h;
      },
      { phase: 'bootstrap', step: 'install', key: (h) => h, concurrency: 3, events: bus },
    );
    assert.equal(r.done.length, 8);
    assert.deepEqual(r.failed.map((f) => [f.item, f.error.message]).sort(), [
      ['host-4', 'disk full'],
      ['host-7', 'a string'],
    ]);
    assert.equal(steps('start').length, 10);
    assert.equal(steps('ok').length, 8);
    assert.deepEqual(steps('fail').map((e) => e.host).sort(), ['host-4', 'host-7']);
  });

  it('reports skip markers, from skip() or of the same shape', async () => {
    const { bus, steps } = recorder();
    const r = await fanout(
      ['a', 'b', 'c'],
      async (h) => {
        if (h === 'a') return skip('already installed');
        if (h === 'b') return { skipped: true as const, message: 'already joined' };
        return 42;
      },
      { phase: 'bootstrap', step: 'install', key: (h) => h, concurrency: 3, events: bus },
    );
    assert.deepEqual(r.done, [{ item: 'c', value: 42 }]);
    assert.deepEqual(r.skipped, [
      { item: 'a', message: 'already installed' },
      { item: 'b', message: 'already joined' },
    ]);
    assert.deepEqual(steps('skip').map((e) => [e.host, e.message]), [
      ['a', 'already installed'],
      ['b', 'already joined'],
    ]);
    assert.deepEqual(succeeded(r).sort(), ['a', 'b', 'c']);
  });

  it('quiet: emits only failures', async () => {
    const { bus, events } = recorder();
    await fanout(['a', 'b'], async (h) => (h === 'b' ? Promise.reject(new Error('nope')) : h), {
      phase: 'swarm',
      step: 'state',
      key: (h) => h,
      concurrency: 2,
      events: bus,
      quiet: true,
    });
    assert.deepEqual(
      events.map((e) => (e.type === 'step' ? [e.host, e.status] : e.type)),
      [['b', 'fail']],
    );
  });

  it('cancellation: nothing new starts, in-flight work sees the signal, unstarted items fail as cancelled', async () => {
    const { bus, steps } = recorder();
    const ac = new AbortController();
    let started = 0;
    let startedAfterAbort = 0;
    let sawAbort = 0;
    const run = fanout(
      names(50),
      async (_h, ctx) => {
        started++;
        if (ac.signal.aborted) startedAfterAbort++;
        await new Promise<void>((resolve) => {
          if (ctx.signal.aborted) return resolve();
          ctx.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        sawAbort++;
        throw new CancelledError('interrupted', { cause: ctx.signal.reason });
      },
      { phase: 'bootstrap', step: 'install', key: (h) => h, concurrency: 5, events: bus, signal: ac.signal },
    );
    await delay(20);
    ac.abort();
    const r = await run;
    assert.equal(started, 5);
    assert.equal(startedAfterAbort, 0);
    assert.equal(sawAbort, 5);
    assert.equal(r.cancelled, true);
    assert.equal(r.failed.length, 50);
    const unstarted = r.failed.filter((f) => f.error.message === 'cancelled');
    assert.equal(unstarted.length, 45);
    assert.ok(unstarted.every((f) => isCancelled(f.error) && f.error instanceof CancelledError));
    assert.deepEqual(unstarted.map((f) => f.item), names(50).slice(5), 'in input order');
    assert.equal(steps('fail').length, 50);
  });

  it('cancellation also reports items parked behind a per-key limit', async () => {
    const { bus } = recorder();
    const ac = new AbortController();
    const items = names(20).map((name) => ({ name, manager: 'manager-1' }));
    const run = fanout(
      items,
      async (_w, ctx) => {
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
        return 'stopped';
      },
      { phase: 'swarm', step: 'join', key: (w) => w.name, concurrency: 10, events: bus, signal: ac.signal, keyLimit: { key: (w) => w.manager, limit: 3 } },
    );
    await delay(10);
    ac.abort();
    const r = await run;
    assert.equal(r.done.length, 3);
    assert.equal(r.failed.length, 17);
    assert.ok(r.failed.every((f) => isCancelled(f.error)));
  });

  it('an already aborted signal starts nothing', async () => {
    const { bus } = recorder();
    let calls = 0;
    const r = await fanout(names(3), async () => ++calls, {
      phase: 'bootstrap',
      step: 'x',
      key: (h) => h,
      concurrency: 2,
      events: bus,
      signal: AbortSignal.abort(),
    });
    assert.equal(calls, 0);
    assert.equal(r.failed.length, 3);
  });

  it('an empty list resolves at once', async () => {
    const { bus, events } = recorder();
    const r = await fanout([], async () => 1, { phase: 'swarm', step: 'x', key: String, concurrency: 4, events: bus });
    assert.deepEqual([r.done, r.failed, r.skipped], [[], [], []]);
    assert.equal(events.length, 0);
  });

  it('5,000 trivial items finish quickly (time reported, not asserted)', async (t) => {
    const bus = new EventBus();
    let count = 0;
    bus.on(() => count++);
    const items = names(5000, 'node');
    const t0 = performance.now();
    const r = await fanout(items, async (h) => h.length, { phase: 'swarm', step: 'join', key: (h) => h, concurrency: 256, events: bus });
    const ms = performance.now() - t0;
    t.diagnostic(`5000 items, concurrency 256: ${ms.toFixed(1)} ms, ${count} events`);
    assert.equal(r.done.length, 5000);
    assert.equal(count, 10_000);

    const t1 = performance.now();
    const keyed = await fanout(items, async (h) => h.length, {
      phase: 'swarm',
      step: 'join',
      key: (h) => h,
      concurrency: 256,
      events: bus,
      keyLimit: { key: (h) => `manager-${h.length % 5}`, limit: 20 },
    });
    t.diagnostic(`5000 items with a per-key limit: ${(performance.now() - t1).toFixed(1)} ms`);
    assert.equal(keyed.done.length, 5000);
  });

  it('a feed: work starts on the first item before the rest arrive, within the cap, and ends only once it is closed', async () => {
    const { bus } = recorder();
    const feed = new Feed<string>();
    const started: string[] = [];
    let inFlight = 0;
    let max = 0;
    let settled = false;
    const run = fanout(
      feed,
      async (h) => {
        started.push(h);
        max = Math.max(max, ++inFlight);
        await delay(5);
        inFlight--;
        return h;
      },
      { phase: 'bootstrap', step: 'bootstrap', key: (h) => h, concurrency: 3, events: bus },
    ).then((r) => {
      settled = true;
      return r;
    });
    feed.push('a');
    await delay(1);
    assert.deepEqual(started, ['a'], 'the first item started before the second was pushed');
    for (const h of names(9)) feed.push(h);
    await delay(60);
    assert.equal(started.length, 10);
    assert.equal(settled, false, 'an open feed keeps the fan-out going after every pushed item settled');
    feed.push('late');
    feed.close();
    const r = await run;
    assert.equal(r.done.length, 11);
    assert.ok(r.done.some((d) => d.item === 'late'));
    assert.ok(max <= 3, `at most 3 in flight, saw ${max}`);
    assert.throws(() => feed.push('after close'), /after close/);
  });

  it('a feed closed while empty ends at once; after an abort, items pushed later fail as cancelled', async () => {
    const { bus } = recorder();
    const empty = new Feed<string>();
    const none = fanout(empty, async () => 1, { phase: 'bootstrap', step: 'x', key: (h) => h, concurrency: 2, events: bus });
    empty.close();
    assert.equal((await none).done.length, 0);

    const feed = new Feed<string>();
    const ac = new AbortController();
    const run = fanout(feed, async (h) => h, { phase: 'bootstrap', step: 'x', key: (h) => h, concurrency: 2, events: bus, signal: ac.signal });
    feed.push('before');
    await delay(1);
    ac.abort();
    feed.push('after-1');
    feed.push('after-2');
    feed.close();
    const r = await run;
    assert.deepEqual(r.done.map((d) => d.item), ['before']);
    assert.deepEqual(r.failed.map((f) => [f.item, f.error.message]), [['after-1', 'cancelled'], ['after-2', 'cancelled']]);
    assert.equal(r.cancelled, true);
  });
});

describe('retry', () => {
  it('retries until success and reports each backoff', async () => {
    const notices: [number, number][] = [];
    const v = await retry(
      async (attempt) => {
        if (attempt < 4) throw new Error('not yet');
        return 'ready';
      },
      { retries: 10, minMs: 1, maxMs: 4 },
      (n) => notices.push([n.attempt, n.nextAttempt]),
    );
    assert.equal(v, 'ready');
    assert.deepEqual(notices, [
      [1, 2],
      [2, 3],
      [3, 4],
    ]);
  });

  it('gives up at the deadline (a budget or an absolute timestamp)', async () => {
    let calls = 0;
    const t0 = Date.now();
    await assert.rejects(
      retry(
        async () => {
          calls++;
          throw new Error('connection refused');
        },
        { retries: 1000, minMs: 5, maxMs: 5, random: () => 1, deadlineMs: 40 },
      ),
      /connection refused/,
    );
    assert.ok(Date.now() - t0 < 1000);
    assert.ok(calls >= 2 && calls <= 10, `calls ${calls}`);

    calls = 0;
    await assert.rejects(
      retry(
        async () => {
          calls++;
          throw new Error('refused');
        },
        { retries: 1000, minMs: 5, maxMs: 5, random: () => 1, deadlineMs: Date.now() + 30 },
      ),
      /refused/,
    );
    assert.ok(calls >= 2 && calls <= 10, `calls ${calls}`);
  });

  it('stops with CancelledError when aborted during a backoff', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 10);
    const t0 = Date.now();
    await assert.rejects(
      retry(async () => Promise.reject(new Error('down')), { retries: 5, minMs: 10_000, maxMs: 10_000, random: () => 1 }, undefined, ac.signal),
      (err: unknown) => err instanceof CancelledError && (err.cause as Error).message === 'down',
    );
    assert.ok(Date.now() - t0 < 2000);
  });

  it('backoff is full jitter under an exponential cap bounded by maxMs', () => {
    const policy = { retries: 10, minMs: 100, maxMs: 1000, factor: 2 };
    assert.equal(backoffDelay(1, policy, () => 0), 0);
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, policy, () => 0.999999)),
      [99, 199, 399, 799, 999, 999],
    );
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3, policy);
      assert.ok(d >= 0 && d <= 400);
    }
  });
});

describe('KeyedLimiter', () => {
  it('caps each key separately and hands slots to waiters in order', async () => {
    const l = new KeyedLimiter(2);
    assert.equal(l.tryAcquire('a'), true);
    assert.equal(l.tryAcquire('a'), true);
    assert.equal(l.tryAcquire('a'), false);
    assert.equal(l.tryAcquire('b'), true);
    const order: string[] = [];
    const w1 = l.acquire('a').then(() => order.push('w1'));
    const w2 = l.acquire('a').then(() => order.push('w2'));
    l.release('a');
    await w1;
    assert.equal(l.inUse('a'), 2);
    l.release('a');
    await w2;
    assert.deepEqual(order, ['w1', 'w2']);
    l.release('a');
    l.release('a');
    l.release('b');
    assert.equal(l.keys, 0, 'idle keys hold no state');
  });

  it('run() holds a slot for the duration of the work; aborting a waiter rejects it', async () => {
    const l = new KeyedLimiter(1);
    let active = 0;
    let max = 0;
    await Promise.all(
      [1, 2, 3, 4].map(() =>
        l.run('m', async () => {
          active++;
          max = Math.max(max, active);
          await delay(2);
          active--;
        }),
      ),
    );
    assert.equal(max, 1);

    const ac = new AbortController();
    assert.equal(l.tryAcquire('m'), true);
    const waiting = l.acquire('m', ac.signal);
    ac.abort();
    await assert.rejects(waiting, CancelledError);
    l.release('m');
    assert.equal(l.inUse('m'), 0, 'an aborted waiter passes its slot on');
  });

  it('rejects a bad limit', () => {
    assert.throws(() => new KeyedLimiter(0), RangeError);
  });
});

describe('phase', () => {
  it('emits start and end with per-host counts and ms around the work', async () => {
    const { bus, events } = recorder();
    const r = await phase(bus, 'bootstrap', 4, () =>
      fanout(
        ['a', 'b', 'c', 'd'],
        async (h) => {
          if (h === 'b') throw new Error('boom');
          if (h === 'c') return skip('nothing to do');
          if (h === 'd') {
            // A nested step that fails does not hide behind the outer ok.
            bus.emit({ type: 'step', phase: 'bootstrap', host: h, step: 'firewall', status: 'fail', message: 'iptables missing' });
          }
          return h;
        },
        { phase: 'bootstrap', step: 'bootstrap', key: (h) => h, concurrency: 2, events: bus },
      ),
    );
    assert.equal(r.done.length, 2);
    const start = events[0];
    const end = events.at(-1)!;
    assert.deepEqual(start.type === 'phase' && start.status === 'start' && [start.phase, start.total], ['bootstrap', 4]);
    assert.ok(end.type === 'phase' && end.status === 'end');
    assert.deepEqual([end.ok, end.failed, end.skipped], [1, 2, 1]);
    assert.equal(typeof end.ms, 'number');
  });

  it('emits the end event and rethrows when the work throws', async () => {
    const { bus, events } = recorder();
    await assert.rejects(
      phase(bus, 'swarm', 3, async () => {
        throw new Error('no manager reachable');
      }),
      /no manager reachable/,
    );
    const end = events.at(-1)!;
    assert.ok(end.type === 'phase' && end.status === 'end' && end.ok === 0);
  });
});

describe('fanout robustness', () => {
  it('a throwing event listener neither fails items nor stalls the run', async () => {
    const bus = new EventBus();
    bus.on(() => {
      throw new Error('renderer bug');
    });
    const r = await fanout(['a', 'b', 'c'], async (h) => h, { phase: 'swarm', step: 'x', key: (h) => h, concurrency: 2, events: bus });
    assert.equal(r.done.length, 3);
    assert.equal(r.failed.length, 0);
  });
});
