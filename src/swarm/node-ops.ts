/** `node` verbs as the docker CLI has them: finding a node by name, rows of `node ls`, spec changes. Pure. */
import { UsageError } from '../base/errors.js';
import { HOST_LABEL } from './node-settings.js';

export interface EngineNode {
  ID: string;
  Version: { Index: number };
  CreatedAt?: string;
  Spec: { Name?: string; Labels?: Record<string, string>; Role?: string; Availability?: string };
  Description?: { Hostname?: string; Engine?: { EngineVersion?: string } };
  Status?: { State?: string; Addr?: string; Message?: string };
  ManagerStatus?: { Leader?: boolean; Reachability?: string; Addr?: string };
}

/**
 * The node a user means: its ID, its inventory name (the `swarmform.host` label), its hostname, or an ID prefix.
 * Throws UsageError when nothing or more than one node matches.
 */
export function findNode(nodes: EngineNode[], ref: string): EngineNode {
  const exact = nodes.filter((n) => n.ID === ref || n.Spec.Labels?.[HOST_LABEL] === ref);
  if (exact.length === 1) return exact[0]!;
  const byHost = nodes.filter((n) => n.Description?.Hostname === ref);
  if (byHost.length === 1) return byHost[0]!;
  const byPrefix = nodes.filter((n) => n.ID.startsWith(ref));
  if (byPrefix.length === 1 && ref.length >= 1) return byPrefix[0]!;
  const n = exact.length || byHost.length || byPrefix.length;
  if (n > 1) throw new UsageError(`node ${ref} is ambiguous (${n} nodes match); use its ID`);
  throw new UsageError(`no such node: ${ref}`, { hint: 'list nodes with `swarmform node ls`' });
}

/** The name shown for a node: the inventory name, else the hostname. */
export function nodeName(n: EngineNode): string {
  return n.Spec.Labels?.[HOST_LABEL] ?? n.Description?.Hostname ?? n.ID;
}

const cap = (s: string) => (s ? s[0]!.toUpperCase() + s.slice(1) : s);

/** A row of `node ls`. */
export interface NodeRow {
  id: string;
  hostname: string;
  status: string;
  availability: string;
  managerStatus: string;
  engineVersion: string;
}

/** `docker node ls` columns, sorted by hostname as the docker CLI sorts them. */
export function nodeRows(nodes: EngineNode[]): NodeRow[] {
  return nodes
    .map((n) => ({
      id: n.ID,
      hostname: n.Description?.Hostname ?? '',
      status: cap(n.Status?.State ?? ''),
      availability: cap(n.Spec.Availability ?? ''),
      managerStatus: n.ManagerStatus ? (n.ManagerStatus.Leader ? 'Leader' : cap(n.ManagerStatus.Reachability ?? '')) : '',
      engineVersion: n.Description?.Engine?.EngineVersion ?? '',
    }))
    .sort((a, b) => a.hostname.localeCompare(b.hostname, undefined, { numeric: true }) || a.id.localeCompare(b.id));
}

/** `node update` options. */
export interface NodeUpdateOptions {
  availability?: string;
  labelAdd: string[];
  labelRm: string[];
  role?: string;
}

/** The node spec after `node update`/`promote`/`demote` (never mutates `spec`). Refuses to remove swarmform's own label. */
export function nodeUpdateSpec(spec: EngineNode['Spec'], o: NodeUpdateOptions): EngineNode['Spec'] {
  const out = { ...spec, Labels: { ...(spec.Labels ?? {}) } };
  if (o.availability !== undefined) {
    if (!['active', 'pause', 'drain'].includes(o.availability)) throw new UsageError(`--availability: invalid "${o.availability}" (expected active, pause or drain)`);
    out.Availability = o.availability;
  }
  if (o.role !== undefined) {
    if (!['worker', 'manager'].includes(o.role)) throw new UsageError(`--role: invalid "${o.role}" (expected worker or manager)`);
    out.Role = o.role;
  }
  for (const k of o.labelRm) {
    if (k === HOST_LABEL) throw new UsageError(`--label-rm: ${HOST_LABEL} ties the node to its inventory host; swarmform keeps it`);
    if (!(k in out.Labels)) throw new UsageError(`--label-rm: key ${k} does not exist in the node's labels`);
    delete out.Labels[k];
  }
  for (const item of o.labelAdd) {
    const i = item.indexOf('=');
    const k = i < 0 ? item : item.slice(0, i);
    if (!k) throw new UsageError(`--label-add: invalid "${item}" (expected KEY=value)`);
    out.Labels[k] = i < 0 ? '' : item.slice(i + 1);
  }
  return out;
}
