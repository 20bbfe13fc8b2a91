/**
 * Backup archives: one tar file (mode 0600) holding `manifest.json`, `swarm.tar.gz` (the manager's
 * /var/lib/docker/swarm, which holds the Raft log, snapshots and keys) and, for an autolocked swarm, `unlock-key`.
 * The manifest carries the sha256 of `swarm.tar.gz`, checked before a restore touches any host.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SwarmformError, UsageError } from '../base/errors.js';

const execFileP = promisify(execFile);
export const ARCHIVE_FORMAT = 'swarmform-raft-backup/1';

export interface BackupManifest {
  format: typeof ARCHIVE_FORMAT;
  cluster: string;
  swarmId: string;
  /**
   * Inventory host the state was copied from, its node id, and its Raft address (host:2377), which the restored
   * state carries as its own (absent in archives written before it was recorded).
   */
  source: { host: string; nodeId: string; engineVersion: string; addr?: string };
  createdAt: string;
  /** sha256 of swarm.tar.gz. */
  sha256: string;
  bytes: number;
  autolock: boolean;
  /** What the swarm held at backup time (names), for checking a restore. */
  contents: { services: string[]; networks: string[]; secrets: string[]; configs: string[]; managers: number; nodes: number };
}

export interface BackupContents {
  manifest: BackupManifest;
  swarmTarGz: Buffer;
  unlockKey?: string;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes the archive at `path`, readable by its owner only (also when the file existed with a wider mode). */
export async function writeArchive(path: string, c: BackupContents): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'swarmform-backup-'));
  try {
    await writeFile(join(dir, 'manifest.json'), `${JSON.stringify(c.manifest, null, 2)}\n`, { mode: 0o600 });
    await writeFile(join(dir, 'swarm.tar.gz'), c.swarmTarGz, { mode: 0o600 });
    const names = ['manifest.json', 'swarm.tar.gz'];
    if (c.unlockKey) {
      await writeFile(join(dir, 'unlock-key'), `${c.unlockKey}\n`, { mode: 0o600 });
      names.push('unlock-key');
    }
    const { stdout } = await execFileP('tar', ['-cf', '-', '-C', dir, ...names], { encoding: 'buffer', maxBuffer: 1 << 30 });
    await writeFile(path, stdout, { mode: 0o600 });
    await chmod(path, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Reads and checks an archive: its format, and the checksum of the swarm state. Throws UsageError (exit 2) when it is not one. */
export async function readArchive(path: string): Promise<BackupContents> {
  const dir = await mkdtemp(join(tmpdir(), 'swarmform-restore-'));
  try {
    try {
      await execFileP('tar', ['-xf', path, '-C', dir, 'manifest.json', 'swarm.tar.gz']);
    } catch (err) {
      throw new UsageError(`${path} is not a swarmform raft backup: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
    }
    await execFileP('tar', ['-xf', path, '-C', dir, 'unlock-key']).catch(() => undefined);
    let manifest: BackupManifest;
    try {
      manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as BackupManifest;
    } catch (err) {
      throw new UsageError(`${path}: manifest.json is not JSON: ${(err as Error).message}`);
    }
    if (manifest.format !== ARCHIVE_FORMAT) throw new UsageError(`${path}: archive format ${String(manifest.format)}, expected ${ARCHIVE_FORMAT}`);
    const swarmTarGz = await readFile(join(dir, 'swarm.tar.gz'));
    const sum = sha256(swarmTarGz);
    if (sum !== manifest.sha256) {
      throw new SwarmformError(`${path}: swarm.tar.gz has sha256 ${sum.slice(0, 16)}..., the manifest says ${manifest.sha256.slice(0, 16)}...: the archive is damaged`);
    }
    const unlockKey = (await readFile(join(dir, 'unlock-key'), 'utf8').catch(() => '')).trim() || undefined;
    return { manifest, swarmTarGz, unlockKey };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
