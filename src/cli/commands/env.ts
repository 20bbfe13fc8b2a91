/** `swarmform env`: settings for the user's own docker CLI to talk to the cluster's leader, like `docker-machine env`. */
import type { Argv, CommandModule } from 'yargs';
import { detectShell, dockerEnv, formatEnv, type Shell, SHELLS, sshConfigStanza } from '../../core/env.js';
import { type Common, inventoryLabel, run } from '../command-kit.js';

type Args = Common & { shell?: string; unset: boolean; 'ssh-config': boolean };

export const envCommand: CommandModule<Common, Args> = {
  command: 'env',
  describe: 'print DOCKER_HOST=ssh://... for the leader, to eval in your shell (docker-machine env style)',
  builder: (y) =>
    y
      .option('shell', { type: 'string', choices: SHELLS, describe: 'shell syntax (default: from $SHELL, else bash)' })
      .option('unset', { alias: 'u', type: 'boolean', default: false, describe: 'print the commands that undo it' })
      .option('ssh-config', { type: 'boolean', default: false, describe: 'print only the ~/.ssh/config stanza that docker\'s ssh needs' }) as Argv<Args>,
  handler: (a) =>
    run(a, async (ctx) => {
      const shell = (a.shell as Shell | undefined) ?? detectShell();
      const inv = ctx.inventory.file;
      const invocation = `swarmform env${a.shell ? ` --shell ${shell}` : ''}${inv ? ` -i ${inventoryLabel(inv)}` : ''}`;
      if (a.unset) return formatEnv({ cluster: ctx.inventory.cluster, manager: '', isLeader: false, dockerHost: '', ssh: { host: '', port: 22, user: '', knownHosts: '' } }, shell, { unset: true, invocation: `${invocation} --unset` });
      const r = await dockerEnv(ctx);
      if (a.json) return { type: 'result', command: 'env', ...r, env: { DOCKER_HOST: r.dockerHost }, sshConfig: sshConfigStanza(r) };
      if (a['ssh-config']) return sshConfigStanza(r);
      return formatEnv(r, shell, { invocation });
    }, { render: false }),
};
