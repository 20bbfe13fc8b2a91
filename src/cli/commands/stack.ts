/** `swarmform stack deploy|ls|services|ps|rm`: compose stacks, as `docker stack` does, through a manager's Engine API. */
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../base/errors.js';
import { stackDeploy, type StackDeployResult, stackLs, stackPs, stackRm, stackServicesOf } from '../../core/stack.js';
import { type Common, run, typed } from '../command-kit.js';
import { table } from '../table.js';
import { list } from './service.js';

type DeployArgs = Common & { name: string; 'compose-file': string[]; prune: boolean; detach: boolean; timeout: number };

const deploy: CommandModule<Common, DeployArgs> = {
  command: 'deploy <name>',
  describe: 'create or update a stack from compose files (docker stack deploy)',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true, describe: 'stack name (prefix of every object: NAME_service)' })
      // One value per -c, repeated for more (as docker's -c): `array: true` would also take the stack name that follows
      // (`deploy -c FILE NAME` failed with "Not enough non-option arguments"); yargs collects repeats into an array.
      .option('compose-file', {
        alias: 'c',
        type: 'string',
        nargs: 1,
        demandOption: true,
        coerce: (v: unknown) => list(v),
        describe: 'compose file; repeat -c to merge several, later ones win',
      })
      .option('prune', { type: 'boolean', default: false, describe: 'remove services of the stack the files no longer name' })
      .option('detach', { alias: 'd', type: 'boolean', default: false, describe: 'do not wait for the tasks to run' })
      .option('timeout', { type: 'number', default: 180, describe: 'seconds to wait for every task to run' }) as unknown as Argv<DeployArgs>,
  handler: (a) => {
    const argv = typed<DeployArgs>(a);
    return run(argv, async (ctx) => {
      const r = await stackDeploy(ctx, { name: argv.name, files: argv['compose-file'], prune: argv.prune, detach: argv.detach, timeoutS: argv.timeout });
      return argv.json ? { type: 'result', command: 'stack deploy', ...r } : formatDeploy(r, argv.detach);
    });
  },
};

const ls: CommandModule<Common, Common> = {
  command: 'ls',
  describe: 'list stacks (docker stack ls)',
  handler: (a) => {
    const argv = typed<Common>(a);
    return run(argv, async (ctx) => {
      const stacks = await stackLs(ctx);
      return argv.json ? stacks : table(['NAME', 'SERVICES'], stacks.map((s) => [s.name, String(s.services)]));
    }, { render: false });
  },
};

const services: CommandModule<Common, Common & { name: string }> = {
  command: 'services <name>',
  describe: 'list the services of a stack (docker stack services)',
  handler: (a) => {
    const argv = typed<Common & { name: string }>(a);
    return run(argv, async (ctx) => {
      const rows = await stackServicesOf(ctx, argv.name);
      if (argv.json) return rows;
      if (rows.length === 0) return `Nothing found in stack: ${argv.name}`;
      return table(['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS'], rows.map((r) => [r.id.slice(0, 12), r.name, r.mode, r.replicas, r.image, r.ports]));
    }, { render: false });
  },
};

const ps: CommandModule<Common, Common & { name: string; 'no-trunc': boolean }> = {
  command: 'ps <name>',
  describe: 'list the tasks of a stack (docker stack ps)',
  builder: (y) => y.option('no-trunc', { type: 'boolean', default: false, describe: 'do not truncate IDs and errors' }) as unknown as Argv<Common & { name: string; 'no-trunc': boolean }>,
  handler: (a) => {
    const argv = typed<Common & { name: string; 'no-trunc': boolean }>(a);
    return run(argv, async (ctx) => {
      const rows = await stackPs(ctx, argv.name);
      if (argv.json) return rows;
      if (rows.length === 0) return `Nothing found in stack: ${argv.name}`;
      const t = (s: string, n: number) => (argv['no-trunc'] || s.length <= n ? s : `${s.slice(0, n - 1)}…`);
      return table(
        ['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR', 'PORTS'],
        rows.map((r) => [argv['no-trunc'] ? r.id : r.id.slice(0, 12), r.name, r.image, r.node, r.desiredState, r.currentState, r.error ? `"${t(r.error, 30)}"` : '', r.ports]),
      );
    }, { render: false });
  },
};

const rm: CommandModule<Common, Common & { names: string[] }> = {
  command: 'rm <names..>',
  aliases: ['remove', 'down'],
  describe: 'remove stacks: services, secrets, configs and networks (docker stack rm); volumes stay',
  handler: (a) => {
    const argv = typed<Common & { names: string[] }>(a);
    return run(argv, async (ctx) => {
      const results = [];
      for (const name of argv.names) results.push(await stackRm(ctx, name));
      if (argv.json) return { type: 'result', command: 'stack rm', stacks: results };
      return results
        .map((r) => {
          const n = r.services.length + r.secrets.length + r.configs.length + r.networks.length;
          if (n === 0) return `Nothing found in stack: ${r.stack}`;
          return `Removed stack ${r.stack}: ${r.services.length} service(s), ${r.secrets.length} secret(s), ${r.configs.length} config(s), ${r.networks.length} network(s)`;
        })
        .join('\n');
    });
  },
};

export const stackCommand: CommandModule<Common, Common> = {
  command: 'stack <command>',
  describe: 'compose stacks: deploy, ls, services, ps, rm (as docker stack)',
  builder: (y) =>
    (y as Argv<Common>)
      .command(deploy as unknown as CommandModule<Common, Common>)
      .command(ls)
      .command(services as unknown as CommandModule<Common, Common>)
      .command(ps as unknown as CommandModule<Common, Common>)
      .command(rm as unknown as CommandModule<Common, Common>)
      .demandCommand(1, 'name a stack command: deploy, ls, services, ps or rm'),
  handler: () => {
    throw new UsageError('name a stack command: deploy, ls, services, ps or rm');
  },
};

function formatDeploy(r: StackDeployResult, detached: boolean): string {
  if (r.changed === 0) return `Nothing to change: stack ${r.stack} is up to date (${r.unchanged.length} service(s) unchanged).`;
  const out = [`Stack ${r.stack} deployed: ${r.created.length} service(s) created, ${r.updated.length} updated, ${r.unchanged.length} unchanged${r.removed.length ? `, ${r.removed.length} removed` : ''}.`];
  const made = [
    r.networks.length ? `network(s) ${r.networks.join(', ')}` : '',
    r.secrets.length ? `secret(s) ${r.secrets.join(', ')}` : '',
    r.configs.length ? `config(s) ${r.configs.join(', ')}` : '',
  ].filter(Boolean);
  if (made.length) out.push(`Created ${made.join('; ')}.`);
  out.push(detached ? `Not waiting for tasks (--detach): see swarmform stack ps ${r.stack}` : 'Every task is running.');
  out.push(`Next: swarmform stack services ${r.stack}; swarmform stack ps ${r.stack}`);
  return out.join('\n');
}
