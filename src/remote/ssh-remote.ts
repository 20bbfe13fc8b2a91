/** The real Remote: ssh2, one connection per host, reused by every step, SFTP for files, engine over streamlocal. */
import { readFile } from 'node:fs/promises';
import Docker from 'dockerode';
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { HostStepError } from '../core/errors.js';
import { dockerSocketAgent } from './docker-agent.js';
import { type AttachIO, type CommandResult, type Remote, type RunOptions, shq, tail } from './remote.js';

/** An Engine API request that sees no byte for this long fails instead of waiting forever (docker-modem's timeout). */
export const ENGINE_IDLE_TIMEOUT_MS = 120_000;

/** Where host keys are remembered; first contact records, later contacts must match. */
export interface HostKeyStore {
  check(k: { host: string; port: number; key: Buffer }): 'new' | 'match' | 'mismatch';
  record(k: { host: string; port: number; key: Buffer }): void;
}

export interface SshTarget {
  name: string;
  host: string;
  port: number;
  user: string;
  keyPath?: string;
}

/** Raised when a host presents a key other than the one recorded: never retried. */
export class HostKeyMismatchError extends HostStepError {
  readonly retryable = false;
}

/** Opens one SSH connection; fails fast (no retry here: callers wrap it in `retry`). */
export async function connectSsh(
  target: SshTarget,
  hostKeys: HostKeyStore,
  opts: { readyTimeoutMs?: number } = {},
): Promise<SshRemote> {
  const privateKey = target.keyPath ? await readFile(target.keyPath) : undefined;
  const conn = new Client();
  let mismatch = false;
  const config: ConnectConfig = {
    host: target.host,
    port: target.port,
    username: target.user,
    privateKey,
    agent: privateKey ? undefined : process.env.SSH_AUTH_SOCK,
    readyTimeout: opts.readyTimeoutMs ?? 10_000,
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    hostVerifier: (key: Buffer) => {
      const k = { host: target.host, port: target.port, key };
      const seen = hostKeys.check(k);
      if (seen === 'new') hostKeys.record(k);
      if (seen === 'mismatch') mismatch = true;
      return seen !== 'mismatch';
    },
  };
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      conn.removeListener('ready', onReady);
      reject(
        mismatch
          ? new HostKeyMismatchError(target.name, 'ssh', `host key of ${target.host}:${target.port} differs from the one recorded`, {
              hint: 'if the machine was rebuilt on purpose, remove its line from the cluster known_hosts file and retry',
            })
          : new HostStepError(target.name, 'ssh', `${target.user}@${target.host}:${target.port}: ${err.message}`, { cause: err }),
      );
    };
    const onReady = () => {
      conn.removeListener('error', onError);
      resolve();
    };
    conn.once('ready', onReady);
    conn.once('error', onError);
    conn.connect(config);
  });
  return new SshRemote(target, conn);
}

export class SshRemote implements Remote {
  private sftpSession?: Promise<SFTPWrapper>;
  private docker?: Docker;
  private untimedDocker?: Docker;
  private agent?: ReturnType<typeof dockerSocketAgent>;
  private closed = false;

  constructor(
    private readonly target: SshTarget,
    private readonly conn: Client,
  ) {
    // A dropped connection must not crash the process; the next call reports it.
    conn.on('error', () => undefined);
    conn.on('close', () => {
      this.closed = true;
    });
  }

  get name(): string {
    return this.target.name;
  }

  /** True once the connection has closed; a new one must be opened. */
  get isClosed(): boolean {
    return this.closed;
  }

  run(command: string, opts: RunOptions = {}): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      this.conn.exec(command, (err, stream) => {
        if (err) return reject(new HostStepError(this.name, 'ssh', `cannot start a command: ${err.message}`, { cause: err }));
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
      });
    });
  }

  async check(command: string, step: string, opts?: RunOptions): Promise<string> {
    const r = await this.run(command, opts);
    if (r.code !== 0) {
      const why = tail(r.stderr || r.stdout) || `exit status ${r.code}`;
      throw new HostStepError(this.name, step, `command failed (exit ${r.code}): ${why}`, {
        command: firstLine(command),
        stderr: r.stderr,
      });
    }
    return r.stdout;
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpSession ??= new Promise((resolve, reject) =>
      this.conn.sftp((err, sftp) => (err ? reject(new HostStepError(this.name, 'sftp', err.message, { cause: err })) : resolve(sftp))),
    );
    return this.sftpSession;
  }

  async putFile(localPath: string, remotePath: string, mode = 0o644): Promise<void> {
    const sftp = await this.sftp();
    const tmp = `${remotePath}.swarmform-tmp`;
    await new Promise<void>((resolve, reject) =>
      sftp.fastPut(localPath, tmp, { concurrency: 8, chunkSize: 128 * 1024, mode }, (err) =>
        err ? reject(new HostStepError(this.name, 'upload', `${localPath} -> ${remotePath}: ${err.message}`, { cause: err })) : resolve(),
      ),
    );
    await this.check(`mv -f ${shq(tmp)} ${shq(remotePath)}`, 'upload');
  }

  async putContent(content: string | Buffer, remotePath: string, mode = 0o644): Promise<void> {
    const sftp = await this.sftp();
    const tmp = `${remotePath}.swarmform-tmp`;
    await new Promise<void>((resolve, reject) =>
      sftp.writeFile(tmp, content, { mode }, (err) =>
        err ? reject(new HostStepError(this.name, 'upload', `${remotePath}: ${err.message}`, { cause: err })) : resolve(),
      ),
    );
    await this.check(`chmod ${mode.toString(8)} ${shq(tmp)} && mv -f ${shq(tmp)} ${shq(remotePath)}`, 'upload');
  }

  engine(opts: { untimed?: boolean } = {}): Docker {
    // Both clients share one agent: one pool of channels on the host's one SSH connection.
    const make = (timeout: number) =>
      new Docker({ protocol: 'http', host: this.target.name, port: 2375, agent: (this.agent ??= dockerSocketAgent(this.conn)), timeout } as Docker.DockerOptions);
    if (opts.untimed) return (this.untimedDocker ??= make(0));
    return (this.docker ??= make(ENGINE_IDLE_TIMEOUT_MS));
  }

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
    this.conn.end();
  }
}

function firstLine(command: string): string {
  const line = command.trim().split('\n')[0] ?? '';
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}
