import type { SwarmformEvent } from '../../base/events.js';

/** How events are shown: JSON lines, listr2 rows, one aggregate line per phase, or plain log lines. */
export type RenderMode = 'json' | 'rows' | 'aggregate' | 'plain';

/** Where a renderer writes: a process stream or anything with `write` (tests). */
export interface OutputStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
  rows?: number;
}

export interface Renderer {
  readonly mode: RenderMode;
  /** Subscribe this to the EventBus; it never throws. */
  listener: (e: SwarmformEvent) => void;
  /** Stops timers and live regions and writes what is pending; safe to call more than once. */
  done(): Promise<void>;
  /** The failures seen so far, grouped by cause (see `summary`), as printable lines. */
  summary(): string[];
}

/** Options shared by the renderers' constructors. */
export interface RendererSettings {
  stream: OutputStream;
  /** Hosts in the inventory. */
  hosts: number;
  /** Run start, for relative timestamps; default now. */
  startTs: number;
  /** Clock; injectable for tests. */
  now: () => number;
  /** A line for every skipped step too, instead of one summary line per phase. */
  verbose?: boolean;
}
