/** The host record every layer passes: a machine that exists, how to reach it over SSH, and its role. */

/** A host's place in the swarm. */
export type Role = 'manager' | 'worker';

/** How a machine's services (the engine) are started: the provider knows, bootstrap obeys. */
export type InitSystem = 'systemd' | 'openrc' | 'sysv' | 'none' | 'detect';

/** A machine that exists: what every later phase needs to reach and place it. */
export interface Machine {
  name: string;
  role: Role;
  group: string;
  provider: string;
  /** The provider's own id (instance id, droplet id, lab pid, or the address for `ssh`). */
  providerId: string;
  privateAddress: string;
  publicAddress?: string;
  ssh: {
    host: string;
    port: number;
    user: string;
    /** Path of the private key file to authenticate with; absent means ssh-agent. */
    keyPath?: string;
    /**
     * How privileged commands run: `sudo` wraps every command in `sudo -n` and reaches the engine through
     * `sudo -n docker system dial-stdio`; `none` runs them as the login user (root). Absent: `sudo` unless the
     * login user (after the OpenSSH config) is root.
     */
    become?: 'sudo' | 'none';
    /**
     * Bastions to pass through, first to last (OpenSSH ProxyJump order); empty: connect directly; absent: the
     * OpenSSH config's ProxyJump for the host, if any.
     */
    jump?: SshHop[];
    /** OpenSSH client config consulted at connect time: a path, false to ignore, absent for ~/.ssh/config. */
    config?: string | false;
    /** Fields holding swarmform's defaults rather than the inventory's words: the OpenSSH config may replace them. */
    defaults?: ('user' | 'port')[];
  };
  labels: Record<string, string>;
  init: InitSystem;
  /**
   * The machine exists but is stopped (an EC2 instance someone stopped): `up` hands its host to `create`, which
   * starts it instead of making another. Absent for providers that do not report it.
   */
  stopped?: boolean;
}

/** One bastion on the way to a host. */
export interface SshHop {
  host: string;
  /** Absent: the OpenSSH config's Port for the bastion, else 22. */
  port?: number;
  /** Absent: the OpenSSH config's User for the bastion, else the host's own login user. */
  user?: string;
  /** Absent: the OpenSSH config's IdentityFile for the bastion, else the host's key (or ssh-agent). */
  keyPath?: string;
}
