/**
 * The `sim` provider: a simulated cloud for rehearsing thousands of hosts on one machine. Machines are created through
 * a modelled cloud API (batch size, a token-bucket rate limit answered with HTTP 429, call latency, boot time, a share
 * of "no capacity" failures) and reached through the simulated transport (./remote.ts), which the provider's `connect`
 * hands to Sessions for every machine of this provider. Everything else in a run is the real code. The world (machines, engines,
 * the swarm) persists in the cluster's state directory between runs.
 */
import { SwarmformError } from '../../base/errors.js';
import type { HostSpec } from '../../inventory/types.js';
import { connectSim } from './remote.js';
import { sleep } from '../../run/retry.js';
import type { BatchResult, Provider, ProviderContext } from '../provider.js';
import type { Machine } from '../../base/machine.js';
import { meanOf } from './model.js';
import { simOptionsSchema, simSettings, simSettingsSchema, type SimSettings } from './settings.js';
import { openWorld, type SimHost, type SimWorld } from './world.js';

/** The world of the context's cluster (loaded from its state directory on first use). */
export function simWorld(ctx: ProviderContext): SimWorld {
  return openWorld(ctx.inventory.cluster, ctx.stateDir, simSettings(ctx.inventory));
}

function machineOf(cluster: string, h: SimHost, spec?: HostSpec): Machine {
  return {
    name: h.name,
    role: spec?.role ?? h.role,
    group: spec?.group ?? h.group,
    provider: 'sim',
    providerId: `${cluster}/${h.name}`,
    privateAddress: h.address,
    ssh: { host: h.address, port: spec?.ssh.port ?? 22, user: spec?.ssh.user ?? 'root' },
    labels: spec?.labels ?? h.labels,
    init: 'detect',
  };
}

/** One cloud API call: waits for the client's pacing and the server's bucket (429 and retry), then the call's latency. */
async function apiCall(world: SimWorld, signal?: AbortSignal): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const wait = world.takeApiToken();
    if (wait === 0) break;
    // HTTP 429 with Retry-After: the client waits as told.
    if (attempt > 1000) throw new SwarmformError('sim cloud API: rate limit exceeded (429) on every retry');
    await sleep(Math.max(1, wait), signal);
  }
  await world.wait(world.settings.api.callTime);
}

/** Runs `fn` on every batch with at most `n` in flight. */
async function inBatches<T>(items: T[], size: number, n: number, fn: (batch: T[]) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const batch = items.slice(next, (next += size));
      await fn(batch);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, Math.ceil(items.length / size)) }, worker));
}

/**
 * The earliest the k-th machine (1-based, in create order) can have booted, in modelled ms: its create call goes out
 * once the bucket's rate and the call concurrency allow (calls before it in flight or done), then the call's latency
 * and one boot.
 */
export function machineArrivalMs(s: SimSettings, k: number): number {
  const call = Math.ceil(k / s.api.batchSize);
  const byRate = Math.max(0, call - s.api.burst) * (1000 / s.api.callsPerSecond);
  const byConcurrency = ((call - 1) * meanOf(s.api.callTime)) / s.api.concurrency;
  return Math.max(byRate, byConcurrency) + meanOf(s.api.callTime) + meanOf(s.api.bootTime);
}

/** The model's lower bound of `create` for n machines (real ms): until the last one has booted. */
export function provisionLowerBoundMs(s: SimSettings, n: number): number {
  return n === 0 ? 0 : machineArrivalMs(s, n) * s.timeScale;
}

export const simProvider: Provider = {
  connect: connectSim,
  name: 'sim',
  schemas: { settings: simSettingsSchema, options: simOptionsSchema },

  info() {
    return { name: 'sim', batchSize: 10, concurrency: 4, userData: false, defaultInstall: 'packages', ownsMachines: true, needsRoot: false, ingressMesh: true };
  },

  validate() {},

  async preflight() {},

  plan(hosts: HostSpec[], ctx: ProviderContext) {
    const s = simSettings(ctx.inventory);
    const calls = Math.ceil(hosts.length / s.api.batchSize);
    return [
      `sim: ${hosts.length} simulated host(s) from a ${s.api.like}-like API: ${calls} create call(s) of up to ${s.api.batchSize}, ` +
        `${s.api.callsPerSecond}/s, ${s.api.concurrency} at once; time scale ${s.timeScale}, seed ${s.seed}`,
    ];
  },

  async artifacts() {
    return {};
  },

  async network(ctx: ProviderContext) {
    simWorld(ctx);
  },

  async create(hosts: HostSpec[], ctx: ProviderContext, ready?: (machine: Machine) => void): Promise<BatchResult> {
    const world = simWorld(ctx);
    const s = world.settings;
    const result: BatchResult = { done: [], failed: [] };
    const boots: Promise<void>[] = [];
    await inBatches(hosts, s.api.batchSize, s.api.concurrency, async (batch) => {
      for (const h of batch) ctx.events.emit({ type: 'step', phase: 'provision', host: h.name, step: 'create host', status: 'start' });
      const t0 = Date.now();
      try {
        await apiCall(world, ctx.signal);
      } catch (err) {
        for (const h of batch) {
          result.failed.push({ name: h.name, error: err as Error });
          ctx.events.emit({ type: 'step', phase: 'provision', host: h.name, step: 'create host', status: 'fail', message: (err as Error).message, ms: Date.now() - t0 });
        }
        return;
      }
      // The call answers at once; machines boot in the background, waited for outside the API's concurrency.
      const made: { spec: HostSpec; host: SimHost; boot: number }[] = [];
      for (const h of batch) {
        if (world.absentFault(h.name, 'create', s.api.failShare)) {
          const error = new SwarmformError(`${h.name}: create host: 422 Unprocessable Entity: no capacity for this size in the region right now`);
          result.failed.push({ name: h.name, error });
          ctx.events.emit({ type: 'step', phase: 'provision', host: h.name, step: 'create host', status: 'fail', message: error.message, ms: Date.now() - t0 });
          continue;
        }
        const host = world.addHost({ name: h.name, role: h.role, group: h.group, labels: h.labels });
        made.push({ spec: h, host, boot: world.rng.latency(s.api.bootTime) });
      }
      boots.push(
        ...made.map(async (x) => {
          await world.wait(x.boot);
          const machine = machineOf(ctx.inventory.cluster, x.host, x.spec);
          result.done.push(machine);
          ctx.events.emit({ type: 'step', phase: 'provision', host: x.spec.name, step: 'create host', status: 'ok', message: `created at ${x.host.address}`, ms: Date.now() - t0 });
          ready?.(machine);
        }),
      );
    });
    await Promise.all(boots);
    return result;
  },

  async list(ctx: ProviderContext): Promise<Machine[]> {
    const world = simWorld(ctx);
    const specs = new Map(ctx.inventory.hosts.filter((h) => h.provider === 'sim').map((h) => [h.name, h]));
    return world.hosts.map((h) => machineOf(ctx.inventory.cluster, h, specs.get(h.name)));
  },

  async destroy(machines: Machine[], ctx: ProviderContext): Promise<BatchResult<string>> {
    const world = simWorld(ctx);
    const s = world.settings;
    const done: string[] = [];
    await inBatches(machines, s.api.batchSize, s.api.concurrency, async (batch) => {
      await apiCall(world, ctx.signal);
      for (const m of batch) {
        world.removeHost(m.name);
        done.push(m.name);
        ctx.events.emit({ type: 'step', phase: 'teardown', host: m.name, step: 'destroy host', status: 'ok' });
      }
    });
    return { done, failed: [] };
  },

  async teardown(ctx: ProviderContext) {
    simWorld(ctx).remove();
  },
};
