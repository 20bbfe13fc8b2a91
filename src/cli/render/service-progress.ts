/**
 * Draws service convergence progress like the docker CLI: on a terminal, one live line per id ("overall progress",
 * "1/3", "verify"...) rewritten in place, with a bar when the terminal is wider than 110 columns; without a
 * terminal, a plain line whenever a line changes; with --json, one JSON object per event. The events come on the run's
 * EventBus: subscribe `listener`.
 */
import type { SwarmformEvent } from '../../base/events.js';
import type { ServiceProgressEvent } from '../../swarm/service-progress.js';
import { redact } from '../../state/redact.js';

export type ProgressMode = 'tty' | 'plain' | 'json';

/** docker's bar: 50 characters of `=` up to a `>`, for task states 1..9. */
export function progressBar(current: number, total: number): string {
  const pct = Math.min(50, Math.floor((Math.floor((current / total) * 100)) / 2));
  return `[${'='.repeat(pct)}>${' '.repeat(Math.max(0, 50 - pct))}]`;
}

export class ServiceProgressView {
  private lines: { id: string; text: string }[] = [];
  private service: string | undefined;
  private drawn = 0;
  private readonly printed = new Map<string, string>();

  constructor(
    private readonly out: NodeJS.WritableStream & { columns?: number },
    readonly mode: ProgressMode,
  ) {}

  /** Picks the mode for stdout: json with --json, tty on a terminal (unless TERM=dumb), plain otherwise. */
  static forStdout(json: boolean): ServiceProgressView {
    const tty = Boolean(process.stdout.isTTY) && process.env.TERM !== 'dumb';
    return new ServiceProgressView(process.stdout, json ? 'json' : tty ? 'tty' : 'plain');
  }

  /** Prints a line that is not progress (a service ID, "web scaled to 4"), keeping the live block below it intact. */
  say(text: string): void {
    if (this.mode === 'json') return;
    this.commit();
    this.out.write(`${redact(text)}\n`);
  }

  /** Subscribe this to the EventBus: it draws the `progress` events and leaves the others. */
  readonly listener = (e: SwarmformEvent): void => {
    if (e.type === 'progress') this.onEvent(e);
  };

  readonly onEvent = (e: ServiceProgressEvent): void => {
    if (this.mode === 'json') {
      this.out.write(`${redact(JSON.stringify(e))}\n`);
      return;
    }
    if (this.service !== undefined && e.service !== this.service) this.commit();
    this.service = e.service;
    const wide = (this.out.columns ?? 0) > 110;
    const bar = e.current !== undefined && e.total ? ` ${progressBar(e.current, e.total)}` : '';
    const text = `${e.id}: ${e.action}${this.mode === 'tty' && wide ? bar : ''}`;
    if (this.mode === 'plain') {
      // Logs and CI: every change of the summary lines, but a task line only when it first runs or shows a new
      // error, so a task that fails and is retried does not print every state of every retry.
      if (e.current !== undefined && e.current !== e.total) return;
      if (!e.action.trim()) return;
      const key = `${e.service}\0${e.id}`;
      if (this.printed.get(key) === text) return;
      if (e.current !== undefined || e.error) this.printed.set(key, text);
      this.out.write(`${redact(text.trimEnd())}\n`);
      return;
    }
    const have = this.lines.find((l) => l.id === e.id);
    if (have) have.text = text;
    else this.lines.push({ id: e.id, text });
    this.redraw();
  };

  private redraw(): void {
    let s = this.drawn ? `\x1b[${this.drawn}A` : '';
    for (const l of this.lines) s += `\r\x1b[2K${redact(l.text)}\n`;
    this.drawn = this.lines.length;
    this.out.write(s);
  }

  /** Leaves the current block as it is; the next events start a new one. */
  commit(): void {
    this.lines = [];
    this.drawn = 0;
    this.service = undefined;
  }
}
