/** /etc/docker/daemon.json: written only when its content changes, so a re-run does not restart the engine. */
import type { SwarmSettings } from '../inventory/types.js';
import { effectiveSettings, tickDaemonKeys } from '../inventory/swarm-settings.js';
import type { Remote } from '../remote/remote.js';

export const DAEMON_JSON = '/etc/docker/daemon.json';

/** The daemon settings swarmform wants; inventory `swarm.daemon` keys override the defaults. */
export function daemonConfig(extra: Record<string, unknown>, providerDefaults: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'log-driver': 'json-file',
    'log-opts': { 'max-size': '10m', 'max-file': '3' },
    ...providerDefaults,
    ...extra,
  };
}

/** Writes daemon.json if it differs; returns true when it changed (the engine must then restart). */
export async function ensureDaemonConfig(remote: Remote, config: Record<string, unknown>): Promise<boolean> {
  const want = `${JSON.stringify(config, null, 2)}\n`;
  const have = await remote.run(`cat ${DAEMON_JSON} 2>/dev/null`);
  if (have.code === 0 && normalise(have.stdout) === normalise(want)) return false;
  await remote.check('mkdir -p /etc/docker', 'daemon config');
  await remote.putContent(want, DAEMON_JSON, 0o644);
  return true;
}

function normalise(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return text.trim();
  }
}

/** daemon.json for a cluster's swarm settings: the Raft ticks in force (profile and inventory), then `swarm.daemon`. */
export function daemonConfigFor(swarm: SwarmSettings): Record<string, unknown> {
  return daemonConfig({ ...tickDaemonKeys(effectiveSettings(swarm)), ...swarm.daemon });
}
