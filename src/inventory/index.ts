/** The inventory module: load an inventory file into the resolved model every later phase reads. */
export { loadInventory, parseInventory, type LoadOptions } from './load-inventory.js';
export type { ProviderRegistry, ProviderSchemas } from './provider-registry.js';
export type * from './types.js';
