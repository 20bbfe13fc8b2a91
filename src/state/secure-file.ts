import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { StateFileError } from '../base/errors.js';
import { shellWord } from '../base/shell-word.js';

/** Owner read/write only: state may name hosts and keys, secrets hold join tokens. */
export const FILE_MODE = 0o600;
/** Owner only. */
export const DIR_MODE = 0o700;

/** Writes `data` atomically (temp file, fsync, rename) with mode 0600, whatever the umask or the old file's mode. */
export async function writeSecureFile(path: string, data: string): Promise<void> {
  await writeFileAtomic(path, data, { mode: FILE_MODE, encoding: 'utf8' });
}

/** Reads a JSON file; undefined when it does not exist, StateFileError naming the file when it is not JSON. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw damagedFile(path, `not valid JSON: ${(err as Error).message}`, err);
  }
}

/**
 * A damaged state file, with the way out that fits it: state.json and raft.json are rebuilt from what the provider and
 * the engines report (raft.json only loses role moves that `up` then re-derives from the inventory), but secrets.json
 * holds an autolocked swarm's unlock key, which exists nowhere else, so it is only ever restored, never thrown away.
 */
export function damagedFile(path: string, why: string, cause?: unknown): StateFileError {
  const aside = `mv ${shellWord(path)} ${shellWord(`${path}.damaged`)}`;
  const hint = basename(path) === 'secrets.json'
    ? `restore it from a backup (it holds the unlock key of an autolocked swarm); to carry on without it, move it aside (${aside}): join tokens are read again from a manager`
    : `restore it from a backup, or move it aside (${aside}) and run \`up\` again: the machines are rediscovered from the provider and the nodes from the engines`;
  return new StateFileError(`${path} is damaged: ${why}`, { hint, cause });
}
