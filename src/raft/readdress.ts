/**
 * Gives a restored manager its own address in the Raft group.
 *
 * A swarm state restored onto another host keeps the source host's address as its one Raft member's address:
 * `swarm init --force-new-cluster --advertise-addr NEW` rebuilds the group from the stored member list and does not
 * change it (docker/for-linux#523; Docker's admin guide restores onto the same IP only). Measured on the lab with
 * Engine 20.10: after restoring mgr-2's state onto mgr-1, `ManagerStatus.Addr` of mgr-1 is still mgr-2's address; a
 * manager that joins next is handed that address, sends its Raft replies there, and the leader loses its quorum.
 *
 * SwarmKit writes a new address only for a member that joins Raft anew, so the restored node must leave the group
 * and come back, which needs a second manager to hold the group meanwhile:
 *   1. a helper host with a fresh engine gets a DNAT rule (its own outgoing traffic to the stale address goes to the
 *      restored host) and joins as a second manager: its Raft messages to "the stale address" now arrive;
 *   2. the restored node is demoted (SwarmKit moves leadership to the helper first) and promoted again: it rejoins
 *      Raft as a new member advertising its own address (its node id and the swarm's data stay);
 *   3. the rule goes, the helper is demoted through the restored node, leaves, and its node entry is removed.
 * Each Raft change is confirmed (the expected managers, a leader, all reachable) before the next.
 */
import type Docker from 'dockerode';
import { HostStepError, SwarmformError } from '../base/errors.js';
import { pollUntil } from '../run/poll.js';
import { joinPrepared } from '../swarm/join-node.js';
import { managerEndpoint, type Member } from '../swarm/members.js';
import { localSwarm } from '../swarm/node-state.js';
import { HOST_LABEL } from '../swarm/node-settings.js';
import { shq } from '../remote/remote.js';
import { confirmGroup, listNodes, raftMembers, removeNode, setLabel, setRole } from './nodes.js';

export type StepRunner = <T>(host: string, name: string, fn: () => Promise<T>, ok?: (v: T) => string) => Promise<T>;

/** Where an address is used, for the error when it is not one. */
export interface AddrUse {
  host: string;
  step: string;
}

/** Splits `host:port` (IPv6 in brackets or bare) into its parts; `use` names the host and step in the error. */
export function splitAddr(addr: string, use?: AddrUse): { ip: string; port: string } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(addr);
  if (!m) {
    const message = `not an address with a port: ${addr}`;
    throw use ? new HostStepError(use.host, use.step, message) : new SwarmformError(message);
  }
  return { ip: m[1]!, port: m[2]! };
}

/** The tool that handles rules for `addr`'s family. */
function natTool(addr: string, use?: AddrUse): 'iptables' | 'ip6tables' {
  return splitAddr(addr, use).ip.includes(':') ? 'ip6tables' : 'iptables';
}

/** The iptables command that sends the helper's own connections to `stale` on to `target` (`-I` adds, `-D` removes). */
export function redirectRule(op: '-I' | '-D', stale: string, target: string): string {
  const s = splitAddr(stale);
  const t = splitAddr(target);
  const tool = natTool(stale);
  const to = tool === 'ip6tables' ? `[${t.ip}]:${t.port}` : `${t.ip}:${t.port}`;
  return `${tool} -w -t nat ${op} OUTPUT -p tcp -d ${shq(s.ip)} --dport ${s.port} -j DNAT --to-destination ${shq(to)}`;
}

export interface ReaddressOptions {
  target: Member;
  targetNodeId: string;
  helper: Member;
  /** The Raft address the restored state carries (host:port). */
  stale: string;
  managerToken: string;
  step: StepRunner;
  signal?: AbortSignal;
}

/** Runs the dance above; returns the target's Raft address afterwards. */
export async function readdressRestored(o: ReaddressOptions): Promise<string> {
  const { target, helper, step } = o;
  const tName = target.machine.name;
  const hName = helper.machine.name;
  const want = managerEndpoint(target);
  const tEngine = target.remote.engine();
  const hEngine = helper.remote.engine();
  const both = new Set([tName, hName]);
  const engines = (names: string[]): { name: string; engine: Docker }[] =>
    names.map((n) => ({ name: n, engine: n === tName ? tEngine : hEngine }));

  await step(hName, 'redirect stale address', async () => {
    const tool = natTool(o.stale, { host: hName, step: 'redirect stale address' });
    const has = await helper.remote.run(`command -v ${tool}`);
    if (has.code !== 0) {
      throw new HostStepError(hName, 'redirect stale address', `${tool} is not installed: it is needed for a moment to move the restored manager to its own address`);
    }
    await helper.remote.check(redirectRule('-I', o.stale, want), 'redirect stale address');
  }, () => `${o.stale} -> ${want} for this host's own connections, for the next steps only`);
  let helperId = '';
  try {
    helperId = await step(hName, 'join as helper manager', async () => {
      const r = await joinPrepared(helper, target, o.managerToken, 'join as helper manager');
      await setLabel(tEngine, r.nodeId, HOST_LABEL, hName);
      await confirmGroup(engines([tName, hName]), { managers: both, host: hName, step: 'join as helper manager' }, 90_000, o.signal);
      return r.nodeId;
    }, () => `second manager, holding the group while ${tName} rejoins`);

    await step(tName, 'demote restored manager', async () => {
      await setRole(hEngine, o.targetNodeId, 'worker');
      await confirmGroup(engines([hName]), { managers: new Set([hName]), host: tName, step: 'demote restored manager' }, 90_000, o.signal);
      await pollUntil(async () => {
        const n = (await listNodes(hEngine)).find((x) => x.ID === o.targetNodeId);
        const s = await localSwarm(tEngine);
        return n?.Status?.State === 'ready' && !n.ManagerStatus && s.state === 'active' && !s.isManager ? true : undefined;
      }, {
        timeoutMs: 90_000, intervalMs: 500, signal: o.signal,
        onTimeout: () => new HostStepError(tName, 'demote restored manager', 'the node did not come back as a Ready worker within 90 s'),
      });
    }, () => `left the Raft group (leadership moved to ${hName})`);

    await step(tName, 'promote restored manager', async () => {
      await setRole(hEngine, o.targetNodeId, 'manager');
      const members = await confirmGroup(engines([hName, tName]), { managers: both, host: tName, step: 'promote restored manager' }, 90_000, o.signal);
      const addr = members.find((m) => m.host === tName)?.addr;
      if (addr !== want) throw new HostStepError(tName, 'promote restored manager', `rejoined Raft with address ${addr ?? 'none'}, not ${want}`);
    }, () => `rejoined Raft at ${want}`);
  } finally {
    await step(hName, 'remove redirect', () => helper.remote.check(`while ${redirectRule('-D', o.stale, want)} 2>/dev/null; do :; done`, 'remove redirect'), () => 'rule removed');
  }

  await step(hName, 'remove helper manager', async () => {
    await setRole(tEngine, helperId, 'worker');
    await confirmGroup(engines([tName]), { managers: new Set([tName]), host: hName, step: 'remove helper manager' }, 90_000, o.signal);
    await pollUntil(async () => ((await localSwarm(hEngine)).isManager ? undefined : true), {
      timeoutMs: 60_000, intervalMs: 500, signal: o.signal,
      onTimeout: () => new HostStepError(hName, 'remove helper manager', 'the engine still runs its manager 60 s after the demotion'),
    });
    await hEngine.swarmLeave({ force: true });
    // Forced: the swarm marks a node that left Down only after its heartbeat expires (about 45 s on the lab).
    await removeNode(tEngine, helperId);
  }, () => 'demoted, left the swarm, node entry removed');

  const self = raftMembers(await listNodes(tEngine)).find((m) => m.nodeId === o.targetNodeId);
  if (self?.addr !== want || !self.leader) {
    throw new HostStepError(tName, 'readdress', `after the moves the restored manager is ${self ? `at ${self.addr}${self.leader ? '' : ', not the leader'}` : 'not a manager'}`);
  }
  return self.addr;
}
