import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../base/errors.js';

/** Cluster names become directory names: a conservative superset of what the inventory schema allows. */
const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The directory holding every cluster's state: `$SWARMFORM_HOME`, else `${XDG_DATA_HOME:-~/.local/share}/swarmform`. */
export function stateHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SWARMFORM_HOME) return env.SWARMFORM_HOME;
  const data = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'swarmform');
}

/** The state directory of one cluster; throws UsageError for a name that is not a safe directory name. */
export function clusterDir(cluster: string, env: NodeJS.ProcessEnv = process.env): string {
  if (!CLUSTER_NAME.test(cluster) || cluster.includes('..')) {
    throw new UsageError(`invalid cluster name ${JSON.stringify(cluster)}: use letters, digits, ".", "_" and "-"`);
  }
  return join(stateHome(env), cluster);
}
