/** The swarm's node list as the Raft group sees it: which nodes are managers, who leads, who is reachable. */
import type Docker from 'dockerode';
import { HostStepError, SwarmformError } from '../base/errors.js';
import { pollUntil } from '../run/poll.js';
import { sleep } from '../run/retry.js';
import { HOST_LABEL, isOutOfSequence } from '../swarm/node-settings.js';
import { withTimeout } from '../run/timeout.js';

export interface SwarmNode {
  ID: string;
  Version: { Index: number };
  Spec: { Role?: string; Availability?: string; Labels?: Record<string, string>; Name?: string };
  Description?: { Hostname?: string };
  Status?: { State?: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean; Reachability?: string; Addr?: string };
}

/** The inventory host of a node: its `swarmform.host` label, else its hostname. */
export function hostOf(n: SwarmNode): string {
  return n.Spec.Labels?.[HOST_LABEL] ?? n.Description?.Hostname ?? n.ID;
}

/** A manager in the Raft group (a node with a manager status). */
export interface RaftMember {
  host: string;
  nodeId: string;
  leader: boolean;
  reachable: boolean;
  /** The Raft address, host:2377. */
  addr: string;
}

/** Managers of the Raft group, from one node list. */
export function raftMembers(nodes: SwarmNode[]): RaftMember[] {
  return nodes
    .filter((n) => n.ManagerStatus)
    .map((n) => ({
      host: hostOf(n),
      nodeId: n.ID,
      leader: Boolean(n.ManagerStatus!.Leader),
      reachable: n.ManagerStatus!.Reachability === 'reachable',
      addr: n.ManagerStatus!.Addr ?? '',
    }));
}

export async function listNodes(engine: Docker): Promise<SwarmNode[]> {
  return (await engine.listNodes()) as SwarmNode[];
}

/** The engine's own node. */
export async function selfNode(engine: Docker): Promise<SwarmNode> {
  const info = (await engine.info()) as { Swarm?: { NodeID?: string } };
  return (await engine.getNode(info.Swarm!.NodeID!).inspect()) as SwarmNode;
}

/**
 * Updates a node's spec to `change(spec)` (undefined: nothing to do), reading its version again when another write
 * got in first ("update out of sequence"), at most 5 times.
 */
export async function updateNodeSpec(engine: Docker, nodeId: string, change: (spec: SwarmNode['Spec']) => SwarmNode['Spec'] | undefined): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const node = (await engine.getNode(nodeId).inspect()) as SwarmNode;
    const spec = change(node.Spec);
    if (!spec) return;
    try {
      await engine.getNode(nodeId).update({ _query: { version: node.Version.Index }, _body: spec });
      return;
    } catch (err) {
      if (attempt >= 5 || !isOutOfSequence(err)) throw err;
      await sleep(200 * attempt);
    }
  }
}

/** Sets a node's role (promote or demote). */
export function setRole(engine: Docker, nodeId: string, role: 'manager' | 'worker'): Promise<void> {
  return updateNodeSpec(engine, nodeId, (spec) => (spec.Role === role ? undefined : { ...spec, Role: role }));
}

/** Sets one label on a node. */
export function setLabel(engine: Docker, nodeId: string, key: string, value: string): Promise<void> {
  return updateNodeSpec(engine, nodeId, (spec) => (spec.Labels?.[key] === value ? undefined : { ...spec, Labels: { ...(spec.Labels ?? {}), [key]: value } }));
}

/** Removes a node from the swarm (`docker node rm --force`); a node already gone is fine. */
export async function removeNode(engine: Docker, nodeId: string): Promise<void> {
  try {
    await engine.getNode(nodeId).remove({ force: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
}

/**
 * Waits until the Raft group, read through any of `engines` that answers as a manager, has exactly the managers
 * `expect`, a leader, and every one of them reachable. Returns the confirmed members.
 */
export async function confirmGroup(
  engines: { name: string; engine: Docker }[],
  expect: { managers: Set<string>; host: string; step: string },
  timeoutMs = 90_000,
  signal?: AbortSignal,
): Promise<RaftMember[]> {
  let seen = '';
  let steady = 0;
  return pollUntil(
    async () => {
      for (const e of engines) {
        let nodes: SwarmNode[];
        try {
          nodes = await withTimeout(listNodes(e.engine), 5000, `${e.name}: no answer`);
        } catch {
          continue;
        }
        const members = raftMembers(nodes);
        seen = members.map((m) => `${m.host}${m.leader ? ' (leader)' : m.reachable ? '' : ' (unreachable)'}`).join(', ');
        const names = new Set(members.map((m) => m.host));
        const ok =
          names.size === expect.managers.size &&
          [...expect.managers].every((h) => names.has(h)) &&
          members.some((m) => m.leader) &&
          members.every((m) => m.reachable || m.leader);
        // Settled means the same answer on two reads a poll apart: one read can land between the store's change
        // and the Raft round that follows it, and the next change must not start in that window.
        if (!ok) {
          steady = 0;
          return undefined;
        }
        return ++steady >= 2 ? members : undefined;
      }
      steady = 0;
      return undefined;
    },
    {
      timeoutMs,
      intervalMs: 400,
      signal,
      onTimeout: () =>
        new HostStepError(expect.host, expect.step, `the managers did not settle as ${[...expect.managers].join(', ')} with a leader within ${timeoutMs / 1000} s (last seen: ${seen || 'no answer'})`, {
          hint: 'check `swarmform raft status` and 2377/tcp between the managers',
        }),
    },
  );
}

/** The first engine in `engines` whose node list answers, with that list; throws naming each one's problem. */
export async function firstAnswering(engines: { name: string; engine: Docker }[], timeoutMs = 5000): Promise<{ name: string; engine: Docker; nodes: SwarmNode[] }> {
  const results = await Promise.allSettled(engines.map((e) => withTimeout(listNodes(e.engine), timeoutMs, `${e.name}: the engine did not answer in ${timeoutMs / 1000} s`)));
  const errors: string[] = [];
  let best: { name: string; engine: Docker; nodes: SwarmNode[] } | undefined;
  results.forEach((r, i) => {
    const e = engines[i]!;
    if (r.status === 'fulfilled') {
      const selfLeader = r.value.some((n) => n.ManagerStatus?.Leader && hostOf(n) === e.name);
      if (!best || selfLeader) best = { ...e, nodes: r.value };
    } else errors.push(`${e.name}: ${errorText(r.reason)}`);
  });
  if (!best) throw new SwarmformError(`no manager could list the swarm's nodes:\n  ${errors.join('\n  ') || 'no manager answered'}`);
  return best;
}

/** The Engine API's message of an error (dockerode puts it in `json.message`). */
export function errorText(err: unknown): string {
  const e = err as { json?: { message?: string }; message?: string };
  return (e?.json?.message ?? e?.message ?? String(err)).trim();
}
