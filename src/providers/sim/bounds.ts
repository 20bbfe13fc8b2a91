/**
 * Lower bounds of `up`'s wall time under the sim model, for the benchmark: the critical path when every limit is
 * used fully. Provision and bootstrap overlap as `up` runs them (a machine is bootstrapped as soon as it has booted,
 * while later ones are still being created), so the bootstrap bound runs from the start of the run: the later of
 * the last machine's own path and the package mirror's whole work after the machines that feed it have arrived. The
 * swarm phase starts once every host is bootstrapped (the firewall needs every member's address first), and
 * workloads after it; `sequential` is what the same phases would take one after another. Two bounds per phase:
 * - `model`: only the simulated world's limits (the cloud API's batches, rate and concurrency; the package mirror;
 *   each manager's signing capacity; the task start rate), with any number of hosts worked on at once;
 * - `windows`: the same, plus the tool's own fan-out windows (bootstrap `swarm.bootstrapConcurrency` hosts at once,
 *   each connecting in its own slot; the managers' state probes 64 at once, joins `swarm.joinConcurrency` spread over the managers),
 *   i.e. the best the current pacing could do; {@link boundInputOf} reads them from the inventory.
 * Means of the latency distributions are used, so a lucky run can beat a bound by a little.
 */
import { meanOf } from './model.js';
import { machineArrivalMs, provisionLowerBoundMs } from './index.js';
import type { Inventory } from '../../inventory/types.js';
import type { SimSettings } from './settings.js';

export interface BoundInput {
  managers: number;
  workers: number;
  /** `swarm.joinConcurrency` of the inventory. */
  joinConcurrency: number;
  /** Service replicas to start (sum over services). */
  replicas: number;
  /** The tool's windows (defaults: bootstrap 32, probe 64; {@link boundInputOf} takes the inventory's). */
  windows?: { bootstrap: number; probe: number };
}

/** The bound's input for a loaded inventory: its managers and workers, join and bootstrap windows, replicas. */
export function boundInputOf(inv: Pick<Inventory, 'hosts' | 'swarm' | 'services'>): BoundInput {
  const managers = inv.hosts.filter((h) => h.role === 'manager').length;
  const workers = inv.hosts.length - managers;
  const bootstrap = inv.swarm.bootstrapConcurrency;
  return {
    managers,
    workers,
    joinConcurrency: inv.swarm.joinConcurrency,
    replicas: inv.services.reduce((a, s) => a + (s.mode === 'global' ? workers : s.replicas), 0),
    // As src/core/up.ts runs them: `swarm.bootstrapConcurrency` hosts at once, each connecting in its own slot.
    windows: { bootstrap, probe: 64 },
  };
}

export type PhaseBounds = Record<'provision' | 'bootstrap' | 'swarm' | 'workloads', number>;

/**
 * Per phase, each from its own start: `provision` until the last machine has booted, `bootstrap` until the last host
 * is bootstrapped (it starts with provision, so it covers it); `total` = bootstrap + swarm + workloads.
 */
export interface Bounds {
  model: PhaseBounds & { total: number; sequential: number };
  windows: PhaseBounds & { total: number; sequential: number };
  /** One fresh host's bootstrap path and one worker's join path (ms, scaled). */
  perHost: { bootstrap: number; join: number };
  /** Joins in flight that would keep every manager's signing busy: capacity x (join path / signing time). */
  saturatingJoins: number;
}

/** Computes both bounds (ms of real time, i.e. already multiplied by the time scale). */
export function lowerBounds(s: SimSettings, x: BoundInput): Bounds {
  const k = s.timeScale;
  const n = x.managers + x.workers;
  const w = { bootstrap: 32, probe: 64, ...x.windows };
  const rtt = meanOf(s.ssh.rtt);
  const api = rtt + meanOf(s.engine.apiTime);
  const install = meanOf(s.engine.installTime);
  const sign = meanOf(s.swarm.signTime);
  const write = meanOf(s.swarm.writeTime);
  const connect = meanOf(s.ssh.connectTime);

  // A fresh host: facts, install (+ `command -v dockerd`), daemon.json (cat, mkdir, write), firewall (list, apply,
  // list), start (systemctl, then ping and version).
  const bootRest = rtt + rtt + 4 * rtt + 3 * rtt + (rtt + meanOf(s.engine.startTime)) + 2 * api;
  const bootPath = connect + bootRest + rtt + install;
  // A worker join: docker info, port check, swarm join (signing), docker info, node inspect, node update.
  const joinRest = api + rtt + api + api + api + (api + write);
  const joinPath = joinRest + sign;
  const managerJoin = api + rtt + api + sign + api + api;
  const provision = provisionLowerBoundMs(s, n) / k;

  const capacity = Math.max(1, x.managers) * s.swarm.signConcurrency;
  const tail = api + api + x.managers * (api + write) + api; // all-Ready poll, node settings, status read
  const swarmModel = api + (api + write * 10) + Math.max(0, x.managers - 1) * managerJoin + (x.workers * sign) / capacity + joinRest + tail;
  // With J joins in flight, a join every joinPath / J, but never faster than the managers sign (capacity / sign).
  const perJoin = Math.max(joinPath / Math.max(1, x.joinConcurrency), sign / capacity);
  const swarmWindows = api * Math.ceil(Math.max(1, x.managers) / w.probe) + (api + write * 10) + Math.max(0, x.managers - 1) * managerJoin + x.workers * perJoin + tail;

  // Bootstrap alone, on machines that all exist (what it would take after provision, in sequence).
  const bootstrapAlone = connect + bootRest + rtt + Math.max(1, n / s.engine.mirrorConcurrency) * install;
  const bootstrapAloneWindows = Math.max(bootstrapAlone, (n / w.bootstrap) * bootPath);
  // Overlapped with provision: after the k-th machine arrives, the n-k+1 machines from it on still need the mirror
  // for (n-k+1) installs / mirror places (at least one whole install), or a bootstrap slot for a whole path each.
  // The largest of these over k is a lower bound on when the last host is bootstrapped (k = n: the last machine's
  // own path; k = 1: all of the mirror's work after the first machine).
  const beforeInstall = connect + rtt;
  const afterInstall = bootPath - install - beforeInstall;
  let overlapModel = 0;
  let overlapWindows = 0;
  for (let i = 1; i <= n; i++) {
    const arrival = machineArrivalMs(s, i);
    const left = n - i + 1;
    overlapModel = Math.max(overlapModel, arrival + beforeInstall + Math.max(install, (left * install) / s.engine.mirrorConcurrency) + afterInstall);
    overlapWindows = Math.max(overlapWindows, arrival + Math.max(bootPath, (left * bootPath) / w.bootstrap));
  }
  const workloads = x.replicas > 0 ? write + (x.replicas / s.swarm.tasksPerSecond) * 1000 : 0;

  const model = { provision, bootstrap: overlapModel, swarm: swarmModel, workloads };
  const windows = { provision, bootstrap: Math.max(overlapModel, overlapWindows), swarm: Math.max(swarmModel, swarmWindows), workloads };
  const sequentialModel = provision + bootstrapAlone + swarmModel + workloads;
  const sequentialWindows = provision + bootstrapAloneWindows + windows.swarm + workloads;
  const scaled = (p: PhaseBounds, sequential: number) => {
    const out = { provision: p.provision * k, bootstrap: p.bootstrap * k, swarm: p.swarm * k, workloads: p.workloads * k };
    return { ...out, total: out.bootstrap + out.swarm + out.workloads, sequential: sequential * k };
  };
  return {
    model: scaled(model, sequentialModel),
    windows: scaled(windows, sequentialWindows),
    perHost: { bootstrap: bootPath * k, join: joinPath * k },
    saturatingJoins: Math.ceil((capacity * joinPath) / sign),
  };
}
