/** The swarmform command line: thin yargs commands that build options and call one core function each. */
import { relative } from 'node:path';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { openContext, type Context } from '../core/context.js';
import { down } from '../core/down.js';
import { ExitCode, exitCodeOf, PartialError, SwarmformError, UsageError } from '../core/errors.js';
import { EventBus } from '../core/events.js';
import { execOn, sshInto } from '../core/exec.js';
import { plan } from '../core/plan.js';
import { status } from '../core/status.js';
import { up, type UpPhase, type UpResult } from '../core/up.js';
import { isCancelled } from '../run/cancelled.js';
import { redact } from '../state/redact.js';
import { formatDown, formatPlan, formatStatus, formatUp } from './format.js';
import { createRenderer } from './render/index.js';

interface Common {
  inventory?: string;
  json: boolean;
}

/** Sets up events, rendering, Ctrl-C and exit codes around one core call. */
async function run(argv: Common, fn: (ctx: Context) => Promise<string | object | number | void>, opts: { render?: boolean } = {}): Promise<void> {
  const events = new EventBus();
  const abort = new AbortController();
  let interrupted = 0;
  const onSigint = () => {
    interrupted++;
    if (interrupted > 1) process.exit(130);
    process.stderr.write('\nInterrupted: finishing in-flight steps and saving state (Ctrl-C again to quit at once)\n');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  let renderer: ReturnType<typeof createRenderer> | undefined;
  try {
    const ctx = await openContext(argv.inventory, events, abort.signal);
    if (opts.render !== false) {
      renderer = createRenderer({ json: argv.json, hosts: ctx.inventory.hosts.length });
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
      process.exitCode = 130;
      return;
    }
    report(err, argv.json, renderer?.summary());
    process.exitCode = exitCodeOf(err);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** Beyond this many failed hosts, failures are shown grouped by cause rather than one line each. */
const MAX_FAILURE_LINES = 10;

function report(err: unknown, json: boolean, grouped?: string[]): void {
  const e = err as SwarmformError & { failures?: PartialError['failures']; result?: UpResult };
  if (json) {
    process.stdout.write(
      `${redact(JSON.stringify({ type: 'error', exitCode: exitCodeOf(err), message: e.message, hint: e.hint, failures: e.failures, result: e.result }))}\n`,
    );
  }
  const lines = [`error: ${e.message ?? String(err)}`];
  if (e instanceof PartialError) {
    if (e.failures.length > MAX_FAILURE_LINES && grouped?.length) lines.push(...grouped.map((g) => `  ${g}`));
    else for (const f of e.failures) lines.push(`  ${f.host}: ${f.step}: ${f.message}`);
  }
  if (e.hint) lines.push(`hint: ${e.hint}`);
  if (!(err instanceof SwarmformError) && process.env.SWARMFORM_DEBUG) lines.push(String((err as Error).stack));
  process.stderr.write(`${redact(lines.join('\n'))}\n`);
}

function upCommand(name: string, describe: string, until: UpPhase) {
  return {
    command: name,
    describe,
    builder: (y: Argv<Common>) =>
      y.option('force', { type: 'boolean', default: false, describe: 'make hosts that belong to another swarm leave it first' }),
    handler: (a: unknown) => {
      const argv = typed<Common & { force: boolean }>(a);
      return run(argv, async (ctx) => {
        const t0 = Date.now();
        try {
          const r = await up(ctx, { until, force: argv.force });
          return argv.json ? { type: 'result', command: name, ...r } : formatUp(r, inventoryLabel(ctx.inventory.file), (Date.now() - t0) / 1000);
        } catch (err) {
          const partial = (err as { result?: UpResult }).result;
          if (partial && !argv.json) process.stdout.write(`${redact(formatUp(partial, inventoryLabel(ctx.inventory.file), (Date.now() - t0) / 1000))}\n`);
          throw err;
        }
      });
    },
  };
}

/** The inventory as the user would type it: relative below the working directory, else absolute. */
function inventoryLabel(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') ? rel : file;
}

/** yargs' parsed arguments, typed as the command declares them. */
function typed<T>(a: unknown): T {
  return a as T;
}

/** The words after `--`, joined as ssh joins them. */
function commandAfterDashes(a: unknown): string | undefined {
  const argv = a as Record<string, unknown>;
  const rest = [...((argv._ as (string | number)[]).slice(1) ?? []), ...((argv['--'] as string[] | undefined) ?? [])].map(String);
  return rest.length ? rest.join(' ') : undefined;
}

export async function main(args = hideBin(process.argv)): Promise<void> {
  await yargs(args)
    .scriptName('swarmform')
    .usage('$0 <command> [options]\n\nTurns an inventory file into a running Docker Swarm cluster, and operates it.')
    .parserConfiguration({ 'populate--': true })
    .option('inventory', { alias: 'i', type: 'string', describe: 'inventory file (default: inventories/lab.yml)' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output: JSON lines of events, then the result' })
    .command(upCommand('up', 'provision, bootstrap, form the swarm and deploy the workloads (idempotent)', 'workloads'))
    .command(upCommand('provision', 'create the machines the inventory describes (phase 1 of up)', 'provision'))
    .command(upCommand('bootstrap', 'install, configure and start the engine, open swarm ports (up to phase 2)', 'bootstrap'))
    .command(upCommand('swarm', 'form the swarm: managers one at a time, workers in parallel (up to phase 3)', 'swarm'))
    .command(upCommand('deploy', 'create or update the inventory services (the whole of up)', 'workloads'))
    .command({
      command: 'plan',
      describe: 'show what up would do, offline',
      handler: (a) => {
        const argv = typed<Common>(a);
        return run(argv, async (ctx) => (argv.json ? plan(ctx) : formatPlan(plan(ctx))), { render: false });
      },
    })
    .command({
      command: 'status',
      describe: 'nodes (like docker node ls) and services (like docker service ls), read from a manager',
      builder: (y: Argv<Common>) => y.option('all', { type: 'boolean', default: false, describe: 'list every node even on large clusters' }),
      handler: (a) => {
        const argv = typed<Common & { all: boolean }>(a);
        return run(argv, async (ctx) => {
          const s = await status(ctx);
          return argv.json ? s : formatStatus(s, { all: argv.all });
        }, { render: false });
      },
    })
    .command({
      command: 'ssh <host>',
      describe: 'a shell, or a command after --, on one host; exits with its status',
      handler: (a) => {
        const argv = typed<Common & { host: string }>(a);
        return run(argv, (ctx) => sshInto(ctx, argv.host, commandAfterDashes(a)), { render: false });
      },
    })
    .command({
      command: 'exec <target>',
      describe: 'run a command (after --) in parallel on all, managers, workers, a group or hosts (comma-separated)',
      handler: (a) => {
        const argv = typed<Common & { target: string }>(a);
        return run(argv, async (ctx) => {
          const cmd = commandAfterDashes(a);
          if (!cmd) throw new UsageError('exec needs a command after --, e.g. swarmform exec workers -- uptime');
          const outcomes = await execOn(ctx, argv.target, cmd);
          if (argv.json) {
            process.stdout.write(`${redact(JSON.stringify({ type: 'result', command: 'exec', hosts: outcomes }))}\n`);
          } else {
            const single = outcomes.length === 1;
            for (const o of outcomes) {
              const prefix = single ? '' : `${o.host} | `;
              for (const [stream, text] of [[process.stdout, o.stdout], [process.stderr, o.stderr]] as const) {
                if (text) stream.write(`${text.replace(/\n$/, '').split('\n').map((l) => prefix + l).join('\n')}\n`);
              }
              if (!single && o.code !== 0) process.stderr.write(`${o.host} | exit status ${o.code}\n`);
            }
          }
          if (outcomes.length === 1) return outcomes[0]!.code;
          return outcomes.every((o) => o.code === 0) ? ExitCode.ok : ExitCode.failed;
        }, { render: false });
      },
    })
    .command({
      command: 'down',
      describe: 'remove everything: swarm, machines, firewall rules, state',
      builder: (y: Argv<Common>) => y.option('force', { type: 'boolean', default: false, describe: 'also find and remove leftovers of crashed runs' }),
      handler: (a) => {
        const argv = typed<Common & { force: boolean }>(a);
        return run(argv, async (ctx) => {
          const r = await down(ctx, { force: argv.force });
          return argv.json ? { type: 'result', command: 'down', ...r } : formatDown(r);
        });
      },
    })
    .demandCommand(1, 'name a command, e.g. swarmform up')
    .strict()
    .fail((msg, err, y) => {
      if (err) throw err;
      process.stderr.write(`${y.help()}\n\nerror: ${msg}\n`);
      process.exit(ExitCode.usage);
    })
    .help()
    .alias('h', 'help')
    .version()
    .parseAsync();
}
