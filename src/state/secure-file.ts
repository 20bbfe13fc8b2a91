import { readFile } from 'node:fs/promises';
import writeFileAtomic from 'write-file-atomic';
import { SwarmformError } from '../core/errors.js';

/** Owner read/write only: state may name hosts and keys, secrets hold join tokens. */
export const FILE_MODE = 0o600;
/** Owner only. */
export const DIR_MODE = 0o700;

/** Writes `data` atomically (temp file, fsync, rename) with mode 0600, whatever the umask or the old file's mode. */
export async function writeSecureFile(path: string, data: string): Promise<void> {
  await writeFileAtomic(path, data, { mode: FILE_MODE, encoding: 'utf8' });
}

/** Reads a JSON file; undefined when it does not exist, SwarmformError naming the file when it is not JSON. */
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
    throw new SwarmformError(`${path} is not valid JSON: ${(err as Error).message}`, {
      hint: 'the file was edited or damaged; restore it from a backup or remove it and run `up` again to rediscover the cluster',
      cause: err,
    });
  }
}
