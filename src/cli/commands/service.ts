/**
 * `swarmform service create|ls|ps|inspect|logs|scale|update|rollback|rm`: the docker CLI's service verbs against
 * the inventory's cluster, through a manager's Engine API over swarmform's SSH connection.
 */
import type { Argv, CommandModule } from 'yargs';
import {
  emptyUpdate,
  serviceCreate,
  serviceInspect,
  serviceLogs,
  serviceLs,
  servicePs,
  serviceRm,
  serviceRollback,
  serviceScale,
  serviceUpdate,
} from '../../core/service.js';
import { SwarmformError, UsageError } from '../../base/errors.js';
import type { WatchOutcome } from '../../swarm/service-progress.js';
import { prettyService, type SpecFlags, type UpdateFlags } from '../../swarm/service-ops.js';
import { redact } from '../../state/redact.js';
import type { Context } from '../../cluster/context.js';
import { type Common, run } from '../command-kit.js';
import { ServiceProgressView } from '../render/service-progress.js';
import { table } from '../table.js';

/** A repeatable string option as a list (yargs gives a string for one, an array for several). */
export function list(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

type Args = Common & Record<string, unknown>;

function updateConfigOptions(y: Argv<Common>, prefix: 'update' | 'rollback'): Argv<Common> {
  const what = prefix === 'update' ? 'updated' : 'rolled back';
  return y
    .option(`${prefix}-parallelism`, { type: 'number', describe: `tasks ${what} at once (0 = all)` })
    .option(`${prefix}-delay`, { type: 'string', describe: `wait between ${what} batches (e.g. 10s)` })
    .option(`${prefix}-failure-action`, { type: 'string', describe: prefix === 'update' ? 'pause | continue | rollback' : 'pause | continue' })
    .option(`${prefix}-monitor`, { type: 'string', describe: 'time to watch each task for failure (e.g. 5s)' })
    .option(`${prefix}-max-failure-ratio`, { type: 'number', describe: 'failure rate tolerated, 0..1' })
    .option(`${prefix}-order`, { type: 'string', describe: 'stop-first | start-first' });
}

function updateFlags(a: Args, prefix: 'update' | 'rollback'): UpdateFlags {
  return {
    parallelism: a[`${prefix}-parallelism`] as number | undefined,
    delay: a[`${prefix}-delay`] as string | undefined,
    failureAction: a[`${prefix}-failure-action`] as string | undefined,
    monitor: a[`${prefix}-monitor`] as string | undefined,
    maxFailureRatio: a[`${prefix}-max-failure-ratio`] as number | undefined,
    order: a[`${prefix}-order`] as string | undefined,
  };
}

function resourceOptions(y: Argv<Common>): Argv<Common> {
  return y
    .option('limit-cpu', { type: 'string', describe: 'CPU limit (e.g. 0.5)' })
    .option('limit-memory', { type: 'string', describe: 'memory limit (e.g. 128M)' })
    .option('reserve-cpu', { type: 'string', describe: 'CPUs reserved' })
    .option('reserve-memory', { type: 'string', describe: 'memory reserved' })
    .option('restart-condition', { type: 'string', describe: 'none | on-failure | any' });
}

/** The options `create` and `update` share (update and rollback configs, resources, restart condition). */
function specOptions(y: Argv<Common>): Argv<Common> {
  return resourceOptions(updateConfigOptions(updateConfigOptions(y, 'update'), 'rollback'));
}

/** Those shared options as parsed, for `buildCreateSpec` and `buildUpdateSpec`. */
function specFlags(a: Args): SpecFlags {
  return {
    update: updateFlags(a, 'update'),
    rollback: updateFlags(a, 'rollback'),
    restartCondition: a['restart-condition'] as string | undefined,
    limitCpu: a['limit-cpu'] as string | undefined,
    limitMemory: a['limit-memory'] as string | undefined,
    reserveCpu: a['reserve-cpu'] as string | undefined,
    reserveMemory: a['reserve-memory'] as string | undefined,
  };
}

function progressOptions(y: Argv<Common>): Argv<Common> {
  return y
    .option('detach', { alias: 'd', type: 'boolean', default: false, describe: 'return once the change is accepted, without waiting for the tasks' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress output' });
}

/** The words after the image: positional ones, then any after `--`. */
function commandWords(a: Args): string[] {
  return [...list(a.command), ...list(a['--'])];
}

/** Ends a watched change: an unfinished watch is an error saying it goes on in the background. */
function finish(name: string, outcome: WatchOutcome | undefined): void {
  if (outcome && !outcome.converged) {
    throw new SwarmformError(`service ${name}: not converged in time; the operation continues in the background`, {
      hint: `use \`swarmform service ps ${name}\` to check progress`,
    });
  }
}

/** The progress view, drawing the `progress` events of the run's EventBus (none with --quiet). */
function view(a: Args, ctx: Context): ServiceProgressView {
  if (a.quiet) return new ServiceProgressView(process.stdout, a.json ? 'json' : 'plain');
  const v = ServiceProgressView.forStdout(a.json);
  ctx.events.on(v.listener);
  return v;
}

const create: CommandModule<Common, Args> = {
  command: 'create <image> [command..]',
  describe: 'create a service (put -- before a command that has options: create --name w img -- sh -c "...")',
  builder: (y) =>
    specOptions(
      progressOptions(y)
        .positional('image', { type: 'string', describe: 'image present on the nodes (no registry is asked)' })
        .positional('command', { type: 'string', array: true, describe: 'command and arguments' })
        .option('name', { type: 'string', describe: 'service name' })
        .option('replicas', { type: 'number', describe: 'number of tasks (replicated mode)' })
        .option('mode', { type: 'string', default: 'replicated', describe: 'replicated | global' })
        .option('publish', { alias: 'p', type: 'string', describe: 'publish a port: [published:]target[/udp] or mode=host,published=P,target=T' })
        .option('env', { alias: 'e', type: 'string', describe: 'environment variable KEY=value' })
        .option('label', { alias: 'l', type: 'string', describe: 'service label KEY=value' })
        .option('container-label', { type: 'string', describe: 'container label KEY=value' })
        .option('constraint', { type: 'string', describe: 'placement constraint, e.g. node.labels.disk==ssd' })
        .option('network', { type: 'string', describe: 'attach to an overlay network' })
        .option('restart-delay', { type: 'string', describe: 'delay between restarts' })
        .option('restart-max-attempts', { type: 'number', describe: 'restarts before giving up' })
        .option('workdir', { alias: 'w', type: 'string', describe: 'working directory in the container' })
        .option('user', { alias: 'u', type: 'string', describe: 'user in the container' }),
    ) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const v = view(a, ctx);
      const r = await serviceCreate(
        ctx,
        {
          name: a.name as string | undefined,
          image: a.image as string,
          command: commandWords(a),
          replicas: a.replicas as number | undefined,
          mode: a.mode as 'replicated' | 'global',
          publish: list(a.publish),
          env: list(a.env),
          label: list(a.label),
          containerLabel: list(a['container-label']),
          constraint: list(a.constraint),
          network: list(a.network),
          ...specFlags(a),
          restartDelay: a['restart-delay'] as string | undefined,
          restartMaxAttempts: a['restart-max-attempts'] as number | undefined,
          workdir: a.workdir as string | undefined,
          user: a.user as string | undefined,
        },
        { detach: a.detach as boolean, onCreated: (id) => v.say(id) },
      );
      finish(r.name, r.outcome);
      return a.json ? { type: 'result', command: 'service create', id: r.id, name: r.name, converged: r.outcome?.converged } : undefined;
    }, { render: false }),
};

const ls: CommandModule<Common, Args> = {
  command: ['ls', 'list'],
  describe: 'list services (ID NAME MODE REPLICAS IMAGE PORTS)',
  builder: (y) =>
    y
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'only IDs' })
      .option('filter', { alias: 'f', type: 'string', describe: 'engine filter KEY=VALUE (id, name, label, mode)' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const rows = await serviceLs(ctx, { filter: list(a.filter) });
      if (a.json) return { type: 'result', command: 'service ls', services: rows };
      if (a.quiet) return rows.map((r) => r.id).join('\n') || undefined;
      return table(['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS'], rows.map((r) => [r.id.slice(0, 12), r.name, r.mode, r.replicas, r.image, r.ports]));
    }, { render: false }),
};

const ps: CommandModule<Common, Args> = {
  command: 'ps <service..>',
  describe: 'list the tasks of services (ID NAME IMAGE NODE DESIRED STATE CURRENT STATE ERROR PORTS)',
  builder: (y) =>
    y
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'only task IDs' })
      .option('no-trunc', { type: 'boolean', default: false, describe: 'do not truncate IDs, images and errors' })
      .option('filter', { alias: 'f', type: 'string', describe: 'engine filter KEY=VALUE (desired-state, node, id, name)' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const { rows } = await servicePs(ctx, list(a.service), { filter: list(a.filter), noTrunc: a['no-trunc'] as boolean });
      if (a.json) return { type: 'result', command: 'service ps', tasks: rows };
      if (a.quiet) return rows.map((r) => r.id).join('\n') || undefined;
      return table(
        ['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR', 'PORTS'],
        rows.map((r) => [r.id, r.name, r.image, r.node, r.desiredState, r.currentState, r.error, r.ports]),
      );
    }, { render: false }),
};

const inspect: CommandModule<Common, Args> = {
  command: 'inspect <service..>',
  describe: 'show services as the engine has them (JSON), or --pretty',
  builder: (y) => y.option('pretty', { type: 'boolean', default: false, describe: 'human-readable' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const { services, networks } = await serviceInspect(ctx, list(a.service));
      if (a.pretty && !a.json) return services.map((s) => prettyService(s, networks)).join('\n\n');
      return JSON.stringify(services, null, 4);
    }, { render: false }),
};

const logs: CommandModule<Common, Args> = {
  command: 'logs <service>',
  describe: "a service's task logs, each line prefixed with its task and node",
  builder: (y) =>
    y
      .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'keep streaming new lines (Ctrl-C to stop)' })
      .option('timestamps', { alias: 't', type: 'boolean', default: false, describe: 'show timestamps' })
      .option('tail', { alias: 'n', type: 'string', describe: 'lines from the end of each task log (default all)' })
      .option('since', { type: 'string', describe: 'only lines since a timestamp or duration (e.g. 10m)' })
      .option('no-task-ids', { type: 'boolean', default: false, describe: 'leave task IDs out of the prefix' })
      .option('no-trunc', { type: 'boolean', default: false, describe: 'full task IDs' })
      .option('raw', { type: 'boolean', default: false, describe: 'no prefix: the lines as the tasks wrote them' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      let width = 0;
      // Lines are written as they come; the prefix is padded to the longest one seen so far, as docker pads.
      await serviceLogs(
        ctx,
        a.service as string,
        {
          follow: a.follow as boolean,
          timestamps: a.timestamps as boolean,
          tail: a.tail as string | undefined,
          since: a.since as string | undefined,
          noTaskIds: a['no-task-ids'] as boolean,
          noTrunc: a['no-trunc'] as boolean,
        },
        (l) => {
          if (a.json) {
            process.stdout.write(`${redact(JSON.stringify({ type: 'log', ...l }))}\n`);
            return;
          }
          const out = l.stream === 'stderr' ? process.stderr : process.stdout;
          if (a.raw) {
            out.write(`${redact(l.message)}\n`);
            return;
          }
          width = Math.max(width, l.source.length);
          const text = `${l.timestamp ? `${l.timestamp} ` : ''}${l.source.padEnd(width)}    | ${l.message}`;
          out.write(`${redact(text)}\n`);
        },
      );
      return undefined;
    }, { render: false }),
};

const scale: CommandModule<Common, Args> = {
  command: 'scale <pairs..>',
  describe: 'set the number of tasks of replicated services: scale SERVICE=REPLICAS..., e.g. scale web=4 api=2',
  builder: (y) => progressOptions(y) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const v = view(a, ctx);
      const done = await serviceScale(ctx, list(a.pairs), {
        detach: a.detach as boolean,
        onScaled: (name, n) => v.say(`${name} scaled to ${n}`),
      });
      for (const d of done) finish(d.name, d.outcome);
      return a.json ? { type: 'result', command: 'service scale', services: done.map((d) => ({ name: d.name, replicas: d.replicas, converged: d.outcome?.converged })) } : undefined;
    }, { render: false }),
};

const update: CommandModule<Common, Args> = {
  command: 'update <service>',
  describe: 'change a service (rolling update by its update config), with progress',
  builder: (y) =>
    specOptions(
      progressOptions(y)
        .option('image', { type: 'string', describe: 'new image (present on the nodes)' })
        .option('replicas', { type: 'number', describe: 'number of tasks' })
        .option('env-add', { type: 'string', describe: 'add or change KEY=value' })
        .option('env-rm', { type: 'string', describe: 'remove KEY' })
        .option('label-add', { type: 'string', describe: 'add or change a service label KEY=value' })
        .option('label-rm', { type: 'string', describe: 'remove a service label' })
        .option('constraint-add', { type: 'string', describe: 'add a placement constraint' })
        .option('constraint-rm', { type: 'string', describe: 'remove a placement constraint' })
        .option('publish-add', { type: 'string', describe: 'add or change a published port' })
        .option('publish-rm', { type: 'string', describe: 'remove a published port (by published port[/protocol])' })
        .option('network-add', { type: 'string', describe: 'attach to a network' })
        .option('network-rm', { type: 'string', describe: 'detach from a network' })
        .option('args', { type: 'string', describe: 'new command, as one string split on spaces' })
        .option('force', { type: 'boolean', default: false, describe: 'replace the tasks even if nothing changed' }),
    ) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const v = view(a, ctx);
      const r = await serviceUpdate(
        ctx,
        a.service as string,
        {
          ...emptyUpdate(),
          image: a.image as string | undefined,
          replicas: a.replicas as number | undefined,
          envAdd: list(a['env-add']),
          envRm: list(a['env-rm']),
          labelAdd: list(a['label-add']),
          labelRm: list(a['label-rm']),
          constraintAdd: list(a['constraint-add']),
          constraintRm: list(a['constraint-rm']),
          publishAdd: list(a['publish-add']),
          publishRm: list(a['publish-rm']),
          networkAdd: list(a['network-add']),
          networkRm: list(a['network-rm']),
          command: a.args === undefined ? undefined : String(a.args).split(/\s+/).filter(Boolean),
          force: a.force as boolean,
          ...specFlags(a),
        },
        { detach: a.detach as boolean, onUpdated: (name) => v.say(name) },
      );
      for (const w of r.warnings) process.stderr.write(`warning: ${redact(w)}\n`);
      finish(r.name, r.outcome);
      return a.json ? { type: 'result', command: 'service update', name: r.name, id: r.id, converged: r.outcome?.converged } : undefined;
    }, { render: false }),
};

const rollback: CommandModule<Common, Args> = {
  command: 'rollback <service>',
  describe: "go back to the service's previous spec, with progress",
  builder: (y) => progressOptions(y) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const v = view(a, ctx);
      const r = await serviceRollback(ctx, a.service as string, { detach: a.detach as boolean, onUpdated: (name) => v.say(name) });
      finish(r.name, r.outcome);
      return a.json ? { type: 'result', command: 'service rollback', name: r.name, id: r.id, converged: r.outcome?.converged } : undefined;
    }, { render: false }),
};

const rm: CommandModule<Common, Args> = {
  command: ['rm <service..>', 'remove'],
  describe: 'remove services',
  handler: (a) =>
    run(a, async (ctx) => {
      const removed = await serviceRm(ctx, list(a.service));
      return a.json ? { type: 'result', command: 'service rm', removed } : removed.join('\n');
    }, { render: false }),
};

export const serviceCommand: CommandModule<Common, Common> = {
  command: 'service',
  describe: 'manage swarm services like `docker service` (create, ls, ps, inspect, logs, scale, update, rollback, rm)',
  builder: (y) =>
    y
      .command(create as CommandModule<Common, Args>)
      .command(ls)
      .command(ps)
      .command(inspect)
      .command(logs)
      .command(scale)
      .command(update)
      .command(rollback)
      .command(rm)
      .demandCommand(1, 'name a service command, e.g. swarmform service ls') as Argv<Common>,
  handler: () => {
    throw new UsageError('name a service command, e.g. swarmform service ls');
  },
};
