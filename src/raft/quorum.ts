/** Raft quorum arithmetic for the manager group, as operators read it: sizes, tolerance, and zone spread. */

export interface QuorumPlan {
  managers: number;
  /** Managers that must agree: floor(N/2)+1. */
  quorum: number;
  /** Managers that may be lost while the swarm still takes changes: floor((N-1)/2). */
  tolerates: number;
  warnings: string[];
  /** Managers per zone, largest first (empty when no manager has a zone). */
  zones: { zone: string; managers: number }[];
}

/** Quorum of N managers: floor(N/2)+1. */
export function quorumOf(managers: number): number {
  return Math.floor(managers / 2) + 1;
}

/** Managers that may be lost: floor((N-1)/2). */
export function toleranceOf(managers: number): number {
  return Math.max(0, Math.floor((managers - 1) / 2));
}

/** A manager as planning sees it: its name and zone (from a label or the provider's region), if known. */
export interface PlannedManager {
  name: string;
  zone?: string;
}

/** Sizes the quorum for N managers and warns about counts that buy nothing or cost too much, and about zone spread. */
export function planQuorum(managers: number | PlannedManager[]): QuorumPlan {
  const list = typeof managers === 'number' ? undefined : managers;
  const n = list ? list.length : (managers as number);
  const quorum = quorumOf(n);
  const tolerates = toleranceOf(n);
  const warnings: string[] = [];
  if (n > 0 && n % 2 === 0) {
    warnings.push(`${n} managers tolerate no more losses than ${n - 1}: use an odd count`);
  }
  if (n > 7) warnings.push(`${n} managers: more than 7 slows every Raft write; 3, 5 or 7 is recommended`);
  if (n === 1) warnings.push('1 manager: losing it loses the swarm\'s control plane; use 3 for a cluster you keep');
  const zones = list ? zoneCounts(list) : [];
  if (list && n > 1) warnings.push(...zoneWarnings(list, zones));
  return { managers: n, quorum, tolerates, warnings, zones };
}

function zoneCounts(list: PlannedManager[]): { zone: string; managers: number }[] {
  const counts = new Map<string, number>();
  for (const m of list) if (m.zone) counts.set(m.zone, (counts.get(m.zone) ?? 0) + 1);
  return [...counts].map(([zone, managers]) => ({ zone, managers })).sort((a, b) => b.managers - a.managers || a.zone.localeCompare(b.zone));
}

/**
 * Warns when losing one zone (the one with the most managers) leaves fewer than a quorum, and says which spread
 * would survive it. Managers without a zone are counted as a zone of their own each (unknown placement).
 */
function zoneWarnings(list: PlannedManager[], zones: { zone: string; managers: number }[]): string[] {
  if (zones.length === 0) return [];
  const n = list.length;
  const unzoned = list.filter((m) => !m.zone).map((m) => m.name);
  const out: string[] = [];
  if (unzoned.length > 0) out.push(`manager(s) without a zone (label zone or provider region): ${unzoned.join(', ')}`);
  const biggest = zones[0]!;
  if (n - biggest.managers < quorumOf(n)) {
    const spread = zones.map((z) => `${z.zone}: ${z.managers}`).join(', ');
    const best = bestSpread(n, Math.max(3, zones.length));
    out.push(
      `losing zone ${biggest.zone} (${biggest.managers} of ${n} managers) loses the quorum (${spread}); ` +
        (best ? `spread ${n} managers over ${best.split('-').length} zones as ${best}` : `use 3 or more zones`),
    );
  }
  return out;
}

/** The spread of N managers over Z zones that survives any one zone's loss, as "2-2-1"; undefined if none does. */
export function bestSpread(n: number, zones = 3): string | undefined {
  const z = Math.min(zones, n);
  const parts = Array.from({ length: z }, (_, i) => Math.floor(n / z) + (i < n % z ? 1 : 0));
  return n - parts[0]! >= quorumOf(n) ? parts.join('-') : undefined;
}

/** Where a manager runs: `labels.zone` (or `topology.zone`), else the provider's `zone`, `region` or `availabilityZone` option. */
export function zoneOf(host: { labels: Record<string, string>; options?: Record<string, unknown> }): string | undefined {
  const l = host.labels;
  const o = host.options ?? {};
  const v = l.zone ?? l['topology.zone'] ?? o.availabilityZone ?? o.zone ?? o.region;
  return typeof v === 'string' && v ? v : undefined;
}

/** What the group tolerates right now: reachable managers beyond the quorum (0 when degraded to the quorum, negative when lost). */
export function marginNow(managers: number, reachable: number): number {
  return reachable - quorumOf(managers);
}
