/**
 * An http.Agent whose sockets are SSH channels to the remote engine's Unix socket, so dockerode rides the host's one
 * SSH connection. docker-modem's own `ssh` protocol opens a new SSH connection for every request and needs the docker
 * CLI on the host (`docker system dial-stdio`); this needs neither.
 */
import http from 'node:http';
import { inspect } from 'node:util';
import type { Duplex } from 'node:stream';
import type { Client } from 'ssh2';
import { ExternalError } from '../base/errors.js';

export const DOCKER_SOCKET = '/var/run/docker.sock';

/**
 * How the agent reaches the engine: a direct-streamlocal channel to the socket (the login user can open it: root),
 * or an exec channel running a command that relays stdin/stdout to the engine (`sudo -n docker system dial-stdio`
 * for a non-root login, which then needs no docker group).
 */
export interface DockerAgentVia {
  /** Command whose stdio is the HTTP connection. */
  exec: string;
  /** Turns a relay that exited on its own with a non-zero code (sudo wants a password, no docker CLI) into an error. */
  failure?: (code: number, stderr: string) => Error;
  /** Opens the exec channel (default `conn.exec`): the caller's session budget (sshd MaxSessions) goes here. */
  open?: (command: string, callback: (err: Error | undefined, channel: ExecChannel) => void) => void;
  /** Channels at once (default 8). Each relay is an sshd session, so it counts against MaxSessions. */
  maxSockets?: number;
}

/** Builds an agent that opens one channel per HTTP connection (streamlocal, or `via.exec`). */
export function dockerSocketAgent(conn: Client, socketPath = DOCKER_SOCKET, via?: DockerAgentVia): http.Agent {
  // keepAlive reuses channels between sequential requests; maxSockets bounds channels per host (sshd MaxSessions).
  // Up to maxSockets idle channels are kept: a burst of parallel calls (node updates) then reuses them.
  const max = via?.maxSockets ?? 8;
  const agent = new http.Agent({ keepAlive: true, maxSockets: max, maxFreeSockets: max, timeout: 0 });
  const ready = (channel: Duplex, callback: (err: Error | null, socket?: Duplex) => void) => {
    // http expects socket-like methods that SSH channels lack.
    const ch = channel as unknown as Duplex & Record<string, unknown>;
    for (const m of ['setKeepAlive', 'setNoDelay', 'ref', 'unref']) {
      if (typeof ch[m] !== 'function') ch[m] = () => ch;
    }
    idleTimeout(ch);
    closeOnDestroy(ch);
    callback(null, ch);
  };
  (agent as unknown as { createConnection: unknown }).createConnection = (
    _options: unknown,
    callback: (err: Error | null, socket?: Duplex) => void,
  ) => {
    if (via) {
      const open = via.open ?? ((command, cb) => conn.exec(command, (err, ch) => cb(err, ch as unknown as ExecChannel)));
      open(via.exec, (err, channel) => {
        if (err) return callback(err);
        relayChannel(channel, via);
        ready(channel as unknown as Duplex, callback);
      });
      return undefined;
    }
    conn.openssh_forwardOutStreamLocal(socketPath, (err, channel) => {
      if (err) return callback(err);
      ready(channel as unknown as Duplex, callback);
    });
    return undefined;
  };
  // docker-modem formats every request's options for its debug log with util.inspect({ showHidden: true, depth: null })
  // even when debugging is off. The options hold this agent, and through its sockets the SSH channels and the whole
  // ssh2 client: formatting that graph on every call made the tool spend minutes of CPU in util.inspect during the
  // node updates after a 117-worker join (measured with the inspector's profiler). A custom inspect cuts it to a name.
  Object.defineProperty(agent, inspect.custom, { value: () => `DockerSocketAgent(${via ? via.exec : socketPath})`, enumerable: false });
  return agent;
}

/**
 * Gives an SSH channel a net.Socket-like `setTimeout`: 'timeout' is emitted once after `ms` with no bytes in either
 * direction (0 turns it off), and the listener decides (http destroys the request). Without it, docker-modem's
 * request timeout was a no-op on these channels and an Engine API call that never answered waited forever.
 * Written by hand: the timer is reset from `push` and `write`, because a 'data' listener would put the channel into
 * flowing mode while it sits in the agent's free pool.
 */
export function idleTimeout(ch: Duplex & Record<string, unknown>): void {
  let ms = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (ms > 0 && !ch.destroyed) {
      timer = setTimeout(() => {
        timer = undefined;
        ch.emit('timeout');
      }, ms);
      timer.unref();
    }
  };
  // Activity restarts the count, as on a net.Socket (also after a 'timeout' the listener chose to survive).
  const touch = () => {
    if (timer) timer.refresh();
    else if (ms > 0) arm();
  };
  const push = ch.push.bind(ch);
  ch.push = (chunk: unknown, encoding?: BufferEncoding) => {
    touch();
    return push(chunk, encoding);
  };
  const write = ch.write.bind(ch) as (...a: unknown[]) => boolean;
  ch.write = ((...a: unknown[]) => {
    touch();
    return write(...a);
  }) as never;
  ch.setTimeout = (msecs: number, cb?: () => void) => {
    ms = msecs;
    if (cb) {
      if (msecs > 0) ch.once('timeout', cb);
      else ch.removeListener('timeout', cb);
    }
    arm();
    return ch;
  };
  ch.once('close', () => {
    ms = 0;
    arm();
  });
}

/**
 * Lets an SSH channel end, and so emit 'close', when nobody reads it. ssh2's `destroy()` on a channel only sends EOF and CLOSE; its 'close' event follows the readable side's 'end', and
 * 'end' needs a reader. http.Agent destroys a socket it does not keep (a burst left more idle than maxFreeSockets)
 * and forgets it only on 'close': with nobody reading, 'close' never came, the channel kept one of the host's 8 slots,
 * and once all 8 were gone every later Engine API call to that host queued forever (seen after a 150-node label
 * batch: 8 such channels, both SSH sides closed, and `GET /services` waiting for a slot). Reading to the end fixes it.
 */
export function closeOnDestroy(ch: Duplex & Record<string, unknown>): void {
  const sshDestroy = (ch.destroy as (err?: Error) => Duplex).bind(ch);
  ch.destroy = ((err?: Error) => {
    ch.resume();
    return sshDestroy(err);
  }) as never;
  // The same when the far side closes a channel nobody reads (one idle in the agent's pool): without a reader it
  // never ended, stayed in the pool, and the next call written to it waited forever (ssh2 drops writes to a closed
  // channel without calling back). A channel in use has the HTTP parser reading, so this loses nothing.
  const push = (ch.push as (chunk: unknown, encoding?: BufferEncoding) => boolean).bind(ch);
  ch.push = ((chunk: unknown, encoding?: BufferEncoding) => {
    const more = push(chunk, encoding);
    if (chunk === null) ch.resume();
    return more;
  }) as never;
}

export type ExecChannel = Duplex & { stderr: NodeJS.ReadableStream; on(ev: 'exit', l: (code: number | null, signal?: string) => void): ExecChannel };

/**
 * An exec channel used as a socket: its stderr is read (a full stderr window would stall the relay) and its last
 * bytes kept, and a relay that exits non-zero on its own fails the request with what it said instead of a bare
 * "socket hang up".
 */
function relayChannel(ch: ExecChannel, via: DockerAgentVia): void {
  let errText = '';
  // The error below reaches http's listeners; this one keeps a channel nobody listens to any more from throwing.
  ch.on('error', () => undefined);
  ch.stderr.on('data', (d: Buffer) => {
    errText = (errText + d.toString('utf8')).slice(-2000);
  });
  ch.on('exit', (code: number | null) => {
    if (code === null || code === 0 || ch.destroyed) return;
    const text = errText.trim();
    // ssh2's destroy() takes no error: emit it (to the request, or to http's free-socket listener), then close.
    ch.emit('error', via.failure ? via.failure(code, text) : new ExternalError(`${via.exec}: exit ${code}${text ? `: ${text}` : ''}`));
    ch.destroy();
  });
}
