/** `ssh` and `exec`: commands passed through unchanged, output and exit status returned. */
import { SwarmformError, UsageError } from '../base/errors.js';
import type { Context } from '../cluster/context.js';
import { resolveMembers, selectMachines } from '../cluster/machines.js';
import { Sessions } from '../cluster/sessions.js';
import { fanout } from '../run/fanout.js';

/** Opens a shell, or runs one command, on one host with the terminal attached; resolves with the exit status. */
export async function sshInto(ctx: Context, host: string, command: string | undefined): Promise<number> {
  const machine = (await resolveMembers(ctx)).find((m) => m.name === host);
  if (!machine) throw new UsageError(`no host named ${host} in cluster ${ctx.inventory.cluster}`, { hint: 'see `swarmform status` for the hosts' });
  const sessions = new Sessions(await ctx.state.knownHosts(), ctx.events);
  try {
    const conn = await sessions.connect([machine], { phase: 'exec', timeoutS: 15 });
    const remote = sessions.get(host);
    if (!remote) throw conn.failed[0]?.error ?? new SwarmformError(`${host}: unreachable`);
    return await remote.attach(command, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, interactive: true });
  } finally {
    sessions.closeAll();
  }
}

export interface ExecOutcome {
  host: string;
  code: number;
  stdout: string;
  stderr: string;
  /** What to do about a host that could not be reached (a changed host key, a sudo that wants a password). */
  hint?: string;
}

/** A host the command never ran on: code 255 as OpenSSH gives, the reason on stderr with its hint under it. */
function notRun(host: string, error: Error): ExecOutcome {
  const hint = (error as SwarmformError).hint;
  return { host, code: 255, stdout: '', stderr: hint ? `${error.message}\nhint: ${hint}` : error.message, ...(hint ? { hint } : {}) };
}

/** Runs a command on every selected host in parallel; each host's result, failures to connect as code 255. */
export async function execOn(ctx: Context, selector: string, command: string, concurrency = 64): Promise<ExecOutcome[]> {
  const machines = selectMachines(await resolveMembers(ctx), selector);
  if (machines.length === 0) {
    throw new UsageError(`no host matches "${selector}"`, { hint: 'use all, managers, workers, a group name or host names (comma-separated)' });
  }
  const sessions = new Sessions(await ctx.state.knownHosts(), ctx.events);
  try {
    const conn = await sessions.connect(machines, { phase: 'exec', timeoutS: 15, concurrency });
    const outcomes: ExecOutcome[] = conn.failed.map((f) => notRun(f.item.name, f.error));
    const r = await fanout(
      conn.done.map((d) => d.item),
      async (m) => ({ host: m.name, ...(await sessions.get(m.name)!.run(command)) }),
      { phase: 'exec', step: 'exec', key: (m) => m.name, concurrency, events: ctx.events, quiet: true },
    );
    outcomes.push(...r.done.map((d) => d.value), ...r.failed.map((f) => notRun(f.item.name, f.error)));
    return outcomes.sort((a, b) => a.host.localeCompare(b.host, undefined, { numeric: true }));
  } finally {
    sessions.closeAll();
  }
}
