/** Human-readable output of command results (the `--json` path prints the same objects as JSON). */
import type { DownResult } from '../core/down.js';
import type { PlanResult } from '../core/plan.js';
import type { UpResult } from '../core/up.js';
import type { ClusterStatus } from '../swarm/status.js';
import { table } from './table.js';

/** Large clusters get a summary instead of thousands of rows; `--json` always has every node. */
const MAX_NODE_ROWS = 50;

export function formatStatus(s: ClusterStatus, opts: { all?: boolean } = {}): string {
  const r = s.raft;
  const out: string[] = [
    `Cluster ${s.cluster} (swarm ${s.swarmId.slice(0, 12)}, read from ${s.manager})`,
    `Raft: ${r.reachable} of ${r.managers} managers reachable, quorum ${r.quorum}, leader ${r.leader ?? 'none'}, tolerates ${r.tolerates} more loss(es)` +
      (r.reachable < r.managers ? ' (DEGRADED: see `swarmform raft status`)' : ''),
    '',
  ];
  const counts = new Map<string, number>();
  for (const n of s.nodes) counts.set(`${n.role} ${n.state}`, (counts.get(`${n.role} ${n.state}`) ?? 0) + 1);
  const large = !opts.all && s.nodes.length > MAX_NODE_ROWS;
  // Large clusters: counts first, then the managers and at most MAX_NODE_ROWS workers that are not Ready.
  const nodes = large
    ? [...s.nodes.filter((n) => n.role === 'manager'), ...s.nodes.filter((n) => n.role !== 'manager' && n.state !== 'Ready').slice(0, MAX_NODE_ROWS)]
    : s.nodes;
  if (large) {
    const availability = new Map<string, number>();
    for (const n of s.nodes) availability.set(n.availability, (availability.get(n.availability) ?? 0) + 1);
    out.push(`Nodes: ${s.nodes.length} (${[...counts].map(([k, v]) => `${v} ${k}`).join(', ')}; availability ${[...availability].map(([k, v]) => `${v} ${k}`).join(', ')})`, '');
  }
  out.push(
    table(
      ['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'MANAGER STATUS', 'ADDRESS', 'ENGINE VERSION'],
      nodes.map((n) => [n.id.slice(0, 12), n.name, n.state, n.availability, n.managerStatus, n.address, n.engineVersion]),
    ),
  );
  if (nodes.length < s.nodes.length) {
    const ready = s.nodes.filter((n) => n.role !== 'manager' && n.state === 'Ready').length;
    const otherHidden = s.nodes.length - nodes.length - ready;
    out.push(
      `... ${ready} Ready worker(s)${otherHidden > 0 ? ` and ${otherHidden} more not-Ready worker(s)` : ''} not shown (--all lists every node; --json has them all)`,
    );
  }
  out.push('');
  out.push(
    s.services.length
      ? table(['NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS'], s.services.map((v) => [v.name, v.mode, `${v.running}/${v.desired}`, v.image, v.ports]))
      : 'No services.',
  );
  return out.join('\n');
}

export function formatUp(r: UpResult, inventoryLabel: string, seconds: number): string {
  const out: string[] = [];
  if (r.changed === 0) out.push(`Nothing to change: cluster ${r.cluster} already matches ${inventoryLabel}.`);
  else {
    const c = r.changes;
    // With failures (exit 3) the cluster is not what the inventory says yet: the headline must not claim it is.
    const failedHosts = new Set(r.failures.map((f) => f.host)).size;
    const head = failedHosts
      ? `Cluster ${r.cluster} is partly up after ${seconds.toFixed(1)} s, ${failedHosts} host(s) failed (listed below; \`up\` again finishes them)`
      : `Cluster ${r.cluster} is up in ${seconds.toFixed(1)} s`;
    out.push(
      `${head} (created ${c.provision} machine(s), bootstrapped ${c.bootstrap}, ` +
        `loaded images on ${c.images}, ${c.swarm} swarm change(s), ${c.workloads} service change(s)).`,
    );
  }
  if (r.status) {
    const managers = r.status.nodes.filter((n) => n.role === 'manager');
    const ready = r.status.nodes.filter((n) => n.state === 'Ready').length;
    out.push(`${managers.length} manager(s) (leader ${managers.find((m) => m.managerStatus === 'Leader')?.name ?? '?'}), ${r.status.nodes.length - managers.length} worker(s), ${ready}/${r.status.nodes.length} Ready.`);
    for (const s of r.status.services) out.push(`  service ${s.name}: ${s.running}/${s.desired} running`);
  }
  if (r.endpoints.length) {
    out.push('', 'Reach the workload at:');
    for (const e of r.endpoints) out.push(`  ${e.service}: ${e.url}`);
    out.push(`  e.g. curl ${r.endpoints[0]!.url}`);
  }
  const leader = r.status?.nodes.find((n) => n.managerStatus === 'Leader')?.name;
  out.push('', 'Next:', '  bin/swarmform status', `  bin/swarmform ssh ${leader ?? '<manager>'} -- docker node ls`, '  bin/swarmform exec workers -- uptime', '  bin/swarmform down');
  return out.join('\n');
}

export function formatPlan(p: PlanResult): string {
  const out = [
    `Cluster ${p.cluster}: ${p.hosts.managers} manager(s), ${p.hosts.workers} worker(s)`,
    `Raft quorum: ${p.quorum.quorum} of ${p.quorum.managers}, tolerates ${p.quorum.tolerates} manager loss(es)`,
    ...(p.quorum.zones.length ? [`  managers per zone: ${p.quorum.zones.map((z) => `${z.zone} ${z.managers}`).join(', ')}`] : []),
    ...p.quorum.warnings.map((w) => `  warning: ${w}`),
    `Swarm settings (profile ${p.settings.profile}): ${settingsLine(p.settings)}`,
    ...p.providers.flatMap((x) => x.lines),
    ...p.reachability.lines.map((l) => `Reachability: ${l}`),
    `Joins: up to ${p.joins.concurrency} workers at once, at most ${p.joins.perManager} per manager`,
  ];
  if (p.firewall.length) out.push('Firewall (on every host):', ...p.firewall.map((f) => `  allow ${f.port}/${f.protocol} from ${f.from}: ${f.why}`));
  else out.push('Firewall: not managed (swarm.firewall: false)');
  for (const s of p.services) out.push(`Service ${s.name}: ${s.image}, ${s.mode === 'global' ? 'global' : `${s.replicas} replicas`}`);
  return out.join('\n');
}

/** The settings `up` applies; keys left to SwarmKit's defaults are not listed. */
function settingsLine(s: PlanResult['settings']): string {
  const parts = [`autolock ${s.autolock ? 'on' : 'off'}`, `managers ${s.drainManagers ? 'drained' : 'take tasks'}`];
  if (s.snapshotInterval !== undefined) parts.push(`snapshot every ${s.snapshotInterval} entries`);
  if (s.keepOldSnapshots !== undefined) parts.push(`keep ${s.keepOldSnapshots} old snapshot(s)`);
  if (s.logEntriesForSlowFollowers !== undefined) parts.push(`${s.logEntriesForSlowFollowers} log entries for slow followers`);
  if (s.electionTick !== undefined) parts.push(`election tick ${s.electionTick}`);
  if (s.heartbeatTick !== undefined) parts.push(`heartbeat tick ${s.heartbeatTick}`);
  if (s.heartbeatPeriod !== undefined) parts.push(`dispatcher heartbeat ${s.heartbeatPeriod} s`);
  if (s.certExpiryHours !== undefined) parts.push(`node certificates ${s.certExpiryHours} h`);
  if (s.taskHistoryLimit !== undefined) parts.push(`task history ${s.taskHistoryLimit}`);
  return parts.join(', ');
}

export function formatDown(r: DownResult): string {
  return `Cluster ${r.cluster} is gone: ${r.destroyed.length} machine(s) destroyed${r.released.length ? `, ${r.released.length} released (left the swarm)` : ''}, state removed.`;
}
