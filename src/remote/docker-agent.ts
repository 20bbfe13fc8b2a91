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
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8, maxFreeSockets: 2, timeout: 0 });
  (agent as unknown as { createConnection: unknown }).createConnection = (
    _options: unknown,
    callback: (err: Error | null, socket?: Duplex) => void,
  ) => {
    conn.openssh_forwardOutStreamLocal(socketPath, (err, channel) => {
      if (err) return callback(err);
      // http expects socket-like methods that SSH channels lack.
      const ch = channel as unknown as Duplex & Record<string, unknown>;
      for (const m of ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref']) {
        if (typeof ch[m] !== 'function') ch[m] = () => ch;
      }
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
