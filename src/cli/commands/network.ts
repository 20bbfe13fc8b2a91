/** `swarmform network create|ls|rm` like `docker network`, for the swarm's overlay networks. */
import type { Argv, CommandModule } from 'yargs';
import { networkCreate, networkLs, networkRm } from '../../core/network.js';
import { filtersOf } from '../../core/service.js';
import { UsageError } from '../../base/errors.js';
import { type Common, run } from '../command-kit.js';
import { table } from '../table.js';
import { list } from './service.js';

type Args = Common & Record<string, unknown>;

const create: CommandModule<Common, Args> = {
  command: 'create <name>',
  describe: 'create an overlay network (-d overlay), optionally --attachable',
  builder: (y) =>
    y
      .option('driver', { alias: 'd', type: 'string', default: 'overlay', describe: 'overlay (the only driver that spans the swarm)' })
      .option('attachable', { type: 'boolean', default: false, describe: 'let standalone containers attach' })
      .option('internal', { type: 'boolean', default: false, describe: 'no external connectivity' })
      .option('subnet', { type: 'string', describe: 'subnet in CIDR form' })
      .option('gateway', { type: 'string', describe: 'gateway of the subnet' })
      .option('label', { type: 'string', describe: 'network label KEY=value' })
      .option('opt', { alias: 'o', type: 'string', describe: 'driver option KEY=value (e.g. encrypted)' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const id = await networkCreate(ctx, {
        name: a.name as string,
        driver: a.driver as string,
        attachable: a.attachable as boolean,
        internal: a.internal as boolean,
        subnet: list(a.subnet),
        gateway: list(a.gateway),
        label: list(a.label),
        opt: list(a.opt),
      });
      return a.json ? { type: 'result', command: 'network create', id, name: a.name } : id;
    }, { render: false }),
};

const ls: CommandModule<Common, Args> = {
  command: ['ls', 'list'],
  describe: 'list networks (NETWORK ID NAME DRIVER SCOPE)',
  builder: (y) =>
    y
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'only IDs' })
      .option('filter', { alias: 'f', type: 'string', describe: 'engine filter KEY=VALUE (driver, scope, name, label)' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const f = list(a.filter);
      const rows = await networkLs(ctx, f.length ? filtersOf(f) : undefined);
      if (a.json) return { type: 'result', command: 'network ls', networks: rows };
      if (a.quiet) return rows.map((r) => r.id.slice(0, 12)).join('\n');
      return table(['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'], rows.map((r) => [r.id.slice(0, 12), r.name, r.driver, r.scope]));
    }, { render: false }),
};

const rm: CommandModule<Common, Args> = {
  command: ['rm <network..>', 'remove'],
  describe: 'remove networks',
  handler: (a) =>
    run(a, async (ctx) => {
      const removed = await networkRm(ctx, list(a.network));
      return a.json ? { type: 'result', command: 'network rm', removed } : removed.join('\n');
    }, { render: false }),
};

export const networkCommand: CommandModule<Common, Common> = {
  command: 'network',
  describe: 'manage overlay networks like `docker network` (create, ls, rm)',
  builder: (y) => y.command(create).command(ls).command(rm).demandCommand(1, 'name a network command, e.g. swarmform network ls') as Argv<Common>,
  handler: () => {
    throw new UsageError('name a network command, e.g. swarmform network ls');
  },
};
