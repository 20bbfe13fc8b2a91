/** Starts, restarts or stops the engine through the host's init system, or a supervised direct start without one. */
import { HostStepError } from '../base/errors.js';
import { pollUntil } from '../run/poll.js';
import type { Remote } from '../remote/remote.js';
import { render } from './templates.js';

export type EngineInit = 'systemd' | 'openrc' | 'sysv' | 'none';

export const DOCKERD_CTL = '/usr/local/lib/swarmform/dockerd-ctl';

/** Writes the service definition the init system needs for a bundle engine (packages bring their own). */
export async function ensureServiceDefinition(remote: Remote, init: EngineInit, dockerd: string, fromBundle: boolean): Promise<boolean> {
  if (init === 'none') return writeIfChanged(remote, DOCKERD_CTL, render('service/dockerd-ctl.sh.njk', { dockerd }), 0o755);
  if (!fromBundle) return false;
  if (init === 'systemd') {
    const changed = await writeIfChanged(remote, '/etc/systemd/system/docker.service', render('service/docker.service.njk', { dockerd }), 0o644);
    if (changed) await remote.check('systemctl daemon-reload && systemctl enable docker >/dev/null 2>&1', 'engine service');
    return changed;
  }
  if (init === 'openrc') {
    const changed = await writeIfChanged(remote, '/etc/init.d/docker', render('service/docker.openrc.njk', { dockerd }), 0o755);
    if (changed) await remote.check('rc-update add docker default >/dev/null 2>&1 || true', 'engine service');
    return changed;
  }
  throw new HostStepError(remote.name, 'engine service', 'a bundle engine needs systemd, OpenRC or no init system; this host uses SysV init', {
    hint: 'use `swarm.install: packages` on this host',
  });
}

/** The shell command that performs `action` on the engine for this init system. */
export function engineCommand(init: EngineInit, action: 'start' | 'restart' | 'stop'): string {
  switch (init) {
    case 'systemd':
      return `systemctl ${action} docker`;
    case 'openrc':
      return `rc-service docker ${action}`;
    case 'sysv':
      return `service docker ${action}`;
    case 'none':
      return `${DOCKERD_CTL} ${action}`;
  }
}

/** Starts (or restarts) the engine and waits until its API answers a ping over the SSH connection. */
export async function startEngine(remote: Remote, init: EngineInit, action: 'start' | 'restart', timeoutMs = 90_000): Promise<string> {
  await remote.check(engineCommand(init, action), 'start engine');
  const version = await pollUntil(
    async () => {
      await remote.engine().ping();
      const v = (await remote.engine().version()) as { Version?: string };
      return v.Version ?? 'unknown';
    },
    {
      timeoutMs,
      intervalMs: 250,
      onTimeout: (last) =>
        new HostStepError(remote.name, 'start engine', `the engine did not answer within ${timeoutMs / 1000} s${last instanceof Error ? `: ${last.message}` : ''}`, {
          hint: 'look at the engine log on the host (/var/log/dockerd.log, or journalctl -u docker)',
        }),
    },
  );
  return version;
}

async function writeIfChanged(remote: Remote, path: string, content: string, mode: number): Promise<boolean> {
  const have = await remote.run(`cat ${path} 2>/dev/null`);
  if (have.code === 0 && have.stdout === content) return false;
  await remote.check(`mkdir -p $(dirname ${path})`, 'engine service');
  await remote.putContent(content, path, mode);
  return true;
}

/** The init system that runs a machine's engine: the provider's word, else detected on the host (one facts round trip). */
export async function engineInitOf(remote: Remote, declared: EngineInit | 'detect'): Promise<EngineInit> {
  if (declared !== 'detect') return declared;
  const { gatherFacts } = await import('./facts.js');
  return (await gatherFacts(remote)).init;
}

/** Stops the engine through its init system (the supervisor on hosts without one) and waits until its API is gone. */
export async function stopEngine(remote: Remote, init: EngineInit, timeoutMs = 60_000): Promise<void> {
  await remote.check(engineCommand(init, 'stop'), 'stop engine');
  await pollUntil(
    async () => {
      try {
        await Promise.race([remote.engine().ping(), new Promise((_, reject) => setTimeout(() => reject(new Error('no answer')), 5000).unref())]);
        return undefined;
      } catch {
        return true;
      }
    },
    {
      timeoutMs,
      intervalMs: 250,
      onTimeout: () => new HostStepError(remote.name, 'stop engine', `the engine still answers ${timeoutMs / 1000} s after \`${engineCommand(init, 'stop')}\``),
    },
  );
}
