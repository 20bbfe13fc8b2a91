/**
 * The simulated world of one cluster: its machines (what each host has installed, running, written), the one swarm
 * its managers run, and the limits every host shares (the cloud API's bucket, the package mirror, each manager's
 * signing capacity). It lives in this process and is kept in `sim-world.json` in the cluster's state directory:
 * loaded on first use, written when the process exits, so a re-run finds the hosts as the last run left them.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng, Servers, meets, scaledSleep } from './model.js';
import type { Latency, SimSettings } from './settings.js';

export const WORLD_FILE = 'sim-world.json';

export type LocalState = 'inactive' | 'pending' | 'active' | 'error';

/** One simulated machine as its disk and processes would show it. */
export interface SimHost {
  name: string;
  role: 'manager' | 'worker';
  group: string;
  address: string;
  labels: Record<string, string>;
  createdAt: number;
  /** The engine package is installed. */
  installed: boolean;
  /** dockerd runs (survives between runs, like a real daemon). */
  running: boolean;
  /** Files swarmform wrote (daemon.json, service definitions). */
  files: Record<string, string>;
  /** The swarmform chain's listing once the firewall script ran. */
  firewall?: string;
  /** Transient faults this host already met (each happens once: a re-run gets through). */
  faults: string[];
  swarm: { state: LocalState; nodeId?: string; clusterId?: string; manager?: boolean; error?: string };
}

/** A node record held by the swarm's managers (what `docker node ls` lists). */
export interface SimNode {
  id: string;
  host: string;
  role: 'manager' | 'worker';
  availability: string;
  labels: Record<string, string>;
  version: number;
  addr: string;
  state: 'ready' | 'down';
  createdAt: number;
  updatedAt: number;
  leader?: boolean;
}

export interface SimService {
  id: string;
  version: number;
  createdAt: number;
  updatedAt: number;
  spec: Record<string, unknown>;
  /** When the managers started scheduling its tasks (tasks start at `swarm.tasksPerSecond`). */
  startedAt: number;
}

/** The swarm the simulated managers run. */
export interface SimCluster {
  id: string;
  createdAt: number;
  tokens: { worker: string; manager: string };
  /** Raft index: every write bumps it. */
  index: number;
  nodes: Record<string, SimNode>;
  services: Record<string, SimService>;
  /** Until this time (epoch ms) the swarm has no leader: nothing is signed or written. */
  leaderlessUntil: number;
  /** Leader losses so far (shown by `status --json` through the world file, and counted by tests). */
  leaderLosses: number;
}

interface WorldFile {
  version: 1;
  cluster: string;
  nextAddress: number;
  hosts: Record<string, SimHost>;
  /** Faults met by hosts that do not exist (a create that failed), carried to the host once it is created. */
  absentFaults: Record<string, string[]>;
  swarm?: SimCluster;
}

/** Per-manager load while this process runs (not persisted: in-flight joins end with the process). */
interface ManagerLoad {
  /** Certificate signing: `swarm.signConcurrency` places; its `inflight` counts the joins signed or queued. */
  signing: Servers;
}

const worlds = new Map<string, SimWorld>();

/**
 * With SWARMFORM_SIM_STATS set, how busy the shared servers were (the package mirror, each manager's signing), printed
 * to stderr at exit: first start, last end, and the share of their capacity used in between (1 = never idle).
 */
const busy = process.env.SWARMFORM_SIM_STATS ? new Map<string, { size: number; first: number; last: number; sum: number; n: number }>() : undefined;
if (busy) {
  process.once('exit', () => {
    const rows = [...busy].map(([k, b]) => {
      const span = b.last - b.first;
      return `  ${k}: ${b.n} jobs, ${(b.first / 1000).toFixed(3)}..${(b.last / 1000).toFixed(3)} s, mean ${(b.sum / b.n).toFixed(2)} ms, capacity used ${(b.sum / (b.size * span)).toFixed(3)}`;
    });
    process.stderr.write(`sim servers:\n${rows.join('\n')}\n`);
  });
}

/** Records one job of a shared server (only with SWARMFORM_SIM_STATS): epoch ms of its modelled start and end. */
export function traceServer(name: string, size: number, start: number, end: number): void {
  if (!busy) return;
  const t0 = performance.timeOrigin;
  let b = busy.get(name);
  if (!b) busy.set(name, (b = { size, first: Infinity, last: 0, sum: 0, n: 0 }));
  b.first = Math.min(b.first, start - t0);
  b.last = Math.max(b.last, end - t0);
  b.sum += end - start;
  b.n++;
}

/** The world of the cluster whose state directory is `stateDir`, loaded once per process. */
export function openWorld(cluster: string, stateDir: string, settings: SimSettings): SimWorld {
  let w = worlds.get(cluster);
  if (!w) {
    w = new SimWorld(cluster, stateDir, settings);
    worlds.set(cluster, w);
  }
  return w;
}

/** The world of a cluster opened earlier in this process (the transport finds its host there). */
export function worldOf(cluster: string): SimWorld | undefined {
  return worlds.get(cluster);
}

export class SimWorld {
  readonly rng: Rng;
  readonly data: WorldFile;
  readonly path: string;
  /** The package mirror's capacity. */
  readonly mirror: Servers;
  private readonly loads = new Map<string, ManagerLoad>();
  private removed = false;
  /** Hosts down for this whole run (see runFault); not persisted: the next run reaches them. */
  private readonly downThisRun = new Set<string>();
  private workerJoins = 0;
  private open = 0;
  private keepAlive: NodeJS.Timeout | undefined;
  /** Cloud API token bucket. */
  private tokens: number;
  private tokensAt = Date.now();

  constructor(
    readonly cluster: string,
    stateDir: string,
    readonly settings: SimSettings,
  ) {
    this.path = join(stateDir, WORLD_FILE);
    this.rng = new Rng(settings.seed);
    this.data = load(this.path, cluster);
    this.mirror = new Servers(settings.engine.mirrorConcurrency);
    this.tokens = settings.api.burst;
    process.once('exit', () => this.save());
  }

  /** Waits a modelled latency (scaled). */
  wait(d: Latency | number, factor = 1): Promise<void> {
    return scaledSleep(typeof d === 'number' ? d * factor : this.rng.latency(d) * factor, this.settings.timeScale);
  }

  /** Real milliseconds for modelled ones. */
  real(ms: number): number {
    return ms * this.settings.timeScale;
  }

  host(name: string): SimHost | undefined {
    return this.data.hosts[name];
  }

  get hosts(): SimHost[] {
    return Object.values(this.data.hosts);
  }

  /** True the first time `host` meets fault `what` when it is among the fault's share; records it. */
  fault(host: SimHost, what: string, share: number): boolean {
    if (!meets(this.settings.seed, what, host.name, share) || host.faults.includes(what)) return false;
    host.faults.push(what);
    return true;
  }

  /**
   * True on every try in this process when `host` is among the fault's share and did not meet it in an earlier run
   * (a host down for one whole run: the tool's retries meet it too, the next run does not).
   */
  runFault(host: SimHost, what: string, share: number): boolean {
    if (this.downThisRun.has(`${what} ${host.name}`)) return true;
    if (!this.fault(host, what, share)) return false;
    this.downThisRun.add(`${what} ${host.name}`);
    return true;
  }

  /** Worker joins completed in this process; at `swarm.managerLossAfter` a manager's engine dies (see settings). */
  workerJoined(): void {
    const after = this.settings.swarm.managerLossAfter;
    if (!after || ++this.workerJoins !== after || !this.data.swarm) return;
    const c = this.data.swarm;
    const lost = Object.values(c.nodes)
      .filter((n) => n.role === 'manager' && !n.leader && n.state === 'ready' && this.data.hosts[n.host]?.running)
      .sort((a, b) => a.host.localeCompare(b.host))[0];
    if (!lost) return;
    this.data.hosts[lost.host]!.running = false;
    lost.state = 'down';
    lost.updatedAt = Date.now();
  }

  /** The engine of `host` runs again: its node, if it has one in the cluster, is Ready again. */
  engineStarted(host: SimHost): void {
    const c = this.data.swarm;
    const node = c && host.swarm.state === 'active' && host.swarm.clusterId === c.id && host.swarm.nodeId ? c.nodes[host.swarm.nodeId] : undefined;
    if (node && node.state === 'down') {
      node.state = 'ready';
      node.updatedAt = Date.now();
    }
  }

  /** Like `fault` for a host not created yet (the cloud's create failing). */
  absentFault(name: string, what: string, share: number): boolean {
    const met = (this.data.absentFaults[name] ??= []);
    if (!meets(this.settings.seed, what, name, share) || met.includes(what)) return false;
    met.push(what);
    return true;
  }

  /** Adds a machine (the cloud created it). */
  addHost(h: Omit<SimHost, 'address' | 'createdAt' | 'installed' | 'running' | 'files' | 'faults' | 'swarm'>): SimHost {
    const faults = this.data.absentFaults[h.name] ?? [];
    delete this.data.absentFaults[h.name];
    const host: SimHost = {
      ...h,
      address: this.nextAddress(),
      createdAt: Date.now(),
      installed: false,
      running: false,
      files: {},
      faults,
      swarm: { state: 'inactive' },
    };
    this.data.hosts[h.name] = host;
    return host;
  }

  removeHost(name: string): void {
    const h = this.data.hosts[name];
    if (!h) return;
    delete this.data.hosts[name];
    const c = this.data.swarm;
    if (c && h.swarm.nodeId && c.nodes[h.swarm.nodeId]) c.nodes[h.swarm.nodeId]!.state = 'down';
  }

  /** Takes one token of the cloud API's bucket, or says how long until one is there. */
  takeApiToken(): number {
    const now = Date.now();
    const rate = this.settings.api.callsPerSecond / this.real(1000);
    this.tokens = Math.min(this.settings.api.burst, this.tokens + (now - this.tokensAt) * rate);
    this.tokensAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return (1 - this.tokens) / rate;
  }

  get swarm(): SimCluster | undefined {
    return this.data.swarm;
  }

  set swarm(c: SimCluster | undefined) {
    this.data.swarm = c;
    this.loads.clear();
  }

  /** Load of a manager's certificate signing. */
  load(nodeId: string): ManagerLoad {
    let l = this.loads.get(nodeId);
    if (!l) this.loads.set(nodeId, (l = { signing: new Servers(this.settings.swarm.signConcurrency) }));
    return l;
  }

  /** Joins in flight per manager node id (for tests and the benchmark). */
  inflight(): Map<string, number> {
    return new Map([...this.loads].map(([id, l]) => [id, l.signing.inflight()]));
  }

  /**
   * Counts open simulated connections. While any is open a ref'd timer keeps the process alive, as real SSH sockets
   * do: without it, a run whose every task waits on an unref'd timer (a pacer's cool-down) would just exit.
   */
  connectionOpened(): void {
    if (this.open++ === 0) this.keepAlive = setInterval(() => undefined, 60_000);
  }

  connectionClosed(): void {
    if (--this.open === 0 && this.keepAlive) {
      clearInterval(this.keepAlive);
      this.keepAlive = undefined;
    }
  }

  /** Forgets the world (down): nothing is written at exit. */
  remove(): void {
    this.removed = true;
    rmSync(this.path, { force: true });
    worlds.delete(this.cluster);
  }

  /** Writes the world file (atomic, 0600); called at process exit. */
  save(): void {
    if (this.removed) return;
    try {
      const tmp = `${this.path}.tmp`;
      writeFileSync(tmp, JSON.stringify(this.data), { mode: 0o600 });
      renameSync(tmp, this.path);
    } catch {
      // The state directory is gone (down removed it) or unwritable: nothing to keep.
    }
  }

  private nextAddress(): string {
    const base = this.settings.addressBase.split('.').map(Number);
    const n = ((base[1]! << 16) | (base[2]! << 8) | base[3]!) + this.data.nextAddress++;
    return `127.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
}

function load(path: string, cluster: string): WorldFile {
  try {
    const data = JSON.parse(readFileSync(path, 'utf8')) as WorldFile;
    if (data.version === 1 && data.cluster === cluster) return { ...data, absentFaults: data.absentFaults ?? {} };
  } catch {
    // none yet (or unreadable: a fresh world)
  }
  return { version: 1, cluster, nextAddress: 0, hosts: {}, absentFaults: {} };
}

/** Whether the world has a fault planned for this host, without recording it (for plans and tests). */
export function plannedFault(settings: SimSettings, what: string, host: string, share: number): boolean {
  return meets(settings.seed, what, host, share);
}
