/** Cluster status read from a manager's engine (as `docker node ls` and `docker service ls` show it). */
import type Docker from 'dockerode';
import { HOST_LABEL } from './node-settings.js';

export interface NodeStatus {
  name: string;
  hostname: string;
  id: string;
  role: string;
  state: string;
  availability: string;
  managerStatus: string;
  address: string;
  engineVersion: string;
}

export interface ServiceStatus {
  name: string;
  mode: string;
  running: number;
  desired: number;
  image: string;
  ports: string;
}

export interface ClusterStatus {
  cluster: string;
  swarmId: string;
  manager: string;
  nodes: NodeStatus[];
  services: ServiceStatus[];
  /** The Raft group in brief (`raft status` has the detail). */
  raft: { managers: number; reachable: number; quorum: number; tolerates: number; leader?: string };
}

/** Quorum summary from the node list: managers, reachable ones, quorum floor(N/2)+1, and losses still tolerated now. */
export function raftSummary(nodes: NodeStatus[]): ClusterStatus['raft'] {
  const managers = nodes.filter((n) => n.managerStatus);
  const reachable = managers.filter((n) => n.managerStatus === 'Leader' || n.managerStatus === 'Reachable').length;
  const quorum = Math.floor(managers.length / 2) + 1;
  return { managers: managers.length, reachable, quorum, tolerates: Math.max(0, reachable - quorum), leader: managers.find((n) => n.managerStatus === 'Leader')?.name };
}

/** Three Engine API calls whatever the cluster size: nodes, services, running tasks. */
export async function readStatus(engine: Docker, cluster: string, managerName: string): Promise<ClusterStatus> {
  const [swarm, nodes, services, tasks] = await Promise.all([
    engine.swarmInspect() as Promise<{ ID: string }>,
    engine.listNodes() as Promise<RawNode[]>,
    engine.listServices() as Promise<RawService[]>,
    engine.listTasks({ filters: JSON.stringify({ 'desired-state': ['running'] }) } as object) as Promise<RawTask[]>,
  ]);
  const running = new Map<string, number>();
  const desiredGlobal = new Map<string, number>();
  for (const t of tasks) {
    desiredGlobal.set(t.ServiceID, (desiredGlobal.get(t.ServiceID) ?? 0) + 1);
    if (t.Status?.State === 'running') running.set(t.ServiceID, (running.get(t.ServiceID) ?? 0) + 1);
  }
  const out: Omit<ClusterStatus, 'raft'> = {
    cluster,
    swarmId: swarm.ID,
    manager: managerName,
    nodes: nodes
      .map((n) => ({
        name: n.Spec?.Labels?.[HOST_LABEL] ?? n.Description?.Hostname ?? n.ID,
        hostname: n.Description?.Hostname ?? '',
        id: n.ID,
        role: n.Spec?.Role ?? '',
        state: cap(n.Status?.State ?? ''),
        availability: cap(n.Spec?.Availability ?? ''),
        managerStatus: n.ManagerStatus ? (n.ManagerStatus.Leader ? 'Leader' : cap(n.ManagerStatus.Reachability ?? '')) : '',
        address: n.Status?.Addr ?? '',
        engineVersion: n.Description?.Engine?.EngineVersion ?? '',
      }))
      .sort((a, b) => naturalOrder.compare(a.name, b.name)),
    services: services
      .map((s) => {
        const global = Boolean(s.Spec.Mode?.Global);
        return {
          name: s.Spec.Name,
          mode: global ? 'global' : 'replicated',
          running: running.get(s.ID) ?? 0,
          desired: global ? (desiredGlobal.get(s.ID) ?? 0) : (s.Spec.Mode?.Replicated?.Replicas ?? 0),
          image: s.Spec.TaskTemplate?.ContainerSpec?.Image ?? '',
          ports: (s.Endpoint?.Ports ?? s.Spec.EndpointSpec?.Ports ?? [])
            .map((p) => `*:${p.PublishedPort}->${p.TargetPort}/${p.Protocol}${p.PublishMode === 'host' ? ' (host)' : ''}`)
            .join(', '),
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name)),
  };
  return { ...out, raft: raftSummary(out.nodes) };
}

/** One collator for every sort: `localeCompare` with options builds one per call (0.8 s for 4,700 nodes). */
const naturalOrder = new Intl.Collator(undefined, { numeric: true });

function cap(s: string): string {
  return s ? s[0]!.toUpperCase() + s.slice(1) : s;
}

interface RawNode {
  ID: string;
  Spec?: { Role?: string; Availability?: string; Labels?: Record<string, string> };
  Description?: { Hostname?: string; Engine?: { EngineVersion?: string } };
  Status?: { State?: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean; Reachability?: string; Addr?: string };
}
interface Port {
  Protocol: string;
  TargetPort: number;
  PublishedPort: number;
  PublishMode?: string;
}
interface RawService {
  ID: string;
  Spec: {
    Name: string;
    Mode?: { Replicated?: { Replicas?: number }; Global?: object };
    TaskTemplate?: { ContainerSpec?: { Image?: string } };
    EndpointSpec?: { Ports?: Port[] };
  };
  Endpoint?: { Ports?: Port[] };
}
interface RawTask {
  ServiceID: string;
  Status?: { State?: string };
}
