/**
 * The phase contract of `up` (kind's actions, k0sctl's phases): each phase has a title, says whether this run has
 * work for it, runs against the run's shared state, and describes offline what it would do, which is all `plan` is.
 */
import type { HostFailure, SwarmformError } from '../../base/errors.js';
import type { Machine } from '../../base/machine.js';
import type { Phase } from '../../base/events.js';
import type { BootstrapPlan } from '../../bootstrap/bootstrap-host.js';
import type { HostFacts } from '../../bootstrap/facts.js';
import type { Context } from '../../cluster/context.js';
import type { Sessions } from '../../cluster/sessions.js';
import type { ImageSpec } from '../../inventory/types.js';
import type { Feed } from '../../run/feed.js';
import type { Member } from '../../swarm/members.js';
import type { ClusterStatus } from '../../swarm/status.js';
import type { PlanResult } from '../plan.js';
import type { planInventoryStacks } from '../stack.js';

export type UpPhase = 'provision' | 'bootstrap' | 'swarm' | 'workloads';

export interface UpOptions {
  /** Stop after this phase (the phase subcommands); default: all. */
  until?: UpPhase;
  /** Make hosts that belong to another swarm leave it. */
  force?: boolean;
}

export interface UpResult {
  cluster: string;
  /** How many things changed; 0 means the cluster already matched the inventory. */
  changed: number;
  changes: { provision: number; bootstrap: number; images: number; swarm: number; workloads: number };
  failures: HostFailure[];
  status?: ClusterStatus;
  /** Where published ports answer: `http://address:port` per host-mode port and node running a task. */
  endpoints: { service: string; url: string }[];
  phaseMs: Record<string, number>;
}

/** What the phases of one `up` share: filled in as they go (the machines, their facts, the members, the leader). */
export interface UpRun {
  ctx: Context;
  opts: UpOptions;
  result: UpResult;
  sessions: Sessions;
  /** Aborted by whichever phase throws, so the one running beside it starts no more hosts. */
  stop: AbortController;
  /** The user's signal and `stop` together. */
  signal: AbortSignal;
  /** Records a host's failure for the summary and the exit-3 error. */
  fail(host: string, step: string, err: Error): void;
  /** The swarm members' address ranges, known once every machine exists (or at once with `advertise: <cidr>`). */
  memberCidrs?: string[];
  /** Install plans per provider and the providers' base images, decided before the first machine arrives. */
  prepared: { plans: Map<string, BootstrapPlan>; images: ImageSpec[] };
  /** Machines as they exist or are created, in arrival order (bootstrap starts on each at once). */
  arrived: Feed<Machine>;
  /** Settles when the provision phase has every machine (or failed). */
  provisioned?: Promise<Machine[]>;
  facts: Map<string, HostFacts>;
  /** Machines bootstrapped and ready for the swarm. */
  ready: Machine[];
  /** The inventory's compose stacks, loaded and validated before anything is touched. */
  stacks: ReturnType<typeof planInventoryStacks>;
  /** The manager the swarm phase ended with, for workloads and the status. */
  lead?: Member;
}

export interface UpPhaseStep {
  /** The event phase it reports as (its start and end events, its wall time in `phaseMs`); absent: untimed. */
  name: Phase | 'prepare';
  title: string;
  /** Whether this run has work for it (the `until` option, services to apply, images to load...). */
  shouldRun(run: UpRun): boolean;
  /** Hosts it reports on, for the phase's start event. */
  total?(run: UpRun): number;
  run(run: UpRun): Promise<void>;
  /** Starts the next phase without waiting for this one to end (provision and bootstrap overlap). */
  overlapsNext?: boolean;
  /** What it would do, offline: fills its part of the plan. */
  dryRun(ctx: Context, plan: PlanResult): void;
}

/** The failure as the summary shows it: the error's message and hint. */
export function failureOf(host: string, step: string, err: Error): HostFailure {
  const hint = (err as SwarmformError).hint;
  return { host, step, message: err.message, ...(hint ? { hint } : {}) };
}

export const ORDER: UpPhase[] = ['provision', 'bootstrap', 'swarm', 'workloads'];

/** Whether `up`'s `until` reaches phase `p`. */
export function reaches(opts: UpOptions, p: UpPhase): boolean {
  return ORDER.indexOf(opts.until ?? 'workloads') >= ORDER.indexOf(p);
}
