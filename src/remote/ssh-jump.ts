/**
 * Bastions (ProxyJump): one SSH connection per bastion, shared by every host that goes through it. Entries are
 * keyed by the chain up to that bastion, so `a,b` and `b` alone are different connections to b (as with OpenSSH).
 * Each host's connection holds a reference on every bastion of its chain; the last one to close ends the bastion's
 * connection. A bastion connection that drops is forgotten and the next connect opens a new one.
 *
 * The hops after the first are reached with `forwardOut` (a direct-tcpip channel) on the previous connection. sshd's
 * MaxSessions counts only shell, login and subsystem sessions, not forwarded channels (sshd_config(5): MaxSessions
 * 0 "will prevent all shell, login and subsystem sessions while still permitting forwarding"); what a fan-out
 * through one bastion can trip is MaxStartups (default 10:30:100) on the hosts behind it, which counts connections
 * that have not authenticated yet. So each bastion lets at most `perBastion` (8) channel opens + handshakes run at
 * once: even many hosts behind one sshd never see more than 8 of ours unauthenticated.
 */
import type { Duplex } from 'node:stream';
import pLimit, { type LimitFunction } from 'p-limit';
import { Client, type ConnectConfig } from 'ssh2';
import { InternalError, SwarmformError } from '../base/errors.js';
import type { ResolvedHop } from './ssh-config.js';

/** Where host keys are remembered; first contact records, later contacts must match. */
export interface HostKeyStore {
  check(k: { host: string; port: number; key: Buffer }): 'new' | 'match' | 'mismatch';
  record(k: { host: string; port: number; key: Buffer }): void;
  /** The file the keys live in (OpenSSH known_hosts format), for the hint that says how to accept a new key. */
  readonly path?: string;
}

/** Channel opens + handshakes in flight at once through one bastion. */
export const BASTION_CONCURRENCY = 8;

/** `user@host:port`, IPv6 in brackets. */
export function hopLabel(h: ResolvedHop): string {
  return `${h.user}@${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`;
}

/** A handshake failure; `mismatch` when the host key differs from the recorded one. */
export class HandshakeError extends Error {
  constructor(message: string, readonly mismatch: boolean, opts?: { cause?: unknown }) {
    super(message, opts);
  }
}

/** Opens a channel from `via` to host:port (the socket of the next hop's SSH connection). */
export function forwardTo(via: Client, host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) =>
    via.forwardOut('127.0.0.1', 0, host, port, (err, ch) => (err ? reject(err) : resolve(ch as unknown as Duplex))),
  );
}

/** One SSH handshake and authentication to `hop`, directly or over `sock`; host key checked against `hostKeys`. */
export function handshake(
  hop: ResolvedHop,
  hostKeys: HostKeyStore,
  opts: { readyTimeoutMs: number; privateKey?: Buffer; sock?: Duplex },
): Promise<Client> {
  const conn = new Client();
  let mismatch = false;
  const config: ConnectConfig = {
    host: hop.host,
    port: hop.port,
    username: hop.user,
    privateKey: opts.privateKey,
    agent: opts.privateKey ? undefined : process.env.SSH_AUTH_SOCK,
    readyTimeout: opts.readyTimeoutMs,
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    sock: opts.sock as ConnectConfig['sock'],
    hostVerifier: (key: Buffer) => {
      const k = { host: hop.host, port: hop.port, key };
      const seen = hostKeys.check(k);
      if (seen === 'new') hostKeys.record(k);
      if (seen === 'mismatch') mismatch = true;
      return seen !== 'mismatch';
    },
  };
  return new Promise<Client>((resolve, reject) => {
    const onError = (err: Error) => {
      conn.removeListener('ready', onReady);
      conn.removeListener('close', onClose);
      conn.end();
      reject(new HandshakeError(mismatch ? `host key of ${hop.host}:${hop.port} differs from the one recorded` : err.message, mismatch, { cause: err }));
    };
    // sshd may close the connection without an error after the key was accepted: pam_nologin on a host that is
    // still booting ("System is booting up. Unprivileged users are not permitted to log in yet"), a locked account.
    // ssh2 then stops its ready timer and emits only 'close', so without this the handshake waited for ever (an
    // `up` on 33 booting hosts hung on one of them).
    const onClose = () => onError(new SwarmformError('the server closed the connection before the session was ready (sshd refused the login after authentication: a host still booting refuses non-root logins until systemd-user-sessions has run; a locked or expired account does the same)'));
    const onReady = () => {
      conn.removeListener('error', onError);
      conn.removeListener('close', onClose);
      // A dropped connection must not crash the process; its users see 'close'.
      conn.on('error', () => undefined);
      resolve(conn);
    };
    conn.once('ready', onReady);
    conn.once('error', onError);
    conn.once('close', onClose);
    conn.connect(config);
  });
}

interface Entry {
  key: string;
  hop: ResolvedHop;
  refs: number;
  dead: boolean;
  ready: Promise<Client>;
  conn?: Client;
  /** Bounds channel opens + handshakes through this bastion. */
  limit: LimitFunction;
}

/** A bastion failure, naming the hop. */
export class BastionError extends Error {
  constructor(readonly hop: ResolvedHop, message: string, readonly mismatch: boolean, opts?: { cause?: unknown }) {
    super(`via bastion ${hopLabel(hop)}: ${message}`, opts);
  }
}

/** What a host's connection holds while it is open. */
export interface BastionLease {
  /** The last bastion's connection: open the target's channel on it. */
  conn: Client;
  /** The last bastion's limiter: run the target's channel open + handshake inside it. */
  limit: LimitFunction;
  hop: ResolvedHop;
  /** Drops this host's references; idempotent. */
  release(): void;
}

export class BastionPool {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly perBastion = BASTION_CONCURRENCY) {}

  /** Number of bastion connections open or opening (for tests and diagnostics). */
  get size(): number {
    return this.entries.size;
  }

  /** References on the bastion reached by this chain (0: none open). */
  refs(chain: ResolvedHop[]): number {
    return this.entries.get(chainKey(chain))?.refs ?? 0;
  }

  /**
   * Opens (or shares) every bastion of `chain` and returns the last. Throws BastionError naming the hop that
   * failed; nothing stays referenced then.
   */
  async lease(chain: ResolvedHop[], hostKeys: HostKeyStore, opts: { readyTimeoutMs: number; key: (p?: string) => Promise<Buffer | undefined> }): Promise<BastionLease> {
    if (chain.length === 0) throw new InternalError('BastionPool.lease called with an empty bastion chain (a direct connection needs no lease)');
    const held: Entry[] = [];
    const releaseAll = () => {
      for (const e of held.splice(0).reverse()) this.unref(e);
    };
    try {
      let prev: Entry | undefined;
      for (let i = 0; i < chain.length; i++) {
        const key = chainKey(chain.slice(0, i + 1));
        let e = this.entries.get(key);
        if (!e || e.dead) {
          e = this.open(key, chain[i]!, prev, hostKeys, opts);
          this.entries.set(key, e);
        }
        e.refs++;
        held.push(e);
        await e.ready;
        prev = e;
      }
      const last = prev!;
      let released = false;
      const mine = [...held];
      return {
        conn: last.conn!,
        limit: last.limit,
        hop: last.hop,
        release: () => {
          if (released) return;
          released = true;
          for (const e of mine.reverse()) this.unref(e);
        },
      };
    } catch (err) {
      releaseAll();
      throw err;
    }
  }

  /** Ends every bastion connection (tests; a run's end closes hosts, which release theirs). */
  closeAll(): void {
    for (const e of this.entries.values()) {
      e.dead = true;
      e.conn?.end();
    }
    this.entries.clear();
  }

  private open(
    key: string,
    hop: ResolvedHop,
    prev: Entry | undefined,
    hostKeys: HostKeyStore,
    opts: { readyTimeoutMs: number; key: (p?: string) => Promise<Buffer | undefined> },
  ): Entry {
    const e: Entry = { key, hop, refs: 0, dead: false, limit: pLimit(this.perBastion), ready: undefined as never };
    const connect = async (): Promise<Client> => {
      let privateKey: Buffer | undefined;
      try {
        privateKey = await opts.key(hop.keyPath);
      } catch (err) {
        throw new BastionError(hop, `cannot read key ${hop.keyPath}: ${(err as Error).message}`, false, { cause: err });
      }
      const run = async () => {
        let sock: Duplex | undefined;
        if (prev) {
          try {
            sock = await forwardTo(prev.conn!, hop.host, hop.port);
          } catch (err) {
            throw new BastionError(prev.hop, `cannot open a channel to ${hop.host}:${hop.port}: ${(err as Error).message}`, false, { cause: err });
          }
        }
        try {
          return await handshake(hop, hostKeys, { readyTimeoutMs: opts.readyTimeoutMs, privateKey, sock });
        } catch (err) {
          const h = err as HandshakeError;
          throw new BastionError(hop, h.message, h.mismatch, { cause: err });
        }
      };
      return prev ? prev.limit(run) : run();
    };
    e.ready = connect().then(
      (conn) => {
        e.conn = conn;
        conn.on('close', () => this.forget(e));
        // Everyone let go while it was connecting.
        if (e.refs === 0) this.forget(e);
        return conn;
      },
      (err: unknown) => {
        this.forget(e);
        throw err;
      },
    );
    // A failure is seen by every waiter through `await e.ready`; this keeps it from being "unhandled" meanwhile.
    e.ready.catch(() => undefined);
    return e;
  }

  private unref(e: Entry): void {
    e.refs = Math.max(0, e.refs - 1);
    if (e.refs === 0) this.forget(e);
  }

  private forget(e: Entry): void {
    e.dead = true;
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
    e.conn?.end();
  }
}

function chainKey(chain: ResolvedHop[]): string {
  return chain.map((h) => `${hopLabel(h)}#${h.keyPath ?? ''}`).join('>');
}

/** Process-wide pool used by connectSsh unless a caller passes its own. */
export const bastions = new BastionPool();
