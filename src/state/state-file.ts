import { StateFileError } from '../base/errors.js';
import { damagedFile } from './secure-file.js';
import type { Machine } from '../base/machine.js';

/** `state.json`: what swarmform knows about a cluster between runs. Secrets live in `secrets.json`. */
export interface StateFile {
  version: 1;
  cluster: string;
  /** Absolute path of the inventory the cluster was last brought up with. */
  inventoryFile?: string;
  machines: Machine[];
  swarm?: { clusterId: string; createdAt: string };
  updatedAt: string;
}

/** `secrets.json`: join tokens and the autolock key; never logged, mode 0600. */
export interface Secrets {
  workerToken?: string;
  managerToken?: string;
  unlockKey?: string;
}

/** The state of a cluster nothing is known about yet. */
export function emptyState(cluster: string): StateFile {
  return { version: 1, cluster, machines: [], updatedAt: new Date(0).toISOString() };
}

/** Checks the parts of a parsed state file every reader relies on. */
export function parseState(value: unknown, path: string, cluster: string): StateFile {
  if (value === undefined) return emptyState(cluster);
  const v = value as Partial<StateFile> | null;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw damagedFile(path, 'not an object');
  if (v.version !== 1) {
    throw new StateFileError(`${path} has state version ${String(v.version)}, this swarmform reads version 1`, {
      hint: 'use the swarmform release that wrote it',
    });
  }
  if (!Array.isArray(v.machines)) throw damagedFile(path, '"machines" is not a list');
  if (v.machines.some((m) => typeof m !== 'object' || m === null || typeof (m as Machine).name !== 'string')) {
    throw damagedFile(path, 'a machine has no name');
  }
  return {
    ...v,
    version: 1,
    cluster: typeof v.cluster === 'string' ? v.cluster : cluster,
    machines: v.machines,
    updatedAt: typeof v.updatedAt === 'string' ? v.updatedAt : new Date(0).toISOString(),
  } as StateFile;
}

/** Checks a parsed secrets file: an object of strings. */
export function parseSecrets(value: unknown, path: string): Secrets {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw damagedFile(path, 'not an object');
  const out: Secrets = {};
  for (const k of ['workerToken', 'managerToken', 'unlockKey'] as const) {
    const s = (value as Record<string, unknown>)[k];
    if (typeof s === 'string') out[k] = s;
  }
  return out;
}

/** Machines of `current` with `updates` merged by name: replaced in place, new ones appended. O(N + M). */
export function mergeMachines(current: readonly Machine[], updates: Iterable<Machine>): Machine[] {
  const out = current.slice();
  const index = new Map<string, number>();
  out.forEach((m, i) => index.set(m.name, i));
  for (const m of updates) {
    const i = index.get(m.name);
    if (i === undefined) {
      index.set(m.name, out.length);
      out.push(m);
    } else {
      out[i] = m;
    }
  }
  return out;
}
