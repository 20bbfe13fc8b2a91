/** Exit codes shared by every command: 0 done, 1 failed, 2 bad usage or inventory, 3 partial. */
export const ExitCode = { ok: 0, failed: 1, usage: 2, partial: 3 } as const;

/** Base of every error swarmform reports on purpose; `exitCode` decides how the CLI ends. */
export class SwarmformError extends Error {
  readonly exitCode: number = ExitCode.failed;
  /** What the user could try next, shown under the message. */
  hint?: string;
  constructor(message: string, opts?: { hint?: string; cause?: unknown }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.hint = opts?.hint;
  }
}

/** Bad command line or inventory: nothing was changed. */
export class UsageError extends SwarmformError {
  override readonly exitCode: number = ExitCode.usage;
}

/**
 * A damaged file of the tool's own state (state.json, secrets.json, raft.json): found when the command starts, before
 * anything is touched, so it is bad input like a broken inventory (exit 2). The hint says how to get out of it.
 */
export class StateFileError extends UsageError {}

/** One problem in an inventory file, with its position. */
export interface InventoryProblem {
  file: string;
  line: number;
  column: number;
  /** Dotted path of the key, e.g. `groups.workers.count`. */
  key: string;
  message: string;
}

/** An inventory that failed to render, parse or validate; lists every problem found. */
export class InventoryError extends UsageError {
  constructor(readonly problems: InventoryProblem[]) {
    super(problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.key ? `${p.key}: ` : ''}${p.message}`).join('\n'));
  }
}

/** A step failed on one host: carries the host, the step, and the command's stderr tail. */
export class HostStepError extends SwarmformError {
  constructor(
    readonly host: string,
    readonly step: string,
    message: string,
    opts?: { hint?: string; cause?: unknown; command?: string; stderr?: string },
  ) {
    super(`${host}: ${step}: ${message}`, opts);
    this.command = opts?.command;
    this.stderr = opts?.stderr;
  }
  readonly command?: string;
  readonly stderr?: string;
}

/** One host's failure in a partial run; `hint` is the fix its error named (a sudoers line, a port to open). */
export interface HostFailure {
  host: string;
  step: string;
  message: string;
  hint?: string;
}

/** Some hosts failed while the rest were done and recorded. */
export class PartialError extends SwarmformError {
  override readonly exitCode: number = ExitCode.partial;
  constructor(message: string, readonly failures: HostFailure[]) {
    super(message);
  }
}

/**
 * A broken invariant of swarmform's own code (a bug, not bad input or a failing host): the message says what should
 * have held, the hint asks for a report.
 */
export class InternalError extends SwarmformError {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(`internal error: ${message}`, { hint: 'this is a bug in swarmform: please report it with the command that showed it', cause: opts?.cause });
  }
}

/**
 * Something outside swarmform failed and no single host is to blame: a cloud API that did not settle in time, a local
 * server that would not start or stop (exit 1). The hint says what to try; a host's failure is a HostStepError.
 */
export class ExternalError extends SwarmformError {}

/** Another run holds the cluster's lock. */
export class LockedError extends SwarmformError {}

/** Maps any thrown value to an exit code. */
export function exitCodeOf(err: unknown): number {
  return err instanceof SwarmformError ? err.exitCode : ExitCode.failed;
}
