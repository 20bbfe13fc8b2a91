/**
 * Renderers: the core emits events, these draw them. `createRenderer` picks one: JSON lines with `--json`, listr2
 * rows on a terminal for up to 30 hosts, one aggregate line per phase on a terminal beyond that, plain log lines
 * when the output is not a terminal. Everything printed goes through redact().
 */
import { createAggregateRenderer } from './aggregate-renderer.js';
import { createJsonRenderer } from './json-renderer.js';
import { createPlainRenderer, SMALL_CLUSTER } from './plain-renderer.js';
import { createRowsRenderer } from './rows-renderer.js';
import type { OutputStream, RenderMode, Renderer, RendererSettings } from './types.js';

export type { OutputStream, RenderMode, Renderer } from './types.js';
export { formatSummary, normaliseCause, summary, type FailureGroup } from './summary.js';
export { createAggregateRenderer, aggregateLine } from './aggregate-renderer.js';
export { createJsonRenderer } from './json-renderer.js';
export { createPlainRenderer, progressText, SMALL_CLUSTER } from './plain-renderer.js';
export { createRowsRenderer } from './rows-renderer.js';
export { PhaseProgress } from './phase-progress.js';

export interface CreateRendererOptions {
  /** `--json`: JSON lines on stdout and nothing else. */
  json: boolean;
  /** Hosts in the inventory: decides rows (<= 30) or aggregate on a terminal. */
  hosts: number;
  /** Where to write; default stdout for JSON, stderr for the others (stdout stays for the command's result). */
  stream?: NodeJS.WriteStream | OutputStream;
  /** Whether the stream is a terminal; default `stream.isTTY` (false when TERM=dumb). */
  tty?: boolean;
  /** Force a mode (tests, or a future `--output` flag). */
  mode?: RenderMode;
  /** Run start for relative timestamps; default now. */
  startTs?: number;
  /** Clock, injectable for tests. */
  now?: () => number;
  /** `--verbose`: every skipped step on its own line (plain output). */
  verbose?: boolean;
}

/** The mode `createRenderer` would pick. */
export function chooseMode(opts: { json: boolean; hosts: number; tty: boolean }): RenderMode {
  if (opts.json) return 'json';
  if (!opts.tty) return 'plain';
  return opts.hosts <= SMALL_CLUSTER ? 'rows' : 'aggregate';
}

/** Creates the renderer for this output; subscribe `listener` to the EventBus and await `done()` before exiting. */
export function createRenderer(opts: CreateRendererOptions): Renderer {
  const stream: OutputStream = opts.stream ?? (opts.json ? process.stdout : process.stderr);
  const tty = opts.tty ?? (stream.isTTY === true && process.env.TERM !== 'dumb');
  const mode = opts.mode ?? chooseMode({ json: opts.json, hosts: opts.hosts, tty });
  const now = opts.now ?? Date.now;
  const settings: RendererSettings = { stream, hosts: opts.hosts, startTs: opts.startTs ?? now(), now, verbose: opts.verbose };
  return guarded(pick());

  function pick(): Renderer {
    switch (mode) {
      case 'json':
        return createJsonRenderer(stream);
      case 'rows':
        return createRowsRenderer(settings);
      case 'aggregate':
        return createAggregateRenderer(settings);
      case 'plain':
        return createPlainRenderer(settings);
    }
  }
}

/** A renderer must never break the run: an exception while drawing an event is swallowed. */
function guarded(r: Renderer): Renderer {
  const listener = r.listener;
  return {
    ...r,
    listener: (e) => {
      try {
        listener(e);
      } catch {
        // drawing failed; the run goes on
      }
    },
  };
}
