/**
 * Helpers for tests that make lab hosts: a throwaway cluster context, and a cleanup that removes everything the
 * cluster made (processes, namespaces, veths, bridge, iptables rules, files) even after a failed assertion.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventBus, type SwarmformEvent } from '../../src/base/events.js';
import type { HostSpec, Inventory } from '../../src/inventory/types.js';
import { labProvider } from '../../src/providers/lab/index.js';
import type { ProviderContext } from '../../src/providers/provider.js';

/** A provider context for a fresh lab cluster `<prefix>-<4 hex>`, with the events it emitted. */
export interface LabTestContext extends ProviderContext {
  seen: SwarmformEvent[];
}

const made: LabTestContext[] = [];

/** Makes a context for a new, uniquely named lab cluster on `subnet`; remembered for {@link cleanupLabClusters}. */
export function labTestContext(subnet: string, prefix = 't-lab'): LabTestContext {
  const cluster = `${prefix}-${randomBytes(2).toString('hex')}`;
  const inventory: Inventory = {
    file: path.join(os.tmpdir(), `${cluster}.yml`),
    cluster,
    providers: { lab: { subnet } },
    // Every required setting, as the loader's defaults give them (the type is not checked when tests run under tsx).
    swarm: {
      advertise: { kind: 'private' },
      joinConcurrency: 10,
      bootstrapConcurrency: 32,
      joinPacing: 'adaptive',
      install: 'auto',
      firewall: true,
      drainManagers: false,
      ingress: true,
      daemon: {},
      autolock: false,
      profile: 'default',
    },
    hosts: [],
    services: [],
    stacks: [],
    images: [],
  };
  const events = new EventBus();
  const seen: SwarmformEvent[] = [];
  events.on((e) => seen.push(e));
  const ctx: LabTestContext = { inventory, stateDir: mkdtempSync(path.join(os.tmpdir(), `${cluster}-state-`)), events, seen };
  made.push(ctx);
  return ctx;
}

/** A lab host spec as the inventory loader would resolve it. */
export function labHost(name: string, role: 'manager' | 'worker' = 'worker'): HostSpec {
  return {
    name,
    group: role === 'manager' ? 'managers' : 'workers',
    provider: 'lab',
    role,
    labels: { 'test.role': role },
    ssh: { user: 'root', port: 22, connectTimeout: 30 },
    options: {},
  };
}

/** Force-tears down every cluster made by {@link labTestContext} and removes its state directory; never throws. */
export async function cleanupLabClusters(): Promise<void> {
  for (const ctx of made.splice(0)) {
    try {
      await labProvider.teardown(ctx, { force: true });
    } catch (e) {
      console.error(`cleanup of lab cluster ${ctx.inventory.cluster} failed: ${(e as Error).message}`);
    }
    rmSync(ctx.stateDir, { recursive: true, force: true });
  }
}
