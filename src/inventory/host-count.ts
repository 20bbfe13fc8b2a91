/**
 * How many hosts the groups make, by arithmetic on what is written (a count, a range's bounds, a list's length),
 * and the limits checked on that count BEFORE any host is expanded: the most hosts one inventory may have, and on
 * the lab provider the addresses its subnet holds. A typo like `worker-[1:99999]` on a /24 is then an error at its
 * line at once, not minutes of expanding, validating and planning 100,000 hosts that can never be created.
 */
import { DEFAULT_PROVIDER } from './expand-hosts.js';
import { MAX_RANGE_SIZE, NameRangeError, hasRange, parseNameRange, rangeSize } from './name-range.js';
import type { DocPath, ProblemList } from './problems.js';
import type { ProviderRegistry } from './provider-registry.js';
import { MAX_HOSTS_CEILING, type GroupEntry, type InventoryFile } from './schema.js';


/** One group's host count as written, with the key that gives it. */
export interface GroupCount {
  group: string;
  provider: string;
  hosts: number;
  /** The key the count comes from: `name` (a range or a prefix with count), `count` or `hosts`. */
  path: DocPath;
  /** How the group gives its hosts, for messages: `worker-[1:99999]`, `count: 5`, `3 listed hosts`. */
  said: string;
}

/** The provider a group's hosts come from. */
export function groupProvider(inventory: InventoryFile, groupName: string): string {
  return inventory.groups[groupName].provider ?? inventory.provider ?? DEFAULT_PROVIDER;
}

/** Known providers the groups use, in order of first use (the order expandHosts reports them in). */
export function providersUsed(inventory: InventoryFile, groupOrder: string[], registry: ProviderRegistry): string[] {
  const used = new Set<string>();
  for (const g of groupOrder) {
    const p = groupProvider(inventory, g);
    if (registry[p] !== undefined) used.add(p);
  }
  return [...used];
}

/**
 * Hosts of one group without making a name; undefined when the group is malformed (no count, a bad range, count
 * with hosts...) or over MAX_RANGE_SIZE by itself: expansion reports those at their keys.
 */
function groupSize(group: GroupEntry): { hosts: number; key: 'name' | 'count' | 'hosts'; said: string } | undefined {
  if (group.hosts !== undefined) {
    if (group.count !== undefined || group.name !== undefined) return undefined;
    return { hosts: group.hosts.length, key: 'hosts', said: `${group.hosts.length} listed host(s)` };
  }
  if (group.name !== undefined && hasRange(group.name)) {
    try {
      const range = parseNameRange(group.name);
      return range && group.count === undefined ? { hosts: rangeSize(range), key: 'name', said: group.name } : undefined;
    } catch (err) {
      if (err instanceof NameRangeError) return undefined;
      throw err;
    }
  }
  if (group.count !== undefined && group.count <= MAX_RANGE_SIZE) return { hosts: group.count, key: 'count', said: `count: ${group.count}` };
  return undefined;
}

/** Every well-formed group's count, in file order. */
export function countHosts(inventory: InventoryFile, groupOrder: string[]): GroupCount[] {
  const out: GroupCount[] = [];
  for (const g of groupOrder) {
    const size = groupSize(inventory.groups[g]);
    if (size === undefined) continue;
    out.push({ group: g, provider: groupProvider(inventory, g), hosts: size.hosts, path: ['groups', g, size.key], said: size.said });
  }
  return out;
}

export interface LimitsInput {
  inventory: InventoryFile;
  groupOrder: string[];
  /** Validated provider settings by provider name (a provider whose settings failed has none: its limits are skipped). */
  providerSettings: Record<string, Record<string, unknown>>;
  registry: ProviderRegistry;
  problems: ProblemList;
}

/**
 * Checks the host counts against MAX_HOSTS and each provider's own limit (the lab subnet), at the key of the largest group concerned.
 * Returns true when a limit is exceeded (problems recorded): the caller stops before expanding.
 */
export function checkHostLimits(input: LimitsInput): boolean {
  const { inventory, groupOrder, providerSettings, registry, problems } = input;
  const counts = countHosts(inventory, groupOrder);
  let exceeded = false;

  const total = counts.reduce((n, c) => n + c.hosts, 0);
  const max = inventory.swarm.maxHosts;
  if (total > max) {
    const top = largest(counts);
    problems.add(
      top.path,
      `${top.said} makes ${top.hosts} hosts, ${total} with the other groups (${breakdown(counts)}): more than the ${max} ` +
        `one inventory may have (swarm.maxHosts); ${max < MAX_HOSTS_CEILING ? `raise swarm.maxHosts (up to ${MAX_HOSTS_CEILING}) or ` : ''}split the cluster into several inventories`,
    );
    exceeded = true;
  }

  // Limits of the providers themselves (the lab's subnet), at the largest group of that provider.
  for (const provider of new Set(counts.map((c) => c.provider))) {
    const check = registry[provider]?.hostLimit;
    const settings = providerSettings[provider];
    if (!check || !settings) continue;
    const mine = counts.filter((c) => c.provider === provider);
    const hosts = mine.reduce((n, c) => n + c.hosts, 0);
    const section = inventory.providers?.[provider];
    const given = (key: string) => typeof section === 'object' && section !== null && Object.hasOwn(section, key);
    const why = check(hosts, settings, given);
    if (why === undefined) continue;
    const top = largest(mine);
    const others = hosts === top.hosts ? '' : `, ${hosts} with the other ${provider} groups (${breakdown(mine)})`;
    problems.add(top.path, `${top.said} makes ${top.hosts} ${provider} hosts${others}, but ${why}`);
    exceeded = true;
  }
  return exceeded;
}

function largest(counts: GroupCount[]): GroupCount {
  return counts.reduce((a, b) => (b.hosts > a.hosts ? b : a));
}

/** `workers 99999, managers 1` (the five largest groups). */
function breakdown(counts: GroupCount[]): string {
  const sorted = [...counts].sort((a, b) => b.hosts - a.hosts);
  const shown = sorted.slice(0, 5).map((c) => `${c.group} ${c.hosts}`);
  return sorted.length > 5 ? `${shown.join(', ')}, ${sorted.length - 5} more group(s)` : shown.join(', ');
}
