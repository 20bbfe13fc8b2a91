/**
 * Who should be a manager. The inventory says so, except where `raft replace` or `raft recover` moved the role to
 * another host: those moves are kept in `raft.json` (0600, beside the state) so a later `up` does not undo them.
 * A move is dropped once the inventory agrees with it (the user edited the file).
 */
import { join } from 'node:path';
import type { HostSpec, Role } from '../inventory/types.js';
import type { ClusterState } from '../state/store.js';
import { readJsonFile, writeSecureFile } from '../state/secure-file.js';

export interface RaftFile {
  /** Host -> role decided by a raft command, overriding the inventory. */
  roles: Record<string, Role>;
}

function path(state: ClusterState): string {
  return join(state.dir, 'raft.json');
}

export async function readRaftFile(state: ClusterState): Promise<RaftFile> {
  const v = (await readJsonFile(path(state))) as Partial<RaftFile> | undefined;
  const roles: Record<string, Role> = {};
  for (const [k, r] of Object.entries(v?.roles ?? {})) if (r === 'manager' || r === 'worker') roles[k] = r;
  return { roles };
}

/** Records role moves (merged over earlier ones). */
export async function recordRoles(state: ClusterState, moves: Record<string, Role>): Promise<void> {
  const f = await readRaftFile(state);
  await writeSecureFile(path(state), `${JSON.stringify({ roles: { ...f.roles, ...moves } }, null, 2)}\n`);
}

/** Each inventory host's role with the recorded moves applied; moves the inventory now agrees with are forgotten. */
export async function effectiveRoles(state: ClusterState, hosts: HostSpec[]): Promise<Map<string, Role>> {
  const f = await readRaftFile(state);
  const out = new Map<string, Role>(hosts.map((h) => [h.name, h.role]));
  const keep: Record<string, Role> = {};
  for (const [host, role] of Object.entries(f.roles)) {
    if (!out.has(host) || out.get(host) === role) continue;
    out.set(host, role);
    keep[host] = role;
  }
  if (Object.keys(keep).length !== Object.keys(f.roles).length) {
    await writeSecureFile(path(state), `${JSON.stringify({ roles: keep }, null, 2)}\n`);
  }
  return out;
}
