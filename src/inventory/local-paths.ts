import os from 'node:os';
import path from 'node:path';

/** Resolves a path written in the inventory: `~` is the operator's home, relative paths start at `baseDir`. */
export function resolveLocalPath(p: string, baseDir: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/')) return path.join(os.homedir(), p.slice(2));
  return path.resolve(baseDir, p);
}
