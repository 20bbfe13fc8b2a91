/**
 * Per-cluster state on local disk: `state.json` (machines, swarm id), `secrets.json` (join tokens), `known_hosts`,
 * all 0600 in a 0700 directory, written atomically, guarded by one lock per cluster.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, rm, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LockedError } from '../base/errors.js';
import type { Machine } from '../base/machine.js';
import { KnownHosts } from './known-hosts.js';
import { acquireLock, lockPath } from './lock.js';
import { clusterDir } from './paths.js';
import { DIR_MODE, readJsonFile, writeSecureFile } from './secure-file.js';
import { mergeMachines, parseSecrets, parseState, type Secrets, type StateFile } from './state-file.js';

export type { Secrets, StateFile } from './state-file.js';

export interface OpenStateOptions {
  /** Environment to resolve the state home from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Told when a held lock is lost; later writes then throw LockedError. */
  onLockCompromised?: (err: Error) => void;
  /** Set by openState when it made the directory (so a run that wrote nothing can take it away again). */
  fresh?: boolean;
}

/** Opens (creating, 0700) the state directory of a cluster. Touches nothing else. */
export async function openState(cluster: string, opts: OpenStateOptions = {}): Promise<ClusterState> {
  const dir = clusterDir(cluster, opts.env);
  const fresh = !existsSync(dir);
  await mkdir(dirname(dir), { recursive: true, mode: DIR_MODE });
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  await chmod(dir, DIR_MODE); // mkdir's mode is masked by the umask, and an older directory may be wider
  return new ClusterState(cluster, dir, { ...opts, fresh });
}

/** The state of one cluster. Mutations are serialised and coalesced: many saves during a run cost few writes. */
export class ClusterState {
  readonly statePath: string;
  readonly secretsPath: string;
  /** OpenSSH-format known hosts of the cluster's machines. */
  readonly knownHostsPath: string;

  private pending: ((s: StateFile) => StateFile)[] = [];
  private scheduled: Promise<void> | undefined;
  private tail: Promise<void> = Promise.resolve();
  private secretsTail: Promise<void> = Promise.resolve();
  private hostKeys: Promise<KnownHosts> | undefined;
  private locked = false;
  private lost: Error | undefined;

  constructor(
    readonly cluster: string,
    /** The cluster's state directory (0700). */
    readonly dir: string,
    private readonly opts: OpenStateOptions = {},
  ) {
    this.statePath = join(dir, 'state.json');
    this.secretsPath = join(dir, 'secrets.json');
    this.knownHostsPath = join(dir, 'known_hosts');
  }

  /**
   * Takes the cluster's lock for this run; resolves to its release. Throws LockedError, naming the holder's pid and
   * the lock path to remove, when another live run holds it.
   */
  async lock(): Promise<() => Promise<void>> {
    const release = await acquireLock(this.dir, this.cluster, {
      onCompromised: (err) => {
        this.lost = err;
        this.opts.onLockCompromised?.(err);
      },
    });
    this.locked = true;
    this.lost = undefined;
    return async () => {
      this.locked = false;
      await release();
    };
  }

  /**
   * Removes the directory again when this run made it and left it empty (a command refused its input, or asked about
   * a cluster that does not exist): bad input leaves nothing behind. Not while a lock is held by anyone.
   */
  async removeIfUnused(): Promise<void> {
    if (!this.opts.fresh || this.locked || existsSync(lockPath(this.dir))) return;
    await rmdir(this.dir).catch(() => undefined); // fails, harmlessly, when anything was written
  }

  /**
   * Reads state.json and secrets.json once, so that a damaged one stops a command before it touches anything (exit 2
   * naming the file) instead of surfacing at the first write, after machines were created or engines configured.
   */
  async check(): Promise<void> {
    await this.readNow();
    await this.readSecrets();
  }

  /** The state file, after every mutation queued before this call; an empty state when there is none yet. */
  async read(): Promise<StateFile> {
    await (this.scheduled ?? this.tail).catch(() => undefined);
    return this.readNow();
  }

  private async readNow(): Promise<StateFile> {
    return parseState(await readJsonFile(this.statePath), this.statePath, this.cluster);
  }

  /**
   * Replaces the state file (atomic, 0600); `updatedAt` is set to now. Ordered after earlier mutations, but it
   * replaces what they wrote: to change one field, prefer `update((s) => ({ ...s, swarm }))`.
   */
  write(update: StateFile): Promise<void> {
    return this.update(() => update);
  }

  /** Applies `fn` to the current state and writes the result; calls made while a write runs share the next write. */
  update(fn: (s: StateFile) => StateFile): Promise<void> {
    this.pending.push(fn);
    if (!this.scheduled) {
      const run = this.tail.then(async () => {
        this.scheduled = undefined;
        const fns = this.pending;
        this.pending = [];
        this.checkLock();
        let s = await this.readNow();
        for (const f of fns) s = f(s);
        const next: StateFile = { ...s, version: 1, cluster: s.cluster || this.cluster, updatedAt: new Date().toISOString() };
        await writeSecureFile(this.statePath, `${JSON.stringify(next, null, 2)}\n`);
      });
      this.scheduled = run;
      this.tail = run.catch(() => undefined);
    }
    return this.scheduled;
  }

  /** Records machines, merged by name into the state (replacing same-named ones). */
  saveMachines(machines: readonly Machine[]): Promise<void> {
    const batch = machines.slice();
    return this.update((s) => ({ ...s, machines: mergeMachines(s.machines, batch) }));
  }

  /** Drops machines by name (destroyed ones). */
  forgetMachines(names: Iterable<string>): Promise<void> {
    const gone = new Set(names);
    return this.update((s) => ({ ...s, machines: s.machines.filter((m) => !gone.has(m.name)) }));
  }

  /** Join tokens and the unlock key; `{}` when none were stored. */
  async readSecrets(): Promise<Secrets> {
    await this.secretsTail;
    return parseSecrets(await readJsonFile(this.secretsPath), this.secretsPath);
  }

  /** Replaces `secrets.json` (atomic, 0600). Spread `readSecrets()` to keep other fields. */
  writeSecrets(secrets: Secrets): Promise<void> {
    const run = this.secretsTail.then(async () => {
      this.checkLock();
      await writeSecureFile(this.secretsPath, `${JSON.stringify(parseSecrets(secrets, this.secretsPath), null, 2)}\n`);
    });
    this.secretsTail = run.catch(() => undefined);
    return run;
  }

  /** The cluster's known host keys, loaded once per ClusterState; call `flush()` on it to persist new ones. */
  knownHosts(): Promise<KnownHosts> {
    this.hostKeys ??= KnownHosts.load(this.knownHostsPath).catch((err: unknown) => {
      this.hostKeys = undefined;
      throw err;
    });
    return this.hostKeys;
  }

  /** Deletes the state directory and everything in it (used by `down` once the machines are gone). */
  async remove(): Promise<void> {
    await this.tail;
    await this.secretsTail;
    this.hostKeys = undefined;
    await rm(this.dir, { recursive: true, force: true });
  }

  private checkLock(): void {
    if (this.locked && this.lost) {
      throw new LockedError(`lost the lock on cluster ${this.cluster} (${this.lost.message}); not writing state`, {
        hint: 'another run may have taken over; check with `swarmform status` before running again',
        cause: this.lost,
      });
    }
  }
}
