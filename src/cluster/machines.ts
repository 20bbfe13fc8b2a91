/** The cluster's machines: what the providers discover, completed by local state (for providers that cannot list). */
import type { Machine } from '../base/machine.js';
import type { Context } from './context.js';

/** Providers' own discovery first (so teardown works without local state), then state for anything not found. */
export async function knownMachines(ctx: Context): Promise<Machine[]> {
  const byName = new Map<string, Machine>();
  for (const m of (await ctx.state.read()).machines) byName.set(m.name, m);
  for (const { provider } of ctx.providers) {
    for (const m of await provider.list(ctx.providerContext)) byName.set(m.name, m);
  }
  return [...byName.values()];
}

/** Picks hosts by a selector: `all`, a role (`managers`, `workers`), a group name, or host names (comma-separated). */
export function selectMachines(machines: Machine[], selector: string): Machine[] {
  const out = new Map<string, Machine>();
  for (const part of selector.split(',').map((s) => s.trim()).filter(Boolean)) {
    const hit = machines.filter((m) =>
      part === 'all' ||
      (part === 'managers' && m.role === 'manager') ||
      (part === 'workers' && m.role === 'worker') ||
      m.group === part ||
      m.name === part,
    );
    for (const m of hit) out.set(m.name, m);
  }
  return [...out.values()];
}
