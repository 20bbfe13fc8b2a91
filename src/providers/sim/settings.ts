/**
 * `providers.sim` settings: the latency and failure model of the simulated cloud, SSH and engines. Every latency is a
 * distribution in milliseconds of real (unscaled) time, multiplied by `timeScale` when it is waited for; the tool's own
 * waits (poll intervals, backoff) are not scaled, which the benchmark reports.
 */
import { z } from 'zod';
import type { Inventory } from '../../inventory/types.js';

/**
 * A latency: a fixed number of milliseconds, or a log-normal distribution given by its median and 99th percentile
 * (`{ p50: 150, p99: 800 }`), the shape network and API latencies usually have.
 */
export const latencySchema = z.union([
  z.number().nonnegative(),
  z
    .strictObject({ p50: z.number().nonnegative(), p99: z.number().nonnegative() })
    .refine((d) => d.p99 >= d.p50, { message: 'p99 must be at least p50' }),
]);
export type Latency = z.infer<typeof latencySchema>;

const share = z.number().min(0).max(1);

/** Cloud API presets: batch size and request rate of the create call, from the providers' published limits. */
export const API_PRESETS = {
  /** POST /v2/droplets takes at most 10 names; 5,000 requests an hour (about 1.4 a second), bursts of 250 a minute. */
  digitalocean: { batchSize: 10, callsPerSecond: 1.4, burst: 4, concurrency: 4, callTime: { p50: 900, p99: 3000 }, bootTime: { p50: 45_000, p99: 120_000 } },
  /** RunInstances with MinCount/MaxCount: large batches, a token bucket of 5 refilled at 2 a second. */
  aws: { batchSize: 100, callsPerSecond: 2, burst: 5, concurrency: 5, callTime: { p50: 1500, p99: 5000 }, bootTime: { p50: 35_000, p99: 90_000 } },
} as const;

const apiSchema = z.strictObject({
  /** Preset whose values apply to the keys not given. */
  like: z.enum(['digitalocean', 'aws']).default('digitalocean'),
  /** Machines one create call may ask for. */
  batchSize: z.number().int().min(1).max(1000).optional(),
  /** Create/destroy calls the API accepts per second (a token bucket); more get HTTP 429. */
  callsPerSecond: z.number().positive().optional(),
  /** Calls the bucket holds when full. */
  burst: z.number().int().min(1).optional(),
  /** Calls the provider keeps in flight at once. */
  concurrency: z.number().int().min(1).max(100).optional(),
  /** Latency of one API call. */
  callTime: latencySchema.optional(),
  /** From the create call's answer until the machine runs sshd. */
  bootTime: latencySchema.optional(),
  /** Share of machines the cloud fails to create on the first try ("no capacity"); a re-run creates them. */
  failShare: share.default(0),
});

const sshSchema = z.strictObject({
  /** SSH handshake and authentication. */
  connectTime: latencySchema.default({ p50: 250, p99: 1200 }),
  /** Round trip of one command or SFTP write on an open connection. */
  rtt: latencySchema.default({ p50: 40, p99: 250 }),
  /** Share of hosts whose first handshake times out (after `handshakeTimeout`); the tool's retry then gets in. */
  timeoutShare: share.default(0),
  handshakeTimeout: latencySchema.default(15_000),
  /** Share of hosts unreachable over SSH for a whole run (connection refused: sshd down, a network ACL); the next run reaches them. */
  failShare: share.default(0),
});

const engineSchema = z.strictObject({
  /** `apt-get install docker.io` on a fresh host. */
  installTime: latencySchema.default({ p50: 25_000, p99: 80_000 }),
  /** Installs the package mirror serves at once; more wait for it (its bandwidth is shared). */
  mirrorConcurrency: z.number().int().min(1).default(200),
  /** Share of hosts whose first install fails (mirror 503); a re-run installs them. */
  installFailShare: share.default(0),
  /** `systemctl start docker` until the API answers. */
  startTime: latencySchema.default({ p50: 1500, p99: 6000 }),
  /** An Engine API call on top of the SSH round trip (reads). */
  apiTime: latencySchema.default({ p50: 3, p99: 40 }),
  /** Engine version the hosts report. */
  version: z.string().default('20.10.24'),
});

const swarmSchema = z.strictObject({
  /** Time a manager takes to sign one node certificate (a Raft write and the CA's signature). */
  signTime: latencySchema.default({ p50: 120, p99: 600 }),
  /** Certificates one manager signs at once; further joins queue on it. */
  signConcurrency: z.number().int().min(1).default(4),
  /** Each join queued on a manager beyond `signConcurrency` makes its signing this much slower (share per join). */
  loadSlowdown: z.number().min(0).default(0.02),
  /** The joining engine's own wait before it answers "Timeout was reached" and goes on in the background. */
  joinTimeout: latencySchema.default(20_000),
  /** Joins in flight on one manager at which the leader's heartbeats are starved and the swarm loses its leader. */
  leaderLossAt: z.number().int().min(1).default(40),
  /** How long an election takes after a leader loss; no certificate is signed meanwhile. */
  electionTime: latencySchema.default({ p50: 10_000, p99: 20_000 }),
  /** A Raft write (node update, service create). */
  writeTime: latencySchema.default({ p50: 15, p99: 150 }),
  /** Share of worker joins that fail on the first try with a transient manager error; a re-run joins them. */
  failShare: share.default(0),
  /** Share of joins whose engine answers "Timeout was reached before node joined" and then joins in the background. */
  timeoutShare: share.default(0),
  /**
   * After this many worker joins in a run, one manager that is not the leader loses its engine (it crashed; it stays
   * down until started again, as a re-run's bootstrap does). 0: never.
   */
  managerLossAfter: z.number().int().min(0).default(0),
  /** Tasks the managers start per second (Swarm3k: about 26). */
  tasksPerSecond: z.number().positive().default(26),
});

/** Schema of `providers.sim`. */
export const simSettingsSchema = z.strictObject({
  /** Seed of every random draw: the same seed and inventory give the same latencies and the same failing hosts. */
  seed: z.number().int().min(0).default(1),
  /** Multiplies every modelled latency: 0.01 runs a simulated hour in 36 s (the tool's own waits are not scaled). */
  timeScale: z.number().positive().max(100).default(1),
  /** First address of the hosts, in 127.0.0.0/8 (nothing is ever sent to them; loopback keeps them harmless). */
  addressBase: z
    .string()
    .regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/, 'must be a loopback address (127.x.y.z): simulated hosts never get traffic, and may only name loopback')
    .default('127.64.0.10'),
  api: apiSchema.prefault({}),
  ssh: sshSchema.prefault({}),
  engine: engineSchema.prefault({}),
  swarm: swarmSchema.prefault({}),
});

/** Schema of a sim group's `options`: none yet. */
export const simOptionsSchema = z.strictObject({});

type Parsed = z.infer<typeof simSettingsSchema>;

/** Resolved settings: presets applied, every key present. */
export interface SimSettings extends Omit<Parsed, 'api'> {
  api: {
    like: 'digitalocean' | 'aws';
    batchSize: number;
    callsPerSecond: number;
    burst: number;
    concurrency: number;
    callTime: Latency;
    bootTime: Latency;
    failShare: number;
  };
}

/** Parses `providers.sim` (already validated with positions by the loader) and applies the API preset. */
export function simSettings(inventory: Pick<Inventory, 'providers'>): SimSettings {
  const parsed = simSettingsSchema.parse(inventory.providers?.sim ?? {});
  const preset = API_PRESETS[parsed.api.like];
  return {
    ...parsed,
    api: {
      like: parsed.api.like,
      batchSize: parsed.api.batchSize ?? preset.batchSize,
      callsPerSecond: parsed.api.callsPerSecond ?? preset.callsPerSecond,
      burst: parsed.api.burst ?? preset.burst,
      concurrency: parsed.api.concurrency ?? preset.concurrency,
      callTime: parsed.api.callTime ?? preset.callTime,
      bootTime: parsed.api.bootTime ?? preset.bootTime,
      failShare: parsed.api.failShare,
    },
  };
}
