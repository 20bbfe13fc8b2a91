/** `swarmform lab prune`: housekeeping of the lab provider's shared cache on this machine (needs no inventory). */
import type { Argv, CommandModule } from 'yargs';
import { exitCodeOf } from '../../base/errors.js';
import { pruneLabCache } from '../../providers/lab/prune.js';
import { type Common, report } from '../command-kit.js';

type Args = Common;

const prune: CommandModule<Common, Args> = {
  command: 'prune',
  describe: "remove the lab's built OS images and package mirror (refused while any cluster's OS host uses them)",
  handler: async (a) => {
    try {
      const r = await pruneLabCache();
      const mb = (r.bytes / 1024 / 1024).toFixed(0);
      if (a.json) process.stdout.write(`${JSON.stringify({ type: 'result', command: 'lab prune', ...r })}\n`);
      else if (r.removed.length === 0) process.stdout.write('nothing to prune\n');
      else process.stdout.write(`removed ${r.removed.join(', ')} (${mb} MB)\n`);
    } catch (err) {
      report(err, a.json);
      process.exitCode = exitCodeOf(err);
    }
  },
};

export const labCommand: CommandModule<Common, Args> = {
  command: 'lab <command>',
  describe: 'the lab provider on this machine: prune its cached OS images and package mirror',
  builder: (y) => y.command(prune).demandCommand(1) as Argv<Args>,
  handler: () => undefined,
};
