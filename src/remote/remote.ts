/**
 * Remote execution: one interface for "run a command, put a file, talk to the engine" on a host.
 * The real implementation is ssh2 with one connection per host reused for every step (ssh-remote.ts);
 * tests and simulations can provide their own.
 */
import type Docker from 'dockerode';
import { withTimeout } from '../run/timeout.js';

/** The outcome of one command; a non-zero exit is not an exception here. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Bytes written to the command's standard input, then closed. */
  stdin?: string | Buffer;
  /** Kill the wait after this long (the command is signalled). */
  timeoutMs?: number;
}

export interface Remote {
  /** The host's inventory name, used in every error. */
  readonly name: string;
  /** Why the connection is gone, once it is (a silent network, a reset); undefined while it is up. */
  readonly lost?: string;
  /** Runs a shell command; resolves with its exit code and output whatever the code. */
  run(command: string, opts?: RunOptions): Promise<CommandResult>;
  /** Runs a command and returns stdout; a non-zero exit throws HostStepError(step) with the tail of stderr. */
  check(command: string, step: string, opts?: RunOptions): Promise<string>;
  /** Uploads a local file over SFTP (atomically: a temporary name, then rename). */
  putFile(localPath: string, remotePath: string, mode?: number): Promise<void>;
  /** Writes content to a remote file over SFTP (atomically). */
  putContent(content: string | Buffer, remotePath: string, mode?: number): Promise<void>;
  /**
   * A dockerode client whose requests travel over this host's SSH connection to /var/run/docker.sock. A request that
   * sees no byte for 120 s fails; `untimed` gives a client without that limit, for streams that may stay quiet
   * longer (`service logs -f`, image loads).
   */
  engine(opts?: { untimed?: boolean }): Docker;
  /** Runs a command with the local terminal's streams attached (for `ssh` and `exec`); resolves with its exit code. */
  attach(command: string | undefined, io: AttachIO): Promise<number>;
  /** Closes the connection; idempotent. */
  close(): void;
}

/** An open connection as a run keeps it: a Remote that knows when it has closed. */
export type Session = Remote & { readonly isClosed: boolean };

/** Streams for `attach`; a TTY stdin turns on a pseudo-terminal. */
export interface AttachIO {
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => void };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Forward standard input (true for `ssh`; false for parallel `exec`). */
  interactive: boolean;
}

/**
 * What a failure on a lost connection says: the error a step sees is the transport's last word ("socket hang up",
 * "No response from server", "Not connected"), which names neither the host nor the cause, so the loss is added.
 * Other errors, and errors that already say it, are returned as they are.
 */
export function explainLoss(err: unknown, remote: Pick<Remote, 'name' | 'lost'> | undefined): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  const lost = remote?.lost;
  if (!lost || e.message.includes(lost)) return e;
  return annotated(e, `the SSH connection to ${remote.name} was lost: ${lost}`);
}

/** A copy of the same kind (a HostStepError keeps host, step and hint) with `why` added, the original as its cause. */
function annotated(e: Error, why: string): Error {
  return Object.assign(Object.create(Object.getPrototypeOf(e) as object) as Error, e, { message: `${e.message} (${why})`, stack: e.stack, cause: e });
}

/** How an Engine API call reads when the engine's end of the connection went away mid-call (killed, restarted). */
const ENGINE_DROP = /socket hang up|ECONNRESET|EPIPE|premature close/i;

/**
 * explainLoss, and for an Engine API call that ended with the transport's "socket hang up" while the SSH connection
 * is fine, a ping of that engine says which of the two it was: an engine that answers again was restarted (or crashed
 * and came back) during the call; one that does not answer is down.
 */
export async function explainEngineLoss(err: unknown, remote: Pick<Remote, 'name' | 'lost' | 'engine'> | undefined): Promise<Error> {
  const e = explainLoss(err, remote);
  if (!remote || remote.lost || !ENGINE_DROP.test(e.message)) return e;
  const answer = await withTimeout(remote.engine().ping(), 10_000, 'no answer within 10 s').then(() => undefined, (p: Error) => p.message);
  const why = answer === undefined
    ? `the engine on ${remote.name} dropped the API connection in the middle of the call and answers again now: it was restarted or crashed and came back; run the command again`
    : `the engine on ${remote.name} dropped the API connection and does not answer now (${answer}): it stopped or crashed; see its log, e.g. journalctl -u docker`;
  return annotated(e, why);
}

/** Words for a connection's end, from the ssh2 client's error. */
export function lossReason(err: Error & { code?: string; level?: string }): string {
  if (/Keepalive timeout|No response from server/i.test(err.message)) return 'no answer to SSH keepalives for 60 s: the host or its network is down; when it is back, run the command again';
  if (err.code === 'ECONNRESET' || /ECONNRESET/.test(err.message)) return 'the connection was reset (the host rebooted, or a firewall dropped it); run the command again';
  if (err.code === 'ETIMEDOUT' || /ETIMEDOUT/.test(err.message)) return 'the network timed out: the host or its network is down; when it is back, run the command again';
  return err.message;
}

/** Last lines of a command's output, for error messages. */
export function tail(text: string, lines = 8): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

/** Quotes a value for a POSIX shell. */
export function shq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
