/** `network create|ls|rm` through the leader's Engine API (else any active manager). */
import { networkCreateBody, type NetworkCreateOptions, networkRows, type NetworkRow, type EngineNetwork } from '../swarm/network-ops.js';
import type { Context } from '../cluster/context.js';
import { SwarmformError } from '../base/errors.js';
import { withManager } from '../cluster/manager.js';
import { engineCall } from './service.js';

/** `network create`: returns the new network's id. */
export function networkCreate(ctx: Context, o: NetworkCreateOptions): Promise<string> {
  const body = networkCreateBody(o);
  return withManager(ctx, async (h) => {
    const net = (await engineCall(`network create ${o.name}`, () => h.engine.createNetwork(body as never))) as { id?: string; Id?: string };
    return net.id ?? net.Id ?? '';
  });
}

/** `network ls`: the networks a manager sees (swarm-scoped ones and the manager's local ones, as docker shows). */
export function networkLs(ctx: Context, filters?: Record<string, string[]>): Promise<NetworkRow[]> {
  return withManager(ctx, async (h) => {
    const nets = (await engineCall('network ls', () => h.engine.listNetworks(filters ? ({ filters: JSON.stringify(filters) } as object) : undefined))) as EngineNetwork[];
    return networkRows(nets);
  });
}

/** `network rm NETWORK...`: removes each; names the ones that failed (e.g. still used by a service). */
export function networkRm(ctx: Context, refs: string[]): Promise<string[]> {
  return withManager(ctx, async (h) => {
    const removed: string[] = [];
    const failed: string[] = [];
    for (const r of refs) {
      try {
        await engineCall(`network rm ${r}`, () => h.engine.getNetwork(r).remove(), 'list networks with `swarmform network ls`');
        removed.push(r);
      } catch (err) {
        failed.push((err as Error).message);
      }
    }
    if (failed.length) throw Object.assign(new SwarmformError(failed.join('\n')), { removed });
    return removed;
  });
}
