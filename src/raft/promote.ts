/**
 * Promoting a worker so that it actually reaches the Raft group.
 *
 * A promoted worker joins the Raft group through the address it first joined the swarm by (Engine 20.10 keeps it as
 * `RemoteAddr` in /var/lib/docker/swarm/docker-state.json, across restarts). When that manager is gone (dead, removed,
 * or demoted since), the promoted node dials it, fails ("can't initialize raft node"), restarts into the same address
 * and stays in state `error` for good: moby#47854, fixed only in Engine 23 and later. So before promoting, read that
 * address; when it is not a manager that answers now, the node leaves and joins again as a manager through one that
 * does, keeping its labels and availability. Otherwise promote as `docker node promote` does.
 */
import type Docker from 'dockerode';
import { HostStepError } from '../base/errors.js';
import type { Member } from '../swarm/members.js';
import { joinNode } from '../swarm/join-node.js';
import { HOST_LABEL } from '../swarm/node-settings.js';
import { confirmGroup, removeNode, setRole, type RaftMember, type SwarmNode, updateNodeSpec } from './nodes.js';
import { withTimeout } from '../run/timeout.js';

const DOCKER_STATE = '/var/lib/docker/swarm/docker-state.json';

/** The manager address a node's engine would dial to (re)join, from docker-state.json; undefined when unknown. */
export async function joinAddressOf(m: Member): Promise<string | undefined> {
  const r = await withTimeout(m.remote.run(`cat ${DOCKER_STATE} 2>/dev/null`), 10_000, 'no answer').catch(() => undefined);
  if (!r || r.code !== 0) return undefined;
  try {
    const addr = (JSON.parse(r.stdout) as { RemoteAddr?: string }).RemoteAddr;
    return addr || undefined;
  } catch {
    return undefined;
  }
}

/** The host part of host:port (IPv6 in brackets or not). */
export function hostPart(addr: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(addr) ?? /^([^:]+)(?::\d+)?$/.exec(addr);
  return m ? m[1]! : addr;
}

/** Whether `joinAddr` names one of the managers that answer now (leader or reachable). */
export function joinsThroughLiveManager(joinAddr: string | undefined, members: RaftMember[]): boolean {
  if (!joinAddr) return true; // unknown (another engine layout): promote and let confirmation judge
  const live = new Set(members.filter((m) => m.leader || m.reachable).map((m) => hostPart(m.addr)));
  return live.has(hostPart(joinAddr));
}

export interface PromoteArgs {
  /** The worker to promote, with its SSH-backed engine. */
  candidate: Member;
  node: SwarmNode;
  /** A manager's engine to change the swarm through. */
  engine: Docker;
  /** A manager that answers, to join through when the node must join again. */
  via: Member;
  /** The managers now (from a fresh node list). */
  members: RaftMember[];
  /** Engines to read the Raft group through while confirming. */
  engines: { name: string; engine: Docker }[];
  /** The managers expected afterwards (the candidate included). */
  managers: Set<string>;
  step: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * Promotes `node` and waits until the Raft group is `managers` with a leader. Returns how: `promoted`, or `rejoined`
 * (left and joined again as a manager because its join address was not a live manager; its node ID changes).
 */
export async function promoteWorker(a: PromoteArgs): Promise<{ how: 'promoted' | 'rejoined'; nodeId: string; joinAddr?: string }> {
  const host = a.candidate.machine.name;
  const joinAddr = await joinAddressOf(a.candidate);
  if (joinsThroughLiveManager(joinAddr, a.members)) {
    await setRole(a.engine, a.node.ID, 'manager');
    await confirmGroup(a.engines, { managers: a.managers, host, step: a.step }, a.timeoutMs ?? 90_000, a.signal);
    return { how: 'promoted', nodeId: a.node.ID };
  }
  const sw = (await a.engine.swarmInspect()) as { JoinTokens: { Manager: string } };
  await a.candidate.remote.engine().swarmLeave({ force: true });
  await removeNode(a.engine, a.node.ID);
  const r = await joinNode(a.candidate, a.via, sw.JoinTokens.Manager, { clusterNodeIds: new Set(), force: false, step: a.step });
  await copySpec(a.engine, r.nodeId, a.node, host);
  await confirmGroup(a.engines, { managers: a.managers, host, step: a.step }, a.timeoutMs ?? 90_000, a.signal);
  return { how: 'rejoined', nodeId: r.nodeId, joinAddr };
}

/** Gives the rejoined node the labels and availability the old node had (a new node starts with none). */
async function copySpec(engine: Docker, nodeId: string, old: SwarmNode, host: string): Promise<void> {
  try {
    await updateNodeSpec(engine, nodeId, (spec) => ({ ...spec, Labels: { ...(old.Spec.Labels ?? {}), [HOST_LABEL]: host }, Availability: old.Spec.Availability ?? 'active' }));
  } catch (err) {
    throw new HostStepError(host, 'promote manager', `rejoined, but its labels could not be restored: ${(err as Error).message}`, { cause: err });
  }
}

/** The step's success message. */
export function promoteMessage(r: { how: 'promoted' | 'rejoined'; joinAddr?: string }, managers: number): string {
  return r.how === 'promoted'
    ? `promoted: ${managers} managers, all reachable`
    : `rejoined as a manager (its join address ${r.joinAddr} is no longer a manager, which Engine 20.10 cannot promote through; labels kept, new node ID): ${managers} managers, all reachable`;
}
