/**
 * Small clusters on a terminal: listr2 rows, a task per phase and a row per host showing its current step.
 *
 * listr2 runs a task list it is given up front, while hosts show up in events over time, so this bridges the two:
 * each phase gets its own Listr (run one after another: a phase that starts while another is open, as bootstrap does
 * while machines are still being created, collects its rows and is drawn once the open one ends) whose subtasks are
 * *slots*. A slot waits until a host is
 * assigned to it, then shows that host's current step until the host settles (every step it started has ended):
 * done, skipped (listr2's skip) or failed (the task throws the message). A slot that no host needed never gets a
 * title, and listr2 does not draw untitled tasks. Events drive a model; listr2 only draws it.
 */
import { DefaultRenderer, Listr, ListrLogger, ProcessOutput, type ListrTask } from 'listr2';
import { SwarmformError } from '../../base/errors.js';
import type { Phase, SwarmformEvent } from '../../base/events.js';
import { redact } from '../../state/redact.js';
import { FailureLog } from './failures.js';
import { bareMessage, duration, stamp } from './format.js';
import { unitOf } from './plain-renderer.js';
import type { Renderer, RendererSettings } from './types.js';

/** Slots beyond the hosts, for a host that runs a second step sequence in the same phase. */
const SPARE_SLOTS = 4;
const MAX_SLOTS = 64;

type Outcome = { status: 'ok' | 'skip' | 'fail'; message: string };
type StepEvent = Extract<SwarmformEvent, { type: 'step' }>;

/** The parts of listr2's TaskWrapper this bridge uses. */
interface Row {
  title: string;
  output: string;
  skip(message?: string): void;
}

/** We decided the stream is a terminal; listr2 would otherwise insist on process.stdout being one. */
class RowsListrRenderer extends DefaultRenderer {
  static override nonTTY = true;
}

class Deferred<T> {
  resolve!: (v: T) => void;
  readonly promise = new Promise<T>((r) => (this.resolve = r));
}

interface HostRow {
  host: string;
  step: string;
  active: number;
  /** Failed if any step failed, else the last outcome. */
  worst?: Outcome;
  /** The outcome this host is counted under in the header, once settled. */
  counted?: Outcome;
  slot?: Slot;
  startTs: number;
}

class Slot {
  host?: HostRow;
  row?: Row;
  settled = false;
  readonly assigned = new Deferred<HostRow | undefined>();
  readonly outcome = new Deferred<Outcome>();

  task(): ListrTask<object, typeof RowsListrRenderer> {
    return {
      // No title until a host is assigned: untitled tasks are not drawn.
      task: async (_ctx, wrapper) => {
        const host = await this.assigned.promise;
        if (!host) return;
        this.row = wrapper as unknown as Row;
        this.row.title = runningTitle(host);
        const o = await this.outcome.promise;
        // Throwing is how listr2 marks a row failed; the text is the row's (its message already starts with the step).
        if (o.status === 'fail') throw new SwarmformError(redact(`${host.host}  ${o.message}`));
        this.row.title = redact(`${host.host}  ${o.message}`);
        if (o.status === 'skip') this.row.skip(redact(`${host.host}  ${o.message}`));
      },
    };
  }

  refresh(): void {
    if (this.row && this.host && !this.settled) this.row.title = runningTitle(this.host);
  }

  settle(o: Outcome): void {
    if (this.settled) return;
    this.settled = true;
    this.outcome.resolve(o);
  }
}

class PhaseRows {
  readonly hosts = new Map<string, HostRow>();
  readonly slots: Slot[];
  readonly warnings: string[] = [];
  ok = 0;
  failed = 0;
  skipped = 0;
  ended = false;
  header?: Row;
  private nextSlot = 0;
  private readonly allDone = new Deferred<void>();

  constructor(
    readonly phase: Phase,
    readonly total: number,
    hosts: number,
    readonly startTs: number,
  ) {
    const n = Math.min(MAX_SLOTS, Math.max(total, hosts, 1) + SPARE_SLOTS);
    this.slots = Array.from({ length: n }, () => new Slot());
  }

  endMs?: number;

  title(): string {
    const took = this.endMs !== undefined ? ` (${duration(this.endMs)})` : '';
    return `${this.counts()}${took}`;
  }

  private counts(): string {
    const done = this.ok + this.skipped;
    const counts = `${done}/${this.total} ${this.total === 1 ? unitOf(this.phase) : `${unitOf(this.phase)}s`}`;
    return `${this.phase}  ${counts}${this.failed ? `, ${this.failed} failed` : ''}`;
  }

  listr(stream: RendererSettings['stream']): Listr<object, typeof RowsListrRenderer> {
    const logger = new ListrLogger({ processOutput: processOutputFor(stream) });
    return new Listr<object, typeof RowsListrRenderer>(
      [
        {
          title: this.title(),
          task: (_ctx, wrapper) => {
            this.header = wrapper as unknown as Row;
            this.header.title = this.title();
            return wrapper.newListr(
              this.slots.map((s) => s.task()),
              { concurrent: true, exitOnError: false },
            );
          },
          rendererOptions: { outputBar: 3 },
        },
      ],
      {
        renderer: RowsListrRenderer,
        rendererOptions: { logger, formatOutput: 'truncate', collapseSubtasks: true, showErrorMessage: true },
        exitOnError: false,
        registerSignalListeners: false,
      },
    );
  }

  step(e: StepEvent): void {
    let h = this.hosts.get(e.host);
    if (!h) {
      h = { host: e.host, step: e.step, active: 0, startTs: e.ts };
      this.hosts.set(e.host, h);
    }
    if (e.status === 'start') {
      if (h.active === 0 && h.counted) {
        this.uncount(h.counted);
        h.counted = undefined;
      }
      if (h.active === 0 && h.slot?.settled) {
        // A new sequence of steps for a host that had settled: a fresh row if one is left, else reuse the old one.
        h.worst = undefined;
        h.startTs = e.ts;
        const next = this.takeSlot();
        if (next) this.assign(h, next);
      }
      if (!h.slot) {
        const s = this.takeSlot();
        if (s) this.assign(h, s);
      }
      h.active++;
      h.step = e.step;
      h.slot?.refresh();
      this.refreshHeader();
      return;
    }
    if (e.status === 'retry') {
      h.step = `${e.step} (attempt ${e.attempt ?? '?'}: ${bareMessage(e.message, e.host, e.step)})`;
      h.slot?.refresh();
      return;
    }
    const outcome: Outcome = {
      status: e.status,
      message:
        e.status === 'fail'
          ? `${e.step}: ${bareMessage(e.message, e.host, e.step) || 'failed'}`
          : e.status === 'skip'
            ? `${e.step}: ${bareMessage(e.message, e.host, e.step) || 'nothing to do'}`
            : `${e.step}${e.ms !== undefined ? ` (${duration(e.ms)})` : ''}`,
    };
    // Failed if any step failed; otherwise the last outcome (the outer step, e.g. the fan-out's, ends last).
    if (h.worst?.status !== 'fail') h.worst = outcome;
    h.active = Math.max(0, h.active - 1);
    if (!h.slot) {
      const s = this.takeSlot();
      if (s) this.assign(h, s);
    }
    if (h.active === 0) {
      if (h.counted) this.uncount(h.counted);
      h.counted = h.worst;
      this.count(h.worst);
      if (h.slot && !h.slot.settled) h.slot.settle(h.worst);
      else if (h.slot?.row) h.slot.row.title = redact(`${h.host}  ${h.worst.message}`);
    } else {
      h.slot?.refresh();
    }
    this.refreshHeader();
  }

  warn(text: string): void {
    this.warnings.push(text);
    if (this.header) this.header.output = redact(text);
  }

  /** Settles every row and releases unused slots; the phase's Listr then finishes. */
  end(e?: Extract<SwarmformEvent, { type: 'phase'; status: 'end' }>): void {
    if (this.ended) return;
    this.ended = true;
    for (const h of this.hosts.values()) {
      if (h.slot && !h.slot.settled) {
        const o = h.worst ?? { status: 'fail' as const, message: `${h.step}: did not finish` };
        h.slot.settle(o);
        if (!h.counted) this.count(o);
      }
    }
    for (const s of this.slots) {
      s.assigned.resolve(undefined);
      if (!s.settled) s.settle({ status: 'ok', message: '' });
    }
    if (e) {
      this.ok = e.ok;
      this.failed = e.failed;
      this.skipped = e.skipped;
      this.endMs = e.ms;
    }
    if (this.header) {
      this.header.title = this.title();
      this.header.output = '';
    }
    this.allDone.resolve();
  }

  private takeSlot(): Slot | undefined {
    return this.nextSlot < this.slots.length ? this.slots[this.nextSlot++] : undefined;
  }

  private assign(h: HostRow, s: Slot): void {
    h.slot = s;
    s.host = h;
    s.assigned.resolve(h);
  }

  private count(o: Outcome | undefined): void {
    if (!o) return;
    if (o.status === 'ok') this.ok++;
    else if (o.status === 'fail') this.failed++;
    else this.skipped++;
  }

  private uncount(o: Outcome | undefined): void {
    if (!o) return;
    if (o.status === 'ok') this.ok--;
    else if (o.status === 'fail') this.failed--;
    else this.skipped--;
  }

  private refreshHeader(): void {
    if (this.header && !this.ended) this.header.title = this.title();
  }
}

export function createRowsRenderer(s: RendererSettings): Renderer {
  const phases = new Map<Phase, PhaseRows>();
  const failures = new FailureLog();
  /** Phases' Listr runs, one after the other: listr2 owns the terminal while it runs. */
  let chain: Promise<void> = Promise.resolve();
  let running = 0;
  let finished = false;

  const print = (ts: number, text: string): void => {
    s.stream.write(`${stamp(ts - s.startTs)} ${redact(text)}\n`);
  };

  /** Phases opened by a step event rather than a phase start: they get no end event. */
  const implicit = new Set<PhaseRows>();

  const start = (phase: Phase, total: number, ts: number, byStep = false): PhaseRows => {
    // A phase opened by a step alone never gets an end event: close it, or the new phase's rows would wait behind
    // it. Phases that did start are left open: they may overlap (provision and bootstrap), and each ends itself.
    for (const [name, open] of phases) {
      if (!implicit.has(open)) continue;
      open.end();
      implicit.delete(open);
      phases.delete(name);
    }
    phases.get(phase)?.end();
    const p = new PhaseRows(phase, total, s.hosts, ts);
    if (byStep) implicit.add(p);
    phases.set(phase, p);
    running++;
    chain = chain.then(async () => {
      try {
        await p.listr(s.stream).run();
      } catch {
        // Failures are shown in the rows; the run goes on.
      } finally {
        running--;
      }
      for (const w of p.warnings) s.stream.write(`${redact(`warning: ${w}`)}\n`);
    });
    return p;
  };

  const listener = (e: SwarmformEvent): void => {
    if (finished) return;
    failures.add(e);
    switch (e.type) {
      case 'phase':
        if (e.status === 'start') start(e.phase, e.total, e.ts);
        else {
          const p = phases.get(e.phase);
          p?.end(e);
          if (p) implicit.delete(p);
          phases.delete(e.phase);
        }
        return;
      case 'step':
        (phases.get(e.phase) ?? start(e.phase, s.hosts, e.ts, true)).step(e);
        return;
      case 'log': {
        const text = `${e.host ? `${e.host}: ` : ''}${e.message}`;
        const current = [...phases.values()].at(-1);
        if (current && running > 0) {
          if (e.level === 'warn') current.warn(text);
          else if (current.header) current.header.output = redact(text);
        } else {
          print(e.ts, e.level === 'warn' ? `warning: ${text}` : text);
        }
        return;
      }
      case 'result':
        return;
    }
  };

  return {
    mode: 'rows',
    listener,
    done: async () => {
      finished = true;
      for (const p of phases.values()) p.end();
      phases.clear();
      implicit.clear();
      await chain;
    },
    summary: () => failures.lines(),
  };
}

function runningTitle(h: HostRow): string {
  return redact(`${h.host}  ${h.step}`);
}


/**
 * listr2 draws on the logger's stdout and holds back other writes to the streams it hijacks until it is done. For
 * the process's own streams, hijack both (so a stray write cannot tear the rows); for any other stream, only it.
 */
function processOutputFor(stream: RendererSettings['stream']): ProcessOutput {
  const out = stream as unknown as NodeJS.WriteStream;
  if (out === process.stderr) return new ProcessOutput(out, process.stdout as NodeJS.WriteStream);
  if (out === process.stdout) return new ProcessOutput(out, process.stderr as NodeJS.WriteStream);
  return new ProcessOutput(out, out);
}

