/**
 * An http.Agent whose sockets are SSH channels to the remote engine's Unix socket, so dockerode rides the host's one
 * SSH connection. docker-modem's own `ssh` protocol opens a new SSH connection for every request and needs the docker
 * CLI on the host (`docker system dial-stdio`); this needs neither.
 */
import http from 'node:http';
import { inspect } from 'node:util';
import type { Duplex } from 'node:stream';
import type { Client } from 'ssh2';

export const DOCKER_SOCKET = '/var/run/docker.sock';

/** Builds an agent that opens one streamlocal channel per HTTP connection. */
export function dockerSocketAgent(conn: Client, socketPath = DOCKER_SOCKET): http.Agent {
  // keepAlive reuses channels between sequential requests; maxSockets bounds channels per host (sshd MaxSessions).
  // Up to maxSockets idle channels are kept: a burst of parallel calls (node updates) then reuses them.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8, maxFreeSockets: 8, timeout: 0 });
  (agent as unknown as { createConnection: unknown }).createConnection = (
    _options: unknown,
    callback: (err: Error | null, socket?: Duplex) => void,
  ) => {
    conn.openssh_forwardOutStreamLocal(socketPath, (err, channel) => {
      if (err) return callback(err);
      // http expects socket-like methods that SSH channels lack.
      const ch = channel as unknown as Duplex & Record<string, unknown>;
      for (const m of ['setKeepAlive', 'setNoDelay', 'ref', 'unref']) {
        if (typeof ch[m] !== 'function') ch[m] = () => ch;
      }
      idleTimeout(ch);
      closeOnDestroy(ch);
      callback(null, ch);
    });
    return undefined;
  };
  // docker-modem formats every request's options for its debug log with util.inspect({ showHidden: true, depth: null })
  // even when debugging is off. The options hold this agent, and through its sockets the SSH channels and the whole
  // ssh2 client: formatting that graph on every call made the tool spend minutes of CPU in util.inspect during the
  // node updates after a 117-worker join (measured with the inspector's profiler). A custom inspect cuts it to a name.
  Object.defineProperty(agent, inspect.custom, { value: () => `DockerSocketAgent(${socketPath})`, enumerable: false });
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
