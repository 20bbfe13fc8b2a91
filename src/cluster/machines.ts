/**
 * The cluster's members as every command sees them: what the providers discover, completed by local state (for
 * providers that cannot list), with the roles in force after `raft replace` or `raft recover`.
 */
import type { Machine, Role } from '../base/machine.js';
import type { Context } from './context.js';
import { effectiveRoles } from './roles.js';

/**
 * The one way to find the cluster's machines: each with the role in force (the inventory's, with the moves made by
 * `raft replace`/`recover` applied; provider tags and state records may still say the old role), in inventory order
 * (machines the inventory no longer names last).
 */
export async function resolveMembers(ctx: Context): Promise<Machine[]> {
  const roles = await rolesInForce(ctx);
  const order = new Map(ctx.inventory.hosts.map((h, i) => [h.name, i]));
  return (await knownMachines(ctx))
    .map((m) => ({ ...m, role: roles.get(m.name) ?? m.role }))
    .sort((a, b) => (order.get(a.name) ?? 1e9) - (order.get(b.name) ?? 1e9));
}

/** Each inventory host's role in force: the inventory's, with the moves of `raft replace`/`recover` applied. */
export function rolesInForce(ctx: Context): Promise<Map<string, Role>> {
  return effectiveRoles(ctx.state, ctx.inventory.hosts);
}

/** Providers' own discovery first (so teardown works without local state), then state for anything not found. */
async function knownMachines(ctx: Context): Promise<Machine[]> {
  const byName = new Map<string, Machine>();
  for (const m of (await ctx.state.read()).machines) byName.set(m.name, m);
  for (const { provider } of ctx.providers) {
    for (const m of await provider.list(ctx.providerContext)) byName.set(m.name, m);
  }
  return [...byName.values()];
}

/**
 * Picks hosts by a selector: `all`, a role in force (`managers`, `workers`; before a group of that name), a group
 * name, or host names (comma-separated).
 */
export function selectMachines(machines: Machine[], selector: string): Machine[] {
  const out = new Map<string, Machine>();
  for (const part of selector.split(',').map((s) => s.trim()).filter(Boolean)) {
    // `managers` and `workers` are the roles in force, even where a group has that name (the default inventory's
    // groups do): after `raft replace` the group `managers` still holds the demoted host.
    const byRole = part === 'managers' ? 'manager' : part === 'workers' ? 'worker' : undefined;
    const hit = machines.filter((m) =>
      part === 'all' || (byRole ? m.role === byRole : m.group === part || m.name === part),
    );
    for (const m of hit) out.set(m.name, m);
  }
  return [...out.values()];
}
