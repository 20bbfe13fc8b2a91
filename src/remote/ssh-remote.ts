/**
 * The real Remote: ssh2, one connection per host, reused by every step, SFTP for files, engine over streamlocal.
 * A non-root login (`become: sudo`) runs every command through `sudo -n`, uploads through a private temporary
 * directory and `sudo install`, and reaches the engine through `sudo -n docker system dial-stdio`. Hosts behind
 * bastions are reached over channels of one shared connection per bastion (ssh-jump.ts).
 */
import { readFile } from 'node:fs/promises';
import Docker from 'dockerode';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import { HostStepError } from '../base/errors.js';
import { shellWord } from '../base/shell-word.js';
import pLimit from 'p-limit';
import { dockerSocketAgent, type ExecChannel } from './docker-agent.js';
import { type AttachIO, type CommandResult, lossReason, type Remote, type RunOptions, shq, tail } from './remote.js';
import type { ResolvedHop } from './ssh-config.js';
import { BastionError, type BastionPool, bastions, type HostKeyStore, forwardTo, handshake, HandshakeError, hopLabel } from './ssh-jump.js';

export type { HostKeyStore } from './ssh-jump.js';

/** An Engine API request that sees no byte for this long fails instead of waiting forever (docker-modem's timeout). */
export const ENGINE_IDLE_TIMEOUT_MS = 120_000;

export interface SshTarget {
  name: string;
  host: string;
  port: number;
  user: string;
  keyPath?: string;
  /** `sudo`: privileged commands through `sudo -n` (default: sudo unless user is root). */
  become?: 'sudo' | 'none';
  /** Bastions first to last, resolved (see resolveSsh). */
  jump?: ResolvedHop[];
}

/** Raised when a host presents a key other than the one recorded: never retried. */
export class HostKeyMismatchError extends HostStepError {
  readonly retryable = false;
}

/**
 * Sessions (commands, SFTP, the sudo engine relay) open at once on one connection. A stock sshd allows 10
 * (MaxSessions) and refuses the 11th with "open failed"; on Debian OS hosts the node updates of a 3+30 join did.
 * Forwarded channels (the root engine's streamlocal channel, bastion hops) are not sessions and not counted.
 */
export const MAX_SESSIONS = 9;
/** Engine relays (`sudo docker system dial-stdio`) at once, within MAX_SESSIONS: the rest stays for commands and SFTP. */
export const MAX_RELAYS = 4;

/** The Engine API relay used with `become: sudo`. */
export const SUDO_DIAL_STDIO = 'sudo -n docker system dial-stdio';

/** A command as run with `become: sudo`: `sudo -n -- sh -c '<command>'` (stdin still reaches the command). */
export function sudoCommand(command: string): string {
  return `sudo -n -- sh -c ${shq(command)}`;
}

/** The sudoers line that lets `user` run swarmform's commands without a password. */
export function sudoersLine(user: string): string {
  return `${user} ALL=(ALL) NOPASSWD: ALL`;
}

/** The hint of a sudo that asks for a password or refuses the user. */
export function sudoHint(user: string): string {
  return (
    `let ${user} use sudo without a password: put the line "${sudoersLine(user)}" in /etc/sudoers.d/swarmform ` +
    '(mode 0440; check it with visudo -cf /etc/sudoers.d/swarmform), or log in as root (ssh.user: root, ssh.become: none)'
  );
}

/** sudo itself failed (needs a password, refuses the user, is not installed): the command never ran. Not retried. */
export class SudoError extends HostStepError {
  readonly retryable = false;
}

/**
 * What went wrong with sudo itself, from a wrapped command's result; undefined when sudo ran the command (whatever
 * the command's own exit).
 */
export function sudoProblem(r: CommandResult, user: string): { message: string; hint: string } | undefined {
  if (r.code === 0) return undefined;
  const err = r.stderr;
  if (r.code === 127 && /(^|\n)(\S+: (\d+: )?)?sudo: (command )?not found|sudo: No such file/.test(err)) {
    return {
      message: `no sudo on the host: ${user} is not root and swarmform needs sudo to act as root (${tail(err, 1)})`,
      hint: `install sudo on the host, then ${sudoHint(user)}`,
    };
  }
  if (/^sudo: (a password is required|a terminal is required)/m.test(err) || /^sudo: .*password/m.test(err) && r.code === 1) {
    return { message: `sudo needs a password for ${user} (swarmform runs sudo -n, non-interactive)`, hint: sudoHint(user) };
  }
  if (/is not in the sudoers file|may not run sudo|is not allowed to run sudo/.test(err)) {
    return { message: `${user} may not use sudo: ${tail(err, 1)}`, hint: sudoHint(user) };
  }
  return undefined;
}

export interface ConnectOptions {
  readyTimeoutMs?: number;
  /** Bastion connections to share; default the process-wide pool. */
  pool?: BastionPool;
}

/** How sshd's MaxStartups drop reads on our side: the peer closed before the key exchange. */
const STARTUP_DROP = /before handshake|ECONNRESET/;
/** Attempts at one host's handshake through a bastion when sshd dropped it before the key exchange. */
const STARTUP_DROP_ATTEMPTS = 4;

/**
 * How to accept a changed host key on purpose: the store is an OpenSSH known_hosts file, so `ssh-keygen -R` removes
 * the old entry (the next run records the new key); the entry is `host` for port 22 and `[host]:port` otherwise.
 */
export function acceptKeyHint(what: 'machine' | 'bastion', host: string, port: number, file?: string): string {
  const entry = shellWord(port === 22 ? host : `[${host}]:${port}`);
  const how = file ? `ssh-keygen -f ${shellWord(file)} -R ${entry}` : `remove the line of ${entry} from the cluster's known_hosts file`;
  return `if the ${what} was rebuilt on purpose (otherwise someone may be in the middle), accept its new key: ${how}, then run again`;
}

/** Opens one SSH connection (through the target's bastions if any); fails fast (callers wrap it in `retry`). */
export async function connectSsh(target: SshTarget, hostKeys: HostKeyStore, opts: ConnectOptions = {}): Promise<SshRemote> {
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  const readKey = (p?: string) => (p ? readFile(p) : Promise.resolve(undefined));
  const privateKey = await readKey(target.keyPath);
  const me = `${target.user}@${target.host}:${target.port}`;
  const fail = (err: unknown, via?: ResolvedHop): never => {
    if (err instanceof BastionError) {
      const E = err.mismatch ? HostKeyMismatchError : HostStepError;
      throw new E(target.name, 'ssh', err.message, {
        cause: err,
        hint: err.mismatch ? acceptKeyHint('bastion', err.hop.host, err.hop.port, hostKeys.path) : undefined,
      });
    }
    const h = err as HandshakeError;
    const where = via ? `${me} (via bastion ${hopLabel(via)})` : me;
    if (h instanceof HandshakeError && h.mismatch) {
      throw new HostKeyMismatchError(target.name, 'ssh', `${where}: ${h.message}`, {
        cause: err,
        hint: acceptKeyHint('machine', target.host, target.port, hostKeys.path),
      });
    }
    throw new HostStepError(target.name, 'ssh', `${where}: ${(err as Error).message}`, { cause: err });
  };
  const jump = target.jump ?? [];
  if (jump.length === 0) {
    let conn: Client;
    try {
      conn = await handshake(target, hostKeys, { readyTimeoutMs, privateKey });
    } catch (err) {
      return fail(err);
    }
    return new SshRemote(target, conn);
  }
  const pool = opts.pool ?? bastions;
  let lease;
  try {
    lease = await pool.lease(jump, hostKeys, { readyTimeoutMs, key: readKey });
  } catch (err) {
    return fail(err);
  }
  try {
    const once = async () => {
      let sock;
      try {
        sock = await forwardTo(lease.conn, target.host, target.port);
      } catch (err) {
        throw new BastionError(lease.hop, `cannot open a channel to ${target.host}:${target.port}: ${(err as Error).message}`, false, { cause: err });
      }
      return handshake(target, hostKeys, { readyTimeoutMs, privateKey, sock });
    };
    // sshd drops connections that have not authenticated yet at random once MaxStartups' start (10) is passed, and
    // it counts a connection until its own child reports back, a little after we see the login succeed: on a busy
    // host more than our 8 can be counted. A drop before the key exchange costs nothing to repeat, so it is retried
    // here on the same bastion connection (jittered, a few times) instead of failing the host's step.
    const conn = await lease.limit(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await once();
        } catch (err) {
          const dropped = err instanceof HandshakeError && !err.mismatch && STARTUP_DROP.test(err.message);
          if (!dropped || attempt >= STARTUP_DROP_ATTEMPTS) throw err;
          await new Promise((r) => setTimeout(r, 50 + Math.random() * 250 * attempt));
        }
      }
    });
    return new SshRemote(target, conn, { release: lease.release });
  } catch (err) {
    lease.release();
    return fail(err, lease.hop);
  }
}

export class SshRemote implements Remote {
  private sftpSession?: Promise<SFTPWrapper>;
  private docker?: Docker;
  private untimedDocker?: Docker;
  private agent?: ReturnType<typeof dockerSocketAgent>;
  private closed = false;
  private lostBy?: string;
  /** The login user's private upload directory (become: sudo), made once per connection. */
  private stage?: Promise<string>;
  private stageDir?: string;
  private uploads = 0;
  private readonly release?: () => void;
  /** Holds one slot per open session channel (see MAX_SESSIONS). */
  private readonly slots = pLimit(MAX_SESSIONS);

  constructor(
    private readonly target: SshTarget,
    private readonly conn: Client,
    opts: { release?: () => void } = {},
  ) {
    this.release = opts.release;
    // A dropped connection must not crash the process; the next call reports it.
    conn.on('error', (err: Error) => {
      this.lostBy ??= lossReason(err);
    });
    conn.on('close', () => {
      if (!this.closed) this.lostBy ??= 'the host closed the connection';
      this.closed = true;
      this.release?.();
    });
  }

  get name(): string {
    return this.target.name;
  }

  /** Why the connection ended, when it ended without close() from this side. */
  get lost(): string | undefined {
    return this.lostBy;
  }

  /** True once the connection has closed; a new one must be opened. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** `sudo` or `none`: how privileged commands run on this host. */
  get become(): 'sudo' | 'none' {
    return this.target.become ?? (this.target.user === 'root' ? 'none' : 'sudo');
  }

  run(command: string, opts: RunOptions = {}): Promise<CommandResult> {
    return this.become === 'sudo' ? this.runSudo(sudoCommand(command), opts, 'sudo') : this.exec(command, opts);
  }

  async check(command: string, step: string, opts?: RunOptions): Promise<string> {
    const r = this.become === 'sudo' ? await this.runSudo(sudoCommand(command), opts ?? {}, step) : await this.exec(command, opts ?? {});
    return this.ok(r, command, step);
  }

  /** A command already wrapped in sudo: sudo's own failures throw SudoError; the command's exit is returned. */
  private async runSudo(raw: string, opts: RunOptions, step: string): Promise<CommandResult> {
    const r = await this.exec(raw, opts);
    const bad = sudoProblem(r, this.target.user);
    if (bad) throw new SudoError(this.name, step, bad.message, { hint: bad.hint, stderr: r.stderr });
    return r;
  }

  private ok(r: CommandResult, command: string, step: string): string {
    if (r.code !== 0) {
      const why = tail(r.stderr || r.stdout) || `exit status ${r.code}`;
      throw new HostStepError(this.name, step, `command failed (exit ${r.code}): ${why}`, {
        command: firstLine(command),
        stderr: r.stderr,
      });
    }
    return r.stdout;
  }

  /**
   * Opens a session channel within the connection's budget: the slot is held until the channel closes (or the
   * connection does), so no more than MAX_SESSIONS are open at once and the rest wait their turn.
   */
  private session<T extends { once(event: 'close', listener: () => void): unknown }>(open: (cb: (err: Error | undefined, channel: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      void this.slots(
        () =>
          new Promise<void>((done) => {
            if (this.closed) {
              done();
              return reject(new HostStepError(this.name, 'ssh', 'the connection is closed'));
            }
            open((err, channel) => {
              if (err) {
                done();
                return reject(err);
              }
              channel.once('close', done);
              resolve(channel);
            });
          }),
      );
    });
  }

  /** Runs a command as the login user, exactly as given. */
  private exec(command: string, opts: RunOptions): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      this.session<ClientChannel>((cb) => this.conn.exec(command, cb)).then((stream) => {
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let timer: NodeJS.Timeout | undefined;
        if (opts.timeoutMs) {
          timer = setTimeout(() => {
            stream.signal('KILL');
            stream.close();
          }, opts.timeoutMs);
        }
        stream.on('data', (d: Buffer) => out.push(d));
        stream.stderr.on('data', (d: Buffer) => errOut.push(d));
        stream.on('close', (code: number | null, signal?: string) => {
          if (timer) clearTimeout(timer);
          const stderr = Buffer.concat(errOut).toString('utf8');
          resolve({
            code: code ?? (signal ? 128 : 255),
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: signal && code == null ? `${stderr}\nkilled by ${signal}${opts.timeoutMs ? ` after ${opts.timeoutMs} ms` : ''}` : stderr,
          });
        });
        if (opts.stdin !== undefined) stream.end(opts.stdin);
        else stream.end();
      }, (err: Error) => reject(err instanceof HostStepError ? err : new HostStepError(this.name, 'ssh', `cannot start a command: ${err.message}`, { cause: err })));
    });
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpSession ??= new Promise((resolve, reject) =>
      this.session<SFTPWrapper>((cb) => this.conn.sftp(cb)).then(resolve, (err: Error) => reject(new HostStepError(this.name, 'sftp', err.message, { cause: err }))),
    );
    return this.sftpSession;
  }

  /** The login user's 0700 upload directory (mktemp -d), made on first use. */
  private stagingDir(): Promise<string> {
    this.stage ??= (async () => {
      const r = await this.exec('mktemp -d "${TMPDIR:-/tmp}/swarmform.XXXXXXXXXX"', {});
      const dir = r.stdout.trim();
      if (r.code !== 0 || !dir.startsWith('/')) {
        throw new HostStepError(this.name, 'upload', `cannot make a private upload directory (mktemp -d): ${tail(r.stderr) || `exit ${r.code}`}`);
      }
      this.stageDir = dir;
      return dir;
    })();
    this.stage.catch(() => (this.stage = undefined));
    return this.stage;
  }

  /** Where the upload goes first, and the command that puts it in place (atomically: a temporary name, then rename). */
  private async uploadPlan(remotePath: string, mode: number): Promise<{ tmp: string; finish: () => Promise<void> }> {
    const final = `${remotePath}.swarmform-tmp`;
    const m = mode.toString(8);
    if (this.become !== 'sudo') {
      return { tmp: final, finish: () => this.check(`chmod ${m} ${shq(final)} && mv -f ${shq(final)} ${shq(remotePath)}`, 'upload').then(() => undefined) };
    }
    const dir = await this.stagingDir();
    const tmp = `${dir}/${++this.uploads}`;
    const inPlace = `install -m ${m} -o root -g root ${shq(tmp)} ${shq(final)} && mv -f ${shq(final)} ${shq(remotePath)}`;
    return {
      tmp,
      finish: async () => {
        const r = await this.runSudo(`${sudoCommand(inPlace)}; rc=$?; rm -f ${shq(tmp)}; exit $rc`, {}, 'upload');
        this.ok(r, `install ${remotePath}`, 'upload');
      },
    };
  }

  async putFile(localPath: string, remotePath: string, mode = 0o644): Promise<void> {
    const sftp = await this.sftp();
    const { tmp, finish } = await this.uploadPlan(remotePath, mode);
    const failed = await new Promise<Error | undefined>((resolve) => sftp.fastPut(localPath, tmp, { concurrency: 8, chunkSize: 128 * 1024, mode }, (err) => resolve(err ?? undefined)));
    if (failed) throw await this.uploadError(`${localPath} -> ${remotePath}`, tmp, failed);
    await finish();
  }

  async putContent(content: string | Buffer, remotePath: string, mode = 0o644): Promise<void> {
    const sftp = await this.sftp();
    const { tmp, finish } = await this.uploadPlan(remotePath, mode);
    const failed = await new Promise<Error | undefined>((resolve) => sftp.writeFile(tmp, content, { mode }, (err) => resolve(err ?? undefined)));
    if (failed) throw await this.uploadError(remotePath, tmp, failed);
    await finish();
  }

  /**
   * SFTP reports a full disk as a bare "Failure" (OpenSSH's sftp-server maps ENOSPC to SSH_FX_FAILURE), so a failed
   * upload looks at the free space where it went and says so when that filesystem is full.
   */
  private async uploadError(what: string, tmp: string, err: Error): Promise<HostStepError> {
    const dir = tmp.slice(0, tmp.lastIndexOf('/')) || '/';
    const df = await this.exec(`df -Pk ${shq(dir)} 2>/dev/null | tail -n 1`, { timeoutMs: 10_000 }).catch(() => undefined);
    const fields = df?.code === 0 ? df.stdout.trim().split(/\s+/) : [];
    const freeKiB = Number(fields[3]);
    const full = fields.length >= 6 && Number.isFinite(freeKiB) && freeKiB < 64;
    const message = full ? `${what}: no space left on the filesystem of ${dir} (${fields[5]}: ${freeKiB} KiB free; SFTP said "${err.message}")` : `${what}: ${err.message}`;
    return new HostStepError(this.name, 'upload', message, { cause: err, ...(full ? { hint: `free space on ${fields[5]} on ${this.name}, then run the command again` } : {}) });
  }

  engine(opts: { untimed?: boolean } = {}): Docker {
    // Both clients share one agent: one pool of channels on the host's one SSH connection.
    const via =
      this.become === 'sudo'
        ? {
            exec: SUDO_DIAL_STDIO,
            maxSockets: MAX_RELAYS,
            open: (command: string, cb: (err: Error | undefined, channel: ExecChannel) => void) =>
              this.session<ClientChannel>((c) => this.conn.exec(command, c)).then(
                (ch) => cb(undefined, ch as unknown as ExecChannel),
                (err: Error) => cb(err, undefined as never),
              ),
            failure: (code: number, stderr: string): Error => {
              const bad = sudoProblem({ code, stdout: '', stderr }, this.target.user);
              if (bad) return new SudoError(this.name, 'engine', bad.message, { hint: bad.hint, stderr });
              return new HostStepError(this.name, 'engine', `${SUDO_DIAL_STDIO} failed (exit ${code}): ${tail(stderr, 3) || 'no output'}`, {
                stderr,
                hint: code === 127 || /docker: (command )?not found/.test(stderr) ? 'the docker CLI must be installed on the host (it relays the Engine API for a non-root login)' : undefined,
              });
            },
          }
        : undefined;
    const make = (timeout: number) =>
      new Docker({ protocol: 'http', host: this.target.name, port: 2375, agent: (this.agent ??= dockerSocketAgent(this.conn, undefined, via)), timeout } as Docker.DockerOptions);
    if (opts.untimed) return (this.untimedDocker ??= make(0));
    return (this.docker ??= make(ENGINE_IDLE_TIMEOUT_MS));
  }

  /** Runs as the login user, without sudo, as OpenSSH's `ssh HOST COMMAND` would. */
  attach(command: string | undefined, io: AttachIO): Promise<number> {
    const stdin = io.stdin;
    const tty = Boolean(io.interactive && stdin?.isTTY);
    return new Promise((resolve, reject) => {
      const onStream = (err: Error | undefined, stream: ClientChannel) => {
        if (err) return reject(new HostStepError(this.name, 'ssh', err.message, { cause: err }));
        if (tty && stdin?.setRawMode) stdin.setRawMode(true);
        stream.pipe(io.stdout, { end: false });
        stream.stderr.pipe(io.stderr, { end: false });
        if (io.interactive && stdin) stdin.pipe(stream);
        else stream.end();
        stream.on('close', (code: number | null, signal?: string) => {
          if (io.interactive && stdin) stdin.unpipe(stream);
          if (tty && stdin?.setRawMode) stdin.setRawMode(false);
          resolve(code ?? (signal ? 128 : 255));
        });
      };
      const pty = tty
        ? { term: process.env.TERM ?? 'xterm', rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 }
        : false;
      if (command === undefined) this.conn.shell(pty || {}, onStream);
      else this.conn.exec(command, { pty }, onStream);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.agent?.destroy();
    const end = () => {
      this.conn.end();
      this.release?.();
    };
    const dir = this.stageDir;
    if (!dir) return end();
    // Best effort: remove the upload directory, then end (a stuck rm does not hold the connection open).
    const timer = setTimeout(end, 2000);
    timer.unref();
    this.conn.exec(`rm -rf ${shq(dir)}`, (err, st) => {
      if (err) {
        clearTimeout(timer);
        return end();
      }
      st.on('close', () => {
        clearTimeout(timer);
        end();
      });
      st.resume();
      st.stderr.resume();
      st.end();
    });
  }
}

function firstLine(command: string): string {
  const line = command.trim().split('\n')[0] ?? '';
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}
