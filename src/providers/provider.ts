/**
 * The provider contract. Batch-oriented: at Swarm2k scale one API call per machine is the bottleneck, so every
 * method takes or returns many machines at once and the provider batches to its cloud's limit.
 */
import type { ZodType } from 'zod';
import type { EventBus } from '../base/events.js';
import type { HostSpec, Inventory } from '../inventory/types.js';
import type { ProviderSchemas } from '../inventory/provider-registry.js';
import type { Machine } from '../base/machine.js';
import type { Session } from '../remote/remote.js';


/** What a provider can do; read by planning and by the fan-out engine to size batches. */
export interface ProviderInfo {
  name: string;
  /** Most machines one create call may ask for (10 on DigitalOcean, hundreds on EC2, 1 for VirtualBox). */
  batchSize: number;
  /** Create/destroy calls the provider may have in flight at once. */
  concurrency: number;
  /** Accepts cloud-init style user data. */
  userData: boolean;
  /** Engine install method used when the inventory says `auto`. */
  defaultInstall: 'packages' | 'bundle';
  /** Creates and destroys machines (false for `ssh`, whose machines exist already). */
  ownsMachines: boolean;
  /** Needs root on the operator's machine. */
  needsRoot: boolean;
  /**
   * Its hosts' kernels have IPVS, so swarm's ingress routing mesh (a port published in `ingress` mode answers on every
   * node) and services' virtual IPs (endpoint mode `vip`) work. False on the lab, whose kernel has no IPVS: the
   * engine accepts such services, but those ports and VIPs never answer; `mode: host` and `dnsrr` are what work there.
   */
  ingressMesh: boolean;
}

/** Shared by every provider call. */
export interface ProviderContext {
  inventory: Inventory;
  /** Per-cluster state directory (0700); providers keep their own files below it. */
  stateDir: string;
  events: EventBus;
  signal?: AbortSignal;
}

/** Per-machine outcome of a batch call: what succeeded is returned even when other machines failed. */
export interface BatchResult<T = Machine> {
  done: T[];
  failed: { name: string; error: Error }[];
}

/** Files a provider hands to bootstrap (the lab builds its engine bundle and base image locally). */
export interface ProviderArtifacts {
  /** A `.tar.gz` of static engine binaries (`bin/dockerd`, ...) for the `bundle` install method. */
  bundle?: string;
  /** The same bundle as `.tar.zst`, used on hosts that have zstd (much cheaper to extract). */
  bundleZstd?: string;
  /** Images to load on every node, in addition to the inventory's `images:`. */
  images?: { file: string; kind: 'load' | 'import'; tag?: string }[];
  /**
   * Package repositories the provider serves to its own hosts, by the host's VERSION_CODENAME (the lab's flat apt
   * repositories on its bridge): used by `install: packages` when the inventory names no mirror.
   */
  packageMirrors?: Record<string, PackageMirror>;
}

/** An apt source: `deb [trusted=yes] URL SUITE COMPONENTS...`; a flat repository has suite `./` and no components. */
export interface PackageMirror {
  url: string;
  suite: string;
  components: string[];
  /** Local path of an ASCII-armoured signing key; absent with `trusted`. */
  key?: string;
  /** Accept the repository unsigned (the lab's own flat repository). */
  trusted?: boolean;
}

/** A network path the cluster's swarm ports must cross, for planning and reporting. */
export interface FirewallRule {
  port: string;
  protocol: 'tcp' | 'udp' | 'esp';
  from: string;
  why: string;
}

export interface Provider extends ProviderSchemas {
  readonly name: string;
  /** Schemas for `providers.<name>` settings and a group's `options`, checked with positions by the inventory loader. */
  readonly schemas: { settings?: ZodType; options?: ZodType };
  /** Capabilities; pure, never fails. */
  info(): ProviderInfo;
  /** Checks provider settings and host options offline; throws UsageError naming the key. Touches nothing. */
  validate(hosts: HostSpec[], ctx: ProviderContext): void;
  /** Checks the operator's machine can run this provider (root, binaries); throws UsageError saying what is missing. */
  preflight(ctx: ProviderContext): Promise<void>;
  /** Lines describing what `create` would do for these hosts (calls, batches, rules); offline. */
  plan(hosts: HostSpec[], ctx: ProviderContext): string[];
  /** Builds or locates files bootstrap needs (engine bundle, base images); cached, safe to call on every run. */
  artifacts(ctx: ProviderContext): Promise<ProviderArtifacts>;
  /** Creates the cluster-scoped network and firewall (bridge, security group); idempotent. Throws on failure. */
  network(ctx: ProviderContext): Promise<void>;
  /**
   * Creates the missing machines in batches; machines that came up are in `done` even if others failed. `ready`, when
   * given, is called with each machine the moment it answers SSH (before `create` returns), so bootstrap can start on
   * it while others are still being made; every machine handed to `ready` is in `done` too.
   */
  create(hosts: HostSpec[], ctx: ProviderContext, ready?: (machine: Machine) => void): Promise<BatchResult>;
  /** Discovers the cluster's machines from the provider itself (tags, labels, namespaces), not local state. */
  list(ctx: ProviderContext): Promise<Machine[]>;
  /** Destroys machines in batches; a machine already gone counts as done. */
  destroy(machines: Machine[], ctx: ProviderContext): Promise<BatchResult<string>>;
  /** Removes the cluster network and anything else `network` or `create` made; idempotent. `force` also removes leftovers of crashed runs. */
  teardown(ctx: ProviderContext, opts: { force: boolean }): Promise<void>;
  /**
   * Reaches one of its machines itself instead of over SSH (the simulated provider's in-process transport). Same
   * contract as SSH's connect: one attempt, throws on failure, the caller retries. Absent: SSH.
   */
  connect?(machine: Machine): Promise<Session>;
}
