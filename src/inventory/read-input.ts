/**
 * Reads a file the user hands in (an inventory, a compose file) with the checks that keep a bad path from hanging or
 * exhausting the run: it must be a regular file (a FIFO would block the read for good, a device could be endless)
 * of at most `maxBytes` (checked before reading, so a huge file is refused at once instead of read whole).
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { UsageError } from '../base/errors.js';

export function readInputFile(file: string, what: string, maxBytes: number, hint?: string): string {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer before the type can be checked.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${file}: ${reason(err)}`, { hint, cause: err });
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new UsageError(`cannot read ${what} ${file}: it is a directory`, { hint });
    if (!st.isFile()) throw new UsageError(`cannot read ${what} ${file}: not a regular file`, { hint });
    if (st.size > maxBytes) {
      throw new UsageError(`cannot read ${what} ${file}: it is ${(st.size / 1048576).toFixed(1)} MiB; at most ${(maxBytes / 1048576).toFixed(0)} MiB is read`, { hint });
    }
    return readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read ${what} ${file}: ${reason(err)}`, { hint, cause: err });
  } finally {
    closeSync(fd);
  }
}

function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'it is a directory';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'ELOOP') return 'too many symbolic links';
  return (err as Error).message;
}
