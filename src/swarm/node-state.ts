/** What a host's engine says about its own swarm membership (`docker info`). */
import type Docker from 'dockerode';

export type LocalNodeState = 'inactive' | 'pending' | 'active' | 'error' | 'locked';

export interface LocalSwarm {
  state: LocalNodeState;
  nodeId?: string;
  /** Only managers know the cluster id. */
  clusterId?: string;
  isManager: boolean;
  /** Managers this node talks to (workers report these). */
  remoteManagers: { NodeID: string; Addr: string }[];
  error?: string;
}

/** Reads the engine's swarm section of `docker info`. */
export async function localSwarm(docker: Docker): Promise<LocalSwarm> {
  const info = (await docker.info()) as {
    Swarm?: {
      LocalNodeState?: LocalNodeState;
      NodeID?: string;
      ControlAvailable?: boolean;
      Cluster?: { ID?: string };
      RemoteManagers?: { NodeID: string; Addr: string }[] | null;
      Error?: string;
    };
  };
  const s = info.Swarm ?? {};
  return {
    state: s.LocalNodeState ?? 'inactive',
    nodeId: s.NodeID || undefined,
    clusterId: s.Cluster?.ID || undefined,
    isManager: Boolean(s.ControlAvailable),
    remoteManagers: s.RemoteManagers ?? [],
    error: s.Error || undefined,
  };
}
