/**
 * An http.Agent whose sockets are SSH channels to the remote engine's Unix socket, so dockerode rides the host's one
 * SSH connection. docker-modem's own `ssh` protocol opens a new SSH connection for every request and needs the docker
 * CLI on the host (`docker system dial-stdio`); this needs neither.
 */
import http from 'node:http';
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
  return agent;
}
