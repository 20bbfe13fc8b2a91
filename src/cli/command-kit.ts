/** What every command shares: events, rendering, Ctrl-C, exit codes and error reports around one core call. */
import { relative } from 'node:path';
import { openContext, type Context } from '../cluster/context.js';
import { exitCodeOf, PartialError, SwarmformError } from '../base/errors.js';
import { EventBus } from '../base/events.js';
import type { UpResult } from '../core/up.js';
import { isCancelled } from '../run/cancelled.js';
import { redact } from '../state/redact.js';
import { bareMessage } from './render/format.js';
import { createRenderer } from './render/index.js';

/** Options every command has. */
export interface Common {
  inventory?: string;
  json: boolean;
  /** Every host step on its own line, the skipped ones too (plain output; --json always has every event). */
  verbose?: boolean;
}

/** How long after SIGINT/SIGTERM steps in flight may still finish before the process exits anyway. */
export const SIGNAL_GRACE_MS = 1500;

/** The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM). */
export function exitOnSignal(sig: NodeJS.Signals): number {
  return sig === 'SIGTERM' ? 143 : 130;
}

/** Sets up events, rendering, Ctrl-C and exit codes around one core call. */
export async function run(argv: Common, fn: (ctx: Context) => Promise<string | object | number | void>, opts: { render?: boolean } = {}): Promise<void> {
  const events = new EventBus();
  const abort = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) process.exit(exitOnSignal(sig));
    signalled = sig;
    process.stderr.write(`\n${sig === 'SIGINT' ? 'Interrupted' : 'Terminated'}: stopping; every finished step is in the state (${sig === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again to quit at once)\n`);
    abort.abort();
    // Steps in flight get a moment to land in the state; a step that takes longer (a join waits up to 20 s on its
    // engine) is not waited for: the state already holds every step that finished, and the next run checks the
    // hosts before acting, so what a cut step left half done is found and finished.
    setTimeout(() => {
      process.stderr.write(`still busy ${SIGNAL_GRACE_MS / 1000} s after the signal: exiting now; run the same command again to finish\n`);
      process.exit(exitOnSignal(sig));
    }, SIGNAL_GRACE_MS).unref();
  };
  let renderer: ReturnType<typeof createRenderer> | undefined;
  let ctx: Context | undefined;
  try {
    // Reading the inventory changes nothing and can be CPU-bound for a moment (templates, YAML, expansion), when a
    // handler would only run afterwards: until it is read, a signal keeps its default action and ends the process
    // at once. From here on a signal stops the run and lets finished steps land in the state.
    ctx = await openContext(argv.inventory, events, abort.signal);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    if (opts.render !== false) {
      renderer = createRenderer({ json: argv.json, hosts: ctx.inventory.hosts.length, verbose: Boolean(argv.verbose) });
      events.on(renderer.listener);
    } else if (!argv.json) {
      events.on((e) => {
        if (e.type === 'log' && e.level === 'warn') process.stderr.write(`warning: ${redact(e.message)}\n`);
      });
    }
    const out = await fn(ctx);
    await renderer?.done();
    if (typeof out === 'number') process.exitCode = out;
    else if (typeof out === 'string') process.stdout.write(`${redact(out)}\n`);
    else if (out !== undefined) process.stdout.write(`${redact(JSON.stringify(out))}\n`);
  } catch (err) {
    await renderer?.done();
    if (abort.signal.aborted && isCancelled(err)) {
      // Ctrl-C: what finished is in the state; the next run picks up from there.
      report(new SwarmformError('interrupted: what was done is recorded', { hint: 'run the same command again to finish' }), argv.json);
      process.exitCode = exitOnSignal(signalled ?? 'SIGINT');
      return;
    }
    report(err, argv.json, renderer?.summary());
    process.exitCode = exitCodeOf(err);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await ctx?.state.removeIfUnused();
  }
}

/** Beyond this many failed hosts, failures are shown grouped by cause rather than one line each. */
const MAX_FAILURE_LINES = 10;

export function report(err: unknown, json: boolean, grouped?: string[]): void {
  const e = err as SwarmformError & { failures?: PartialError['failures']; result?: UpResult };
  if (json) {
    process.stdout.write(
      `${redact(JSON.stringify({ type: 'error', exitCode: exitCodeOf(err), message: e.message, hint: e.hint, failures: e.failures, result: e.result }))}\n`,
    );
  }
  const lines = [`error: ${e.message ?? String(err)}`];
  if (e instanceof PartialError) {
    if (e.failures.length > MAX_FAILURE_LINES && grouped?.length) lines.push(...grouped.map((g) => `  ${g}`));
    else {
      for (const f of e.failures) {
        lines.push(`  ${f.host}: ${f.step}: ${bareMessage(f.message, f.host, f.step)}`);
        if (f.hint) lines.push(`    hint: ${f.hint}`);
      }
    }
  }
  if (e.hint) lines.push(`hint: ${e.hint}`);
  if (!(err instanceof SwarmformError) && process.env.SWARMFORM_DEBUG) lines.push(String((err as Error).stack));
  process.stderr.write(`${redact(lines.join('\n'))}\n`);
}

/** The inventory as the user would type it: relative below the working directory, else absolute. */
export function inventoryLabel(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') ? rel : file;
}

/** yargs' parsed arguments, typed as the command declares them. */
export function typed<T>(a: unknown): T {
  return a as T;
}

/** The words after `--`, joined as ssh joins them. */
export function commandAfterDashes(a: unknown): string | undefined {
  const argv = a as Record<string, unknown>;
  const rest = [...((argv._ as (string | number)[]).slice(1) ?? []), ...((argv['--'] as string[] | undefined) ?? [])].map(String);
  return rest.length ? rest.join(' ') : undefined;
}

