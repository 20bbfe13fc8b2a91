/** Opens the swarm ports (2377/tcp, 7946/tcp+udp, 4789/udp, ESP) to cluster members only, with the host's own tool. */
import { HostStepError } from '../core/errors.js';
import type { Remote } from '../remote/remote.js';
import type { FirewallTool } from './facts.js';
import { render } from './templates.js';

/** The rules, as people read them, for `plan` and docs. */
export const SWARM_PORTS = [
  { port: '2377', protocol: 'tcp', why: 'cluster management (managers)' },
  { port: '7946', protocol: 'tcp', why: 'node gossip' },
  { port: '7946', protocol: 'udp', why: 'node gossip' },
  { port: '4789', protocol: 'udp', why: 'overlay network traffic (VXLAN, never open to the world)' },
] as const;

/** Applies the rules for the member CIDRs; the scripts are idempotent (they rewrite swarmform's own chain/zone/table). */
export async function openSwarmPorts(remote: Remote, tool: FirewallTool, sources: string[]): Promise<string> {
  if (tool === 'none') return 'no firewall tool found on the host: nothing to open';
  if (sources.length === 0) throw new HostStepError(remote.name, 'firewall', 'no cluster member addresses to allow');
  await remote.check(render(`firewall/${tool}.sh.njk`, { sources }), 'firewall');
  return `${tool}: swarm ports open to ${sources.length} member block(s)`;
}

/** Removes what openSwarmPorts added. */
export async function closeSwarmPorts(remote: Remote, tool: FirewallTool): Promise<void> {
  if (tool === 'none') return;
  await remote.run(render(`firewall/${tool}-remove.sh.njk`, {}));
}
