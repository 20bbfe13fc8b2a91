/** A compose project after loading: every list-or-map form normalized, files merged, references checked. */

export interface PortConfig {
  target: number;
  /** 0: the engine picks one (ingress) or none is published (host). */
  published: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  mode: 'ingress' | 'host';
}

export interface MountConfig {
  type: 'volume' | 'bind' | 'tmpfs' | 'npipe';
  /** Volume name (as written in the file, not yet scoped) or absolute host path; empty for anonymous volumes. */
  source: string;
  target: string;
  readOnly: boolean;
  consistency?: string;
  propagation?: string;
  nocopy?: boolean;
  tmpfsSize?: number;
  tmpfsMode?: number;
}

export interface FileRef {
  source: string;
  target?: string;
  uid?: string;
  gid?: string;
  mode?: number;
}

export interface UpdatePolicy {
  parallelism?: number;
  delay?: string;
  failure_action?: string;
  monitor?: string;
  max_failure_ratio?: number;
  order?: string;
}

export interface ServiceConfig {
  name: string;
  image: string;
  command?: string[];
  entrypoint?: string[];
  /** Null: set without a value (`- DEBUG`), looked up in the environment when there is one. */
  environment: Record<string, string | null>;
  labels: Record<string, string>;
  ports: PortConfig[];
  /** Undefined: the service names no network and joins the stack's default one. */
  networks?: Record<string, { aliases: string[] }>;
  volumes: MountConfig[];
  secrets: FileRef[];
  configs: FileRef[];
  healthcheck?: { test?: string[]; interval?: string; timeout?: string; retries?: number; start_period?: string; start_interval?: string; disable?: boolean };
  stop_grace_period?: string;
  stop_signal?: string;
  hostname?: string;
  user?: string;
  working_dir?: string;
  tty?: boolean;
  stdin_open?: boolean;
  read_only?: boolean;
  init?: boolean;
  extra_hosts: Record<string, string>;
  dns?: string[];
  dns_search?: string[];
  dns_opt?: string[];
  cap_add?: string[];
  cap_drop?: string[];
  sysctls: Record<string, string>;
  ulimits?: Record<string, number | { soft: number; hard: number }>;
  tmpfs?: string[];
  logging?: { driver?: string; options?: Record<string, string> };
  isolation?: string;
  restart?: string;
  deploy: {
    mode?: string;
    replicas?: number;
    labels: Record<string, string>;
    endpoint_mode?: string;
    placement?: { constraints?: string[]; preferences?: { spread: string }[]; max_replicas_per_node?: number };
    resources?: {
      limits?: { cpus?: string | number; memory?: string | number; pids?: number };
      reservations?: { cpus?: string | number; memory?: string | number; generic_resources?: { discrete_resource_spec?: { kind: string; value: number } }[] };
    };
    restart_policy?: { condition?: string; delay?: string; max_attempts?: number; window?: string };
    update_config?: UpdatePolicy;
    rollback_config?: UpdatePolicy;
  };
}

export interface NetworkConfig {
  driver?: string;
  driver_opts?: Record<string, string>;
  ipam?: { driver?: string; config?: { subnet?: string; gateway?: string; ip_range?: string; aux_addresses?: Record<string, string> }[]; options?: Record<string, string> };
  /** The engine name of an external network (external: true or {name}). */
  external?: string;
  internal?: boolean;
  attachable?: boolean;
  labels: Record<string, string>;
  name?: string;
}

export interface VolumeConfig {
  driver?: string;
  driver_opts?: Record<string, string>;
  external?: string;
  labels: Record<string, string>;
  name?: string;
}

export interface FileObjectConfig {
  /** Absolute path of the content. */
  file?: string;
  external?: string;
  labels: Record<string, string>;
  name?: string;
  driver?: string;
  template_driver?: string;
}

export interface ComposeProject {
  services: Record<string, ServiceConfig>;
  networks: Record<string, NetworkConfig>;
  volumes: Record<string, VolumeConfig>;
  secrets: Record<string, FileObjectConfig>;
  configs: Record<string, FileObjectConfig>;
}

/** A loaded stack: the project, and the warnings docker would print (unsupported keys, unset variables). */
export interface LoadedStack {
  name: string;
  files: string[];
  project: ComposeProject;
  warnings: string[];
}
