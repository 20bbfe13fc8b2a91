/** The resolved inventory: what every later phase reads. Produced by `loadInventory` after full validation. */

import type { Role } from '../base/machine.js';

export type { Role };

/** SSH settings; merged cluster -> group -> host, the most specific winning. */
export interface SshSettings {
  user: string;
  port: number;
  /** Path of a private key file (`~` expanded). Absent: the provider supplies one (lab) or ssh-agent is used. */
  key?: string;
  /** Seconds to keep trying to reach SSH before failing the host. */
  connectTimeout: number;
  /** `sudo` (the default when `user` is not root): privileged commands run through `sudo -n`. */
  become?: 'sudo' | 'none';
  /**
   * Bastions, first to last (OpenSSH ProxyJump semantics); [] for `jump: none`; absent: the OpenSSH config decides.
   * Unset user/port/key are filled at connect time (the config for the bastion, else the host's user, 22, its key).
   */
  jump?: { host: string; port?: number; user?: string; key?: string }[];
  /** OpenSSH client config to consult: a path (absolute), false to ignore it; absent: ~/.ssh/config. */
  config?: string | false;
  /** Keys still at swarmform's defaults (not written at any level): the OpenSSH config may fill them. */
  defaults?: ('user' | 'port')[];
}

/** How to pick the address a node advertises to the swarm. */
export type AdvertiseChoice = { kind: 'private' } | { kind: 'public' } | { kind: 'cidr'; cidr: string };

export type InstallMethod = 'packages' | 'bundle';

export interface SwarmSettings {
  advertise: AdvertiseChoice;
  /** Worker joins in flight at once across the cluster. */
  joinConcurrency: number;
  /** Hosts bootstrapped (engine install, daemon.json, firewall, start) at once; SSH connects use at least as many. */
  bootstrapConcurrency: number;
  /** `adaptive`: per-manager windows that follow how fast joins finish, within joinConcurrency; `fixed`: joinConcurrency in flight. */
  joinPacing: 'adaptive' | 'fixed';
  /** Engine install method; `auto` lets the provider decide (the lab uses a bundle). */
  install: InstallMethod | 'auto';
  /** Absolute path of an engine bundle (`.tar.gz` of `bin/dockerd`, ...) for `install: bundle` where the provider has none. */
  bundle?: string;
  /** Where `install: packages` gets the engine; absent: the distribution's docker.io from the host's own sources. */
  packages?: PackageSettings;
  /** Open the swarm ports in each host's firewall (turning it off is for diagnosis only). */
  firewall: boolean;
  /** Set managers' availability to drain so tasks run on workers only. */
  drainManagers: boolean;
  /** false: remove the swarm's `ingress` network before workers join (no routing mesh; host-mode ports only). */
  ingress: boolean;
  /** Extra keys merged into /etc/docker/daemon.json. */
  daemon: Record<string, unknown>;
  /** Lock managers' Raft keys at rest; the unlock key is kept in the 0600 state only. */
  autolock: boolean;
  /** `large` applies settings suited to thousands of nodes (see src/raft); explicit settings below still win. */
  profile: 'default' | 'large';
  /** SwarmKit Raft settings (swarm spec, and daemon.json for the ticks). */
  raft?: RaftSettings;
  /** Dispatcher settings; heartbeatPeriod in seconds. */
  dispatcher?: { heartbeatPeriod?: number };
  /** Node certificate lifetime in hours (SwarmKit's default is 90 days). */
  certExpiryHours?: number;
  /** Finished tasks kept per slot. */
  taskHistoryLimit?: number;
}

/** `swarm.packages`: the package source for `install: packages`. */
export interface PackageSettings {
  /** `distribution`: docker.io; `docker`: docker-ce, docker-ce-cli, containerd.io from Docker's repository. */
  from: 'distribution' | 'docker';
  /** Base URL of an apt repository (a site mirror, Docker's repository, a flat repository). */
  mirror?: string;
  /** Suite; default the host's codename; `./` for a flat repository. */
  suite?: string;
  components?: string[];
  /** Absolute path of the repository's ASCII-armoured signing key, uploaded to /etc/apt/keyrings. */
  key?: string;
  /** Accept an unsigned repository. */
  trusted: boolean;
}

export interface RaftSettings {
  snapshotInterval?: number;
  keepOldSnapshots?: number;
  logEntriesForSlowFollowers?: number;
  electionTick?: number;
  heartbeatTick?: number;
}

/** A compose stack from `workloads.stacks`: files are absolute paths, applied in order as `docker stack deploy -c`. */
export interface StackSpec {
  name: string;
  files: string[];
  /** Variables for interpolation, on top of the process environment and the first file's directory `.env`. */
  env: Record<string, string>;
}

export interface HostSpec {
  name: string;
  /** Inventory group the host came from. */
  group: string;
  provider: string;
  role: Role;
  labels: Record<string, string>;
  ssh: SshSettings;
  /** Address for providers that do not create machines (ssh): where to connect. */
  address?: string;
  /** Private address when it differs from `address` (ssh provider). */
  privateAddress?: string;
  /** Provider-specific options of the group, merged with the host's; validated by the provider. */
  options: Record<string, unknown>;
}

export interface PublishedPort {
  published: number;
  target: number;
  protocol: 'tcp' | 'udp';
  mode: 'host' | 'ingress';
}

export interface ServiceSpec {
  name: string;
  image: string;
  /** `replicated` with `replicas`, or `global`. */
  mode: 'replicated' | 'global';
  replicas: number;
  command?: string[];
  args?: string[];
  env: Record<string, string>;
  ports: PublishedPort[];
  constraints: string[];
  labels: Record<string, string>;
}

/** An image tarball to load on every node: `docker save` output (`load`) or a root filesystem (`import`). */
export interface ImageSpec {
  file: string;
  kind: 'load' | 'import';
  /** Tag given to an imported root filesystem. */
  tag?: string;
}

export interface Inventory {
  /** Absolute path of the inventory file. */
  file: string;
  /** Cluster name: names the state directory and every provider resource. */
  cluster: string;
  /** Provider-level settings by provider name (e.g. `lab: {subnet}`), validated by each provider. */
  providers: Record<string, Record<string, unknown>>;
  swarm: SwarmSettings;
  hosts: HostSpec[];
  services: ServiceSpec[];
  stacks: StackSpec[];
  images: ImageSpec[];
}
