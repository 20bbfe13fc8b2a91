/** `status`: nodes and services read from the leader (else any manager that answers; bounded timeouts, in parallel). */
import { readStatus, type ClusterStatus } from '../swarm/status.js';
import type { Context } from '../cluster/context.js';
import { withManager } from '../cluster/manager.js';

/** Reads status through the leader's engine, or another active manager's when the leader does not answer. */
export function status(ctx: Context): Promise<ClusterStatus> {
  return withManager(ctx, (h) => readStatus(h.engine, ctx.inventory.cluster, h.machine.name));
}
