/** A cluster member as the swarm phase sees it: the machine, its open connection and its advertise address. */
import type { Machine } from '../base/machine.js';
import type { Remote } from '../remote/remote.js';

export interface Member {
  machine: Machine;
  remote: Remote;
  advertise: string;
}

/** Join tokens: secrets, kept in memory and the 0600 secrets file only. */
export interface JoinTokens {
  worker: string;
  manager: string;
}

/** The swarm's management endpoint of a manager. */
export function managerEndpoint(m: Member): string {
  return `${m.advertise}:2377`;
}
