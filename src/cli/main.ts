/** The swarmform command line: thin yargs commands that build options and call one core function each. */
import yargs, { type Argv, type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { down } from '../core/down.js';
import { ExitCode, UsageError } from '../base/errors.js';
import { execOn, sshInto } from '../core/exec.js';
import { plan } from '../core/plan.js';
import { status } from '../core/status.js';
import { up, type UpPhase, type UpResult } from '../core/up.js';
import { redact } from '../state/redact.js';
import { commandAfterDashes, type Common, inventoryLabel, run, typed } from './command-kit.js';
import { commands } from './commands/index.js';
import { joinTokenCommand } from './commands/node.js';
import { formatDown, formatPlan, formatStatus, formatUp } from './format.js';

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

/** A phase command that also has subcommands (`swarm join-token`); bare, it still runs the phase. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function withSubcommands(cmd: ReturnType<typeof upCommand>, subs: CommandModule<any, any>[]) {
  return { ...cmd, builder: (y: Argv<Common>) => subs.reduce((acc, c) => acc.command(c), cmd.builder(y)) };
}

/**
 * The whole command line as one yargs parser, not yet run: `main` parses with it, and the unit tests parse real
 * argument vectors through it (with a middleware that stops before any handler).
 */
export function buildCli(args: string[]): Argv<Common> {
  return yargs(args)
    .scriptName('swarmform')
    .usage('$0 <command> [options]\n\nTurns an inventory file into a running Docker Swarm cluster, and operates it.')
    // Words after -- reach ssh/exec/service create as typed: yargs would otherwise turn 1e3, 0x10 and 1.50 into numbers.
    .parserConfiguration({ 'populate--': true, 'parse-positional-numbers': false })
    .option('inventory', { alias: 'i', type: 'string', describe: 'inventory file (default: inventories/lab.yml)' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output: JSON lines of events, then the result' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'a line for every host step, skipped ones too (default: one line per phase sums up what was skipped)' })
    .command(upCommand('up', 'provision, bootstrap, form the swarm and deploy the workloads (idempotent)', 'workloads'))
    .command(upCommand('provision', 'create the machines the inventory describes (phase 1 of up)', 'provision'))
    .command(upCommand('bootstrap', 'install, configure and start the engine, open swarm ports (up to phase 2)', 'bootstrap'))
    .command(withSubcommands(upCommand('swarm', 'form the swarm: managers one at a time, workers in parallel (up to phase 3); `swarm join-token` prints tokens', 'swarm'), [joinTokenCommand]))
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
      describe:
        'a shell, or a command after --, on one host; exits with its status. As with OpenSSH, the words after -- are ' +
        'joined with spaces into one command line for the remote shell: quote what the remote shell must see as one, ' +
        `e.g. swarmform ssh mgr-1 -- 'sudo docker node ls --format "{{.Hostname}} {{.Status}}"'`,
      handler: (a) => {
        const argv = typed<Common & { host: string }>(a);
        return run(argv, (ctx) => sshInto(ctx, argv.host, commandAfterDashes(a)), { render: false });
      },
    })
    .command({
      command: 'exec <target>',
      describe:
        'run a command (after --) in parallel on all, managers, workers, a group or hosts (comma-separated); the words ' +
        "are joined into one command line for each host's shell, as with OpenSSH, e.g. swarmform exec workers -- 'df -h / | tail -1'",
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
    .command(commands)
    .demandCommand(1, 'name a command, e.g. swarmform up')
    .strict()
    .fail((msg, err, y) => {
      if (err) throw err;
      process.stderr.write(`${y.help()}\n\nerror: ${msg}\n`);
      process.exit(ExitCode.usage);
    })
    .help()
    .alias('h', 'help')
    .version() as unknown as Argv<Common>;
}

export async function main(args = hideBin(process.argv)): Promise<void> {
  await buildCli(args).parseAsync();
}
