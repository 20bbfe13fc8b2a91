/**
 * Running local commands for the lab: always an argument array, never a shell string built from names,
 * and failures that carry the command and the tail of its stderr so the error can be acted on.
 */
import { spawn } from 'node:child_process';
import { HostStepError, type SwarmformError } from '../../base/errors.js';

/** What a finished command printed and how it ended. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A local command that exited non-zero (or could not start); names the command and keeps its stderr tail. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number,
    readonly stderr: string,
  ) {
    super(`${command} exited ${code}${stderr ? `: ${tail(stderr)}` : ''}`);
    this.name = 'CommandError';
  }
}

/** Options for {@link run}. */
export interface RunOptions {
  /** Written to the command's stdin (e.g. `ip -batch -`, `iptables-restore`). */
  input?: string;
  /** Kill the command after this long; lab commands are local and quick, so a hang is a bug worth surfacing. */
  timeoutMs?: number;
  /** Resolve with the exit code instead of rejecting when it is non-zero. */
  allowFail?: boolean;
}

/** Runs `cmd args...` without a shell and resolves with its output; rejects with CommandError unless `allowFail`. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const shown = [cmd, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: commandEnv() });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let settled = false;
    let stuck: NodeJS.Timeout | undefined;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
            // A command blocked in the kernel (uninterruptible sleep) does not even die from SIGKILL: stop waiting
            // for it rather than hang the whole run.
            stuck = setTimeout(() => {
              if (settled) return;
              settled = true;
              reject(new CommandError(shown, 137, `still running ${opts.timeoutMs} ms after it started, even after SIGKILL`));
            }, 5_000);
            stuck.unref();
          }, opts.timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      if (settled) return;
      settled = true;
      reject(new CommandError(shown, 127, e.message));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (stuck) clearTimeout(stuck);
      if (settled) return;
      settled = true;
      const stdout = Buffer.concat(out).toString('utf8');
      let stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) stderr += `\n(killed after ${opts.timeoutMs} ms)`;
      const rc = code ?? (signal ? 128 : 1);
      if (rc !== 0 && !opts.allowFail) reject(new CommandError(shown, rc, stderr));
      else resolve({ code: rc, stdout, stderr });
    });
    // A command that does not read stdin may close it early; that is not an error worth reporting.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** The last few non-empty lines of a command's output, for error messages. */
export function tail(text: string, lines = 6): string {
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.length > 0)
    .slice(-lines)
    .join('\n');
}

/**
 * The environment for lab commands: the caller's, with a PATH that surely holds the sbin directories,
 * because `sudo` and CI runners often drop them and `ip`, `iptables`, `sshd` live there.
 */
export function commandEnv(): NodeJS.ProcessEnv {
  const base = process.env.PATH ?? '';
  const need = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  const parts = base.split(':').filter(Boolean);
  for (const p of need) if (!parts.includes(p)) parts.push(p);
  return { ...process.env, PATH: parts.join(':'), LC_ALL: 'C' };
}

/**
 * A failure while making host `name`, as the `create host` step's error: a HostStepError passes as it is; a command's
 * error keeps its command and stderr tail, anything else its message's tail and hint.
 */
export function createHostError(name: string, e: unknown): HostStepError {
  if (e instanceof HostStepError) return e;
  const err = e as Error;
  return new HostStepError(name, 'create host', err instanceof CommandError ? err.message : tail(err.message), {
    cause: e,
    hint: (err as SwarmformError).hint,
    command: err instanceof CommandError ? err.command : undefined,
    stderr: err instanceof CommandError ? tail(err.stderr) : undefined,
  });
}
