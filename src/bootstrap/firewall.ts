/** Opens the swarm ports (2377/tcp, 7946/tcp+udp, 4789/udp, ESP) to cluster members only, with the host's own tool. */
import { HostStepError } from '../base/errors.js';
import type { Remote } from '../remote/remote.js';
import type { FirewallTool, HostFacts } from './facts.js';
import { render } from './templates.js';

/** The rules, as people read them, for `plan` and docs. */
export const SWARM_PORTS = [
  { port: '2377', protocol: 'tcp', why: 'cluster management (managers)' },
  { port: '7946', protocol: 'tcp', why: 'node gossip' },
  { port: '7946', protocol: 'udp', why: 'node gossip' },
  { port: '4789', protocol: 'udp', why: 'overlay network traffic (VXLAN, never open to the world)' },
] as const;

/** Where the rules of kernel-only tools are kept on systemd hosts, to be re-applied at boot. */
const PERSIST_SCRIPT = '/etc/swarmform/firewall.sh';
const PERSIST_UNIT = '/etc/systemd/system/swarmform-firewall.service';

/** What a host shows of swarmform's rules, per tool: compared before and after to tell whether anything changed. */
export function firewallObservation(tool: FirewallTool): string {
  switch (tool) {
    case 'ufw':
      return 'ufw status 2>/dev/null | grep swarmform';
    case 'firewalld':
      return 'cat /etc/swarmform/firewalld.rules 2>/dev/null';
    default:
      return 'iptables -S SWARMFORM 2>/dev/null; nft list table inet swarmform 2>/dev/null';
  }
}

/**
 * Applies the rules for the member CIDRs; the scripts are idempotent (they rewrite swarmform's own chain, table or
 * tagged rules). iptables and nftables rules live in the kernel only: on a systemd host the script is also kept with
 * a unit that runs it at boot, before the engine, so a rebooted node is not open to everyone (nor shut to members).
 */
export async function openSwarmPorts(remote: Remote, facts: Pick<HostFacts, 'firewall' | 'init'>, sources: string[]): Promise<string> {
  const tool = facts.firewall;
  if (tool === 'none') return 'no firewall tool found on the host: nothing to open';
  if (sources.length === 0) throw new HostStepError(remote.name, 'firewall', 'no cluster member addresses to allow');
  const script = render(`firewall/${tool}.sh.njk`, { sources });
  if ((tool === 'nftables' || tool === 'iptables') && facts.init === 'systemd') {
    const have = await remote.run(`cat ${PERSIST_SCRIPT} 2>/dev/null; echo; cat ${PERSIST_UNIT} 2>/dev/null`);
    const unit = render('firewall/persist.service.njk', { tool, script: PERSIST_SCRIPT });
    if (have.stdout !== `${script}\n${unit}`) {
      await remote.check('mkdir -p /etc/swarmform', 'firewall');
      await remote.putContent(script, PERSIST_SCRIPT, 0o700);
      await remote.putContent(unit, PERSIST_UNIT, 0o644);
      await remote.check('systemctl daemon-reload && systemctl enable swarmform-firewall.service >/dev/null 2>&1', 'firewall');
    }
  }
  await remote.check(script, 'firewall');
  return `${tool}: swarm ports open to ${sources.length} member block(s)${facts.init === 'systemd' && (tool === 'nftables' || tool === 'iptables') ? ', kept across reboots' : ''}`;
}

/** Removes what openSwarmPorts added, and the boot-time unit. */
export async function closeSwarmPorts(remote: Remote, tool: FirewallTool): Promise<void> {
  if (tool !== 'none') await remote.run(render(`firewall/${tool}-remove.sh.njk`, {}));
  await remote.run(render('firewall/persist-remove.sh.njk', {}));
}
