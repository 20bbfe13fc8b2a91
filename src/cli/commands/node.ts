/**
 * `swarmform node ls|inspect|promote|demote|update|rm` like `docker node`, and `swarmform swarm join-token`, through a
 * manager's Engine API over swarmform's SSH connection.
 */
import type { Argv, CommandModule } from 'yargs';
import { joinToken, nodeDemote, nodeInspect, nodeLs, nodePromote, nodeRm, nodeUpdate } from '../../core/node.js';
import { filtersOf } from '../../core/service.js';
import { UsageError } from '../../base/errors.js';
import { type Common, run } from '../command-kit.js';
import { table } from '../table.js';
import { list } from './service.js';

type Args = Common & Record<string, unknown>;

const ls: CommandModule<Common, Args> = {
  command: ['ls', 'list'],
  describe: 'list nodes (ID HOSTNAME STATUS AVAILABILITY MANAGER STATUS ENGINE VERSION)',
  builder: (y) =>
    y
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'only IDs' })
      .option('filter', { alias: 'f', type: 'string', describe: 'engine filter KEY=VALUE (role, membership, name, label, node.label)' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const f = list(a.filter);
      const rows = await nodeLs(ctx, f.length ? filtersOf(f) : undefined);
      if (a.json) return { type: 'result', command: 'node ls', nodes: rows };
      if (a.quiet) return rows.map((r) => r.id).join('\n');
      return table(
        ['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'MANAGER STATUS', 'ENGINE VERSION'],
        rows.map((r) => [r.id, r.hostname, r.status, r.availability, r.managerStatus, r.engineVersion]),
      );
    }, { render: false }),
};

const inspect: CommandModule<Common, Args> = {
  command: 'inspect <node..>',
  describe: 'show nodes as the engine has them (JSON); a node is named by inventory name, hostname or ID',
  builder: (y) => y.option('pretty', { type: 'boolean', default: false, describe: 'human-readable' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const nodes = await nodeInspect(ctx, list(a.node));
      if (!a.pretty || a.json) return JSON.stringify(nodes, null, 4);
      return nodes
        .map((n) =>
          [
            `ID:\t\t\t${n.ID}`,
            `Hostname:\t\t${n.Description?.Hostname ?? ''}`,
            `Joined at:\t\t${n.CreatedAt ?? ''}`,
            'Status:',
            ` State:\t\t\t${n.Status?.State ?? ''}`,
            ` Availability:\t\t${n.Spec.Availability ?? ''}`,
            ` Address:\t\t${n.Status?.Addr ?? ''}`,
            ...(n.ManagerStatus ? ['Manager Status:', ` Address:\t\t${n.ManagerStatus.Addr ?? ''}`, ` Raft Status:\t\t${n.ManagerStatus.Reachability ?? ''}`, ` Leader:\t\t${n.ManagerStatus.Leader ? 'Yes' : 'No'}`] : []),
            ...(Object.keys(n.Spec.Labels ?? {}).length ? ['Labels:', ...Object.entries(n.Spec.Labels ?? {}).map(([k, v]) => ` - ${k}=${v}`)] : []),
            `Engine Version:\t\t${n.Description?.Engine?.EngineVersion ?? ''}`,
          ].join('\n'),
        )
        .join('\n\n');
    }, { render: false }),
};

const promote: CommandModule<Common, Args> = {
  command: 'promote <node..>',
  describe: 'make workers managers',
  handler: (a) =>
    run(a, async (ctx) => {
      const r = await nodePromote(ctx, list(a.node));
      return a.json ? { type: 'result', command: 'node promote', nodes: r } : r.map((c) => c.message).join('\n');
    }, { render: false }),
};

const demote: CommandModule<Common, Args> = {
  command: 'demote <node..>',
  describe: 'make managers workers',
  handler: (a) =>
    run(a, async (ctx) => {
      const r = await nodeDemote(ctx, list(a.node));
      return a.json ? { type: 'result', command: 'node demote', nodes: r } : r.map((c) => c.message).join('\n');
    }, { render: false }),
};

const update: CommandModule<Common, Args> = {
  command: 'update <node..>',
  describe: 'change availability (active, pause, drain) and labels',
  builder: (y) =>
    y
      .option('availability', { type: 'string', describe: 'active | pause | drain (drain moves its tasks to other nodes)' })
      .option('label-add', { type: 'string', describe: 'add or change a node label KEY=value' })
      .option('label-rm', { type: 'string', describe: 'remove a node label' })
      .option('role', { type: 'string', describe: 'worker | manager' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const r = await nodeUpdate(ctx, list(a.node), {
        availability: a.availability as string | undefined,
        labelAdd: list(a['label-add']),
        labelRm: list(a['label-rm']),
        role: a.role as string | undefined,
      });
      return a.json ? { type: 'result', command: 'node update', nodes: r } : r.map((c) => c.message).join('\n');
    }, { render: false }),
};

const rm: CommandModule<Common, Args> = {
  command: ['rm <node..>', 'remove'],
  describe: 'remove nodes from the swarm (a node that is not down only with --force)',
  builder: (y) => y.option('force', { alias: 'f', type: 'boolean', default: false, describe: 'remove a node that is still up' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const removed = await nodeRm(ctx, list(a.node), { force: a.force as boolean });
      return a.json ? { type: 'result', command: 'node rm', removed } : removed.join('\n');
    }, { render: false }),
};

export const nodeCommand: CommandModule<Common, Common> = {
  command: 'node',
  describe: 'manage swarm nodes like `docker node` (ls, inspect, promote, demote, update, rm)',
  builder: (y) =>
    y.command(ls).command(inspect).command(promote).command(demote).command(update).command(rm).demandCommand(1, 'name a node command, e.g. swarmform node ls') as Argv<Common>,
  handler: () => {
    throw new UsageError('name a node command, e.g. swarmform node ls');
  },
};

/**
 * `swarm join-token worker|manager [--rotate] [-q]`: a subcommand of the `swarm` phase command. The token is printed
 * only here, on request, and not through the redaction filter (it is the output asked for).
 */
export const joinTokenCommand: CommandModule<Common, Args> = {
  command: 'join-token <role>',
  describe: 'print the join command (or with -q only the token) for workers or managers; --rotate replaces it',
  builder: (y) =>
    y
      .positional('role', { type: 'string', choices: ['worker', 'manager'] })
      .option('rotate', { type: 'boolean', default: false, describe: 'replace the token (in the swarm and the state secrets)' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'only the token' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const role = a.role as 'worker' | 'manager';
      const r = await joinToken(ctx, role, { rotate: a.rotate as boolean });
      // Written directly: run() would redact the token, which is the very thing asked for.
      if (a.json) process.stdout.write(`${JSON.stringify({ type: 'result', command: 'swarm join-token', role, token: r.token, rotated: r.rotated, manager: `${r.manager.address}:${r.manager.port}` })}\n`);
      else if (a.quiet) process.stdout.write(`${r.token}\n`);
      else {
        const lines = [
          ...(r.rotated ? [`Successfully rotated ${role} join token.`, ''] : []),
          `To add a ${role} to this swarm, run the following command:`,
          '',
          `    docker swarm join --token ${r.token} ${r.manager.address}:${r.manager.port}`,
          '',
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      return undefined;
    }, { render: false }),
};
