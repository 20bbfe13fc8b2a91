/**
 * `env`: the settings that point the user's own docker CLI at the cluster's leader, as `docker-machine env` did.
 * Docker's ssh transport (`DOCKER_HOST=ssh://user@host:port`) runs the system ssh client, which runs
 * `docker system dial-stdio` on the remote side: it needs the docker CLI on the leader and an ssh that logs in
 * without prompts (key and known host), which the ssh config stanza we print provides.
 */
import type { Context } from '../cluster/context.js';
import { withManager } from '../cluster/manager.js';

export interface EnvResult {
  cluster: string;
  /** The manager DOCKER_HOST points at, and whether it is the Raft leader (else the leader did not answer). */
  manager: string;
  isLeader: boolean;
  dockerHost: string;
  ssh: { host: string; port: number; user: string; keyPath?: string; knownHosts: string };
}

/** Reads which manager leads (over swarmform's own SSH connections) and builds DOCKER_HOST for it. */
export function dockerEnv(ctx: Context): Promise<EnvResult> {
  return withManager(ctx, async (h) => {
    const { host, port, user, keyPath } = h.machine.ssh;
    const hostPart = host.includes(':') ? `[${host}]` : host;
    return {
      cluster: ctx.inventory.cluster,
      manager: h.machine.name,
      isLeader: h.isLeader,
      dockerHost: `ssh://${user}@${hostPart}:${port}`,
      ssh: { host, port, user, keyPath, knownHosts: ctx.state.knownHostsPath },
    };
  });
}

export type Shell = 'bash' | 'zsh' | 'sh' | 'fish' | 'powershell' | 'cmd';
export const SHELLS: Shell[] = ['bash', 'zsh', 'sh', 'fish', 'powershell', 'cmd'];

/** The shell to print for: `--shell`, else guessed from $SHELL (fish), else POSIX. */
export function detectShell(env: NodeJS.ProcessEnv = process.env): Shell {
  const base = (env.SHELL ?? '').split('/').pop() ?? '';
  return (SHELLS as string[]).includes(base) ? (base as Shell) : 'bash';
}

/** An OpenSSH config stanza that lets the system ssh (and so docker) log in to the manager without prompts. */
export function sshConfigStanza(r: EnvResult): string {
  return [
    `Host ${r.ssh.host}`,
    `  User ${r.ssh.user}`,
    `  Port ${r.ssh.port}`,
    ...(r.ssh.keyPath ? [`  IdentityFile ${r.ssh.keyPath}`, '  IdentitiesOnly yes'] : []),
    `  UserKnownHostsFile ${r.ssh.knownHosts}`,
    '  StrictHostKeyChecking yes',
  ].join('\n');
}

/** The lines to eval, in the shell's syntax, with the shell's comments explaining them. */
export function formatEnv(r: EnvResult, shell: Shell, opts: { unset?: boolean; invocation?: string } = {}): string {
  const vars: [string, string][] = [['DOCKER_HOST', r.dockerHost]];
  const comment = shell === 'cmd' ? 'REM ' : '# ';
  const set = (k: string, v: string) => {
    switch (shell) {
      case 'fish':
        return `set -gx ${k} "${v}";`;
      case 'powershell':
        return `$Env:${k} = "${v}"`;
      case 'cmd':
        return `SET ${k}=${v}`;
      default:
        return `export ${k}="${v}"`;
    }
  };
  const unset = (k: string) => {
    switch (shell) {
      case 'fish':
        return `set -e ${k};`;
      case 'powershell':
        return `Remove-Item Env:\\${k}`;
      case 'cmd':
        return `SET ${k}=`;
      default:
        return `unset ${k}`;
    }
  };
  const inv = opts.invocation ?? 'swarmform env';
  const howTo =
    shell === 'fish' ? `eval (${inv})` : shell === 'powershell' ? `& ${inv} | Invoke-Expression` : shell === 'cmd' ? `@FOR /f "tokens=*" %i IN ('${inv}') DO @%i` : `eval $(${inv})`;
  if (opts.unset) return [...vars.map(([k]) => unset(k)), `${comment}Run this command to configure your shell:`, `${comment}${howTo}`].join('\n');
  const lines = vars.map(([k, v]) => set(k, v));
  lines.push(
    `${comment}DOCKER_HOST points at ${r.manager}${r.isLeader ? ', the leader' : ' (the leader did not answer)'} of cluster ${r.cluster}.`,
    `${comment}Docker's ssh transport runs the system ssh client, which runs \`docker system dial-stdio\` on ${r.manager}:`,
    `${comment}that needs the docker CLI there (lab hosts have it) and an ssh login without prompts. Add to ~/.ssh/config`,
    `${comment}(or run \`${inv.replace(/ env\b/, ' env --ssh-config')} >> ~/.ssh/config\`):`,
    ...sshConfigStanza(r).split('\n').map((l) => `${comment}  ${l}`),
    `${comment}Run this command to configure your shell:`,
    `${comment}${howTo}`,
  );
  return lines.join('\n');
}
