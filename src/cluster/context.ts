/** What every command shares: the loaded inventory, its providers, the cluster state and the event bus. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadInventory } from '../inventory/index.js';
import type { HostSpec, Inventory } from '../inventory/types.js';
import type { Provider, ProviderContext } from '../providers/provider.js';
import { providerFor, providers } from '../providers/registry.js';
import { readRaftFile } from './roles.js';
import { type ClusterState, openState } from '../state/store.js';
import { UsageError } from '../base/errors.js';
import type { EventBus } from '../base/events.js';

/** The inventory used when none is given: `inventories/lab.yml` of the working directory, else the one shipped. */
export function defaultInventoryPath(): string {
  const local = resolve('inventories/lab.yml');
  if (existsSync(local)) return local;
  return fileURLToPath(new URL('../../inventories/lab.yml', import.meta.url));
}

export interface Context {
  inventory: Inventory;
  state: ClusterState;
  events: EventBus;
  /** Providers the inventory uses, each with its hosts. */
  providers: { provider: Provider; hosts: HostSpec[] }[];
  providerContext: ProviderContext;
  signal?: AbortSignal;
}

/** Loads and fully validates the inventory (nothing is touched before this succeeds), then opens the state. */
export async function openContext(file: string | undefined, events: EventBus, signal?: AbortSignal): Promise<Context> {
  const path = file ? resolve(file) : defaultInventoryPath();
  if (!existsSync(path)) throw new UsageError(`inventory file not found: ${path}`, { hint: 'pass one with -i FILE' });
  const inventory = await loadInventory(path, { providers });
  const byProvider = new Map<string, HostSpec[]>();
  for (const h of inventory.hosts) {
    const list = byProvider.get(h.provider);
    if (list) list.push(h);
    else byProvider.set(h.provider, [h]);
  }
  const state = await openState(inventory.cluster);
  await state.check();
  await readRaftFile(state);
  const providerContext: ProviderContext = { inventory, stateDir: state.dir, events, signal };
  const used = [...byProvider.entries()].map(([name, hosts]) => ({ provider: providerFor(name), hosts }));
  for (const { provider, hosts } of used) provider.validate(hosts, providerContext);
  return { inventory, state, events, providers: used, providerContext, signal };
}
