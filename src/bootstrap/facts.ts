/** Host facts gathered in one SSH round trip: OS family, init system, engine presence, firewall tool. */
import type { Remote } from '../remote/remote.js';
import { readTemplate } from './templates.js';

export type OsFamily = 'debian' | 'rhel' | 'alpine' | 'unknown';
export type FirewallTool = 'ufw' | 'firewalld' | 'iptables' | 'nftables' | 'none';

export interface HostFacts {
  osId: string;
  osFamily: OsFamily;
  osVersion: string;
  /** VERSION_CODENAME (bookworm, trixie, jammy...); empty when the OS does not say. */
  osCodename: string;
  arch: string;
  init: 'systemd' | 'openrc' | 'sysv' | 'none';
  hostname: string;
  enginePath?: string;
  engineVersion?: string;
  engineRunning: boolean;
  /** Id (checksum) of the swarmform bundle installed on the host, if any. */
  bundleSha?: string;
  /** The host can decompress zstd (bundles then travel as .tar.zst). */
  zstd: boolean;
  firewall: FirewallTool;
  addresses: string[];
}

/** Runs the facts script on the host and parses its key=value lines. */
export async function gatherFacts(remote: Remote): Promise<HostFacts> {
  const out = await remote.check(readTemplate('bootstrap/facts.sh'), 'facts');
  return parseFacts(out);
}

/** Parses the facts script's output; exported for unit tests. */
export function parseFacts(out: string): HostFacts {
  const kv = new Map<string, string>();
  const addresses: string[] = [];
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1).trim();
    if (k === 'address') {
      if (v) addresses.push(v);
    } else kv.set(k, v);
  }
  const osId = kv.get('os_id') ?? 'unknown';
  const like = `${osId} ${kv.get('os_like') ?? ''}`;
  const osFamily: OsFamily = /debian|ubuntu/.test(like)
    ? 'debian'
    : /rhel|fedora|centos/.test(like)
      ? 'rhel'
      : /alpine/.test(like)
        ? 'alpine'
        : 'unknown';
  const init = kv.get('init');
  const fw = kv.get('firewall');
  return {
    osId,
    osFamily,
    osVersion: kv.get('os_version') ?? '',
    osCodename: kv.get('os_codename') ?? '',
    arch: kv.get('arch') ?? '',
    init: init === 'systemd' || init === 'openrc' || init === 'sysv' ? init : 'none',
    hostname: kv.get('hostname') ?? '',
    enginePath: kv.get('engine_path') || undefined,
    engineVersion: kv.get('engine_version') || undefined,
    engineRunning: kv.get('engine_running') === 'yes',
    bundleSha: kv.get('bundle_sha') || undefined,
    zstd: kv.get('zstd') === 'yes',
    firewall: fw === 'ufw' || fw === 'firewalld' || fw === 'iptables' || fw === 'nftables' ? fw : 'none',
    addresses,
  };
}
