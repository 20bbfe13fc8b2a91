/**
 * SSH keys of the lab: one client key per cluster (in the cluster's state directory, so it travels with the rest
 * of the cluster's state) and one host key per lab host (kept across restarts so known-hosts entries stay valid).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { run } from './exec.js';
import { exists } from './cache.js';

/** A private key file and its public half. */
export interface KeyPair {
  keyPath: string;
  publicKey: string;
}


/**
 * Makes an ed25519 key at `keyPath` (0600) with `keyPath.pub` unless one is there; returns it. Generated under a
 * temporary name and renamed, so a concurrent run never sees half a key and ssh-keygen never asks to overwrite.
 */
export async function ensureKey(keyPath: string, comment: string): Promise<KeyPair> {
  const pubPath = `${keyPath}.pub`;
  if (!(await exists(keyPath))) {
    await fs.mkdir(path.dirname(keyPath), { recursive: true, mode: 0o700 });
    const tmp = `${keyPath}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', tmp], { timeoutMs: 30_000 });
    await fs.chmod(tmp, 0o600);
    await fs.rename(`${tmp}.pub`, pubPath);
    await fs.rename(tmp, keyPath);
  } else if (!(await exists(pubPath))) {
    const { stdout } = await run('ssh-keygen', ['-y', '-f', keyPath], { timeoutMs: 30_000 });
    await fs.writeFile(pubPath, stdout.endsWith('\n') ? stdout : `${stdout}\n`, { mode: 0o644 });
  }
  return { keyPath, publicKey: (await fs.readFile(pubPath, 'utf8')).trim() };
}

/** The cluster's client key: `<stateDir>/lab/id_ed25519`, generated once. */
export function ensureClusterKey(stateDir: string, cluster: string): Promise<KeyPair> {
  return ensureKey(path.join(stateDir, 'lab', 'id_ed25519'), `swarmform-lab-${cluster}`);
}

/** Reads the public half of a user-supplied key (`<key>.pub`); undefined when there is none. */
export async function readPublicKey(keyPath: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(`${keyPath}.pub`, 'utf8')).trim();
  } catch {
    return undefined;
  }
}
