/**
 * SSH host keys of a cluster's machines, recorded on first contact and checked afterwards. Stored in OpenSSH's
 * known_hosts format (`host keytype base64` for port 22, `[host]:port keytype base64` otherwise), so
 * `ssh -o UserKnownHostsFile=<file>` can use it too. Loaded once, O(1) lookups, written only by `flush()`.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeSecureFile } from './secure-file.js';

/** A key as an SSH server presented it: the raw public key blob (SSH wire format). */
export interface HostKey {
  host: string;
  port: number;
  key: Buffer;
}

export type HostKeyCheck = 'new' | 'match' | 'mismatch';

interface Entry {
  type: string;
  base64: string;
}

export class KnownHosts {
  private readonly byHost = new Map<string, Entry[]>();
  /** Lines we do not interpret (comments, hashed hosts, markers): written back unchanged. */
  private readonly verbatim: string[] = [];
  private dirty = false;
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly path: string, text = '') {
    for (const line of text.split('\n')) this.parseLine(line);
  }

  /** Reads the file; a missing file is an empty store. */
  static async load(path: string): Promise<KnownHosts> {
    try {
      return new KnownHosts(path, await readFile(path, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new KnownHosts(path);
      throw err;
    }
  }

  /** Hosts with at least one recorded key. */
  get size(): number {
    return this.byHost.size;
  }

  /** Whether there are records not yet flushed. */
  get unsaved(): boolean {
    return this.dirty;
  }

  /** `match` if the key is recorded for host:port, `mismatch` if other keys are, `new` if none is. */
  check(hk: HostKey): HostKeyCheck {
    const entries = this.byHost.get(hostId(hk.host, hk.port));
    if (!entries || entries.length === 0) return 'new';
    const b64 = hk.key.toString('base64');
    return entries.some((e) => e.base64 === b64) ? 'match' : 'mismatch';
  }

  /** Makes this key the one known for host:port (replacing others, e.g. after a machine was re-created). */
  record(hk: HostKey): void {
    const entry: Entry = { type: keyType(hk.key), base64: hk.key.toString('base64') };
    const id = hostId(hk.host, hk.port);
    const had = this.byHost.get(id);
    if (had && had.length === 1 && had[0].base64 === entry.base64) return;
    this.byHost.set(id, [entry]);
    this.dirty = true;
  }

  /** Forgets host:port (its machine was destroyed). */
  forget(host: string, port: number): void {
    if (this.byHost.delete(hostId(host, port))) this.dirty = true;
  }

  /** Writes the file (atomic, 0600) if anything changed since the last flush; concurrent calls are serialised. */
  flush(): Promise<void> {
    const run = this.writing.then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      try {
        await writeSecureFile(this.path, this.serialize());
      } catch (err) {
        this.dirty = true;
        throw err;
      }
    });
    this.writing = run.catch(() => undefined);
    return run;
  }

  /** The file's contents. */
  serialize(): string {
    const lines = [...this.verbatim];
    for (const [id, entries] of this.byHost) for (const e of entries) lines.push(`${id} ${e.type} ${e.base64}`);
    return lines.length ? `${lines.join('\n')}\n` : '';
  }

  private parseLine(raw: string): void {
    const line = raw.trim();
    if (!line) return;
    if (line.startsWith('#') || line.startsWith('|') || line.startsWith('@')) {
      this.verbatim.push(line);
      return;
    }
    const [hosts, type, base64] = line.split(/\s+/);
    if (!hosts || !type || !base64) {
      this.verbatim.push(line);
      return;
    }
    const patterns = hosts.split(',');
    if (patterns.some((p) => p.startsWith('!') || /[*?]/.test(p))) {
      this.verbatim.push(line); // wildcard or negated patterns: kept, not used for checks
      return;
    }
    for (const pattern of patterns) {
      const id = parseHostPattern(pattern);
      const entries = this.byHost.get(id) ?? [];
      if (!entries.some((e) => e.base64 === base64)) entries.push({ type, base64 });
      this.byHost.set(id, entries);
    }
  }
}

/** SHA256 fingerprint as OpenSSH prints it (`SHA256:...`), for messages about a key. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The algorithm name at the start of a key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, ...), `unknown` if unreadable. */
export function keyType(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const len = key.readUInt32BE(0);
  if (len < 1 || len > 64 || key.length < 4 + len) return 'unknown';
  const name = key.subarray(4, 4 + len).toString('latin1');
  return /^[A-Za-z0-9@._+-]+$/.test(name) ? name : 'unknown';
}

/** OpenSSH's host field: bare for port 22, `[host]:port` otherwise; lowercase names. */
function hostId(host: string, port: number): string {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return port === 22 ? h : `[${h}]:${port}`;
}

function parseHostPattern(pattern: string): string {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(pattern);
  if (m) return hostId(m[1], Number(m[2]));
  return hostId(pattern, 22);
}
