/**
 * The fault campaign of issue 14 on the simulated Swarm3k inventory, shared by test/integration/sim-faults.test.ts
 * and bench/sim-faults-bench.ts: 2 % of hosts unreachable over SSH for a whole run, 1 % of joins timing out (they
 * complete in the background), a manager's engine lost after 1,500 worker joins, and a provider that throttles
 * (its token bucket holds one call, so concurrent create calls get HTTP 429 and are retried).
 */

/**
 * The shipped inventory's text under another cluster name, faults unchanged (the clean run). Both runs wait 30 s
 * for an unreachable sshd (`ssh.connectTimeout`) instead of the default 120 s, which is sized for cloud images whose
 * sshd starts up to two minutes after the machine runs: the simulated machines boot in about a second, and a host
 * that does not answer holds the bootstrap phase for that long (hosts that finished do not go on to join meanwhile).
 */
export function cleanInventory(text: string, cluster: string, o: CampaignOptions = {}): string {
  const connectTimeout = o.connectTimeout ?? 30;
  let out = text.replace(/^cluster: sim3k$/m, `cluster: ${cluster}`).replace(/^ssh:\n  user: root$/m, `ssh:\n  user: root\n  connectTimeout: ${connectTimeout}`);
  if (!out.includes(`cluster: ${cluster}`) || !out.includes(`connectTimeout: ${connectTimeout}`)) throw new Error('inventories/sim-swarm3k.yml changed: no `cluster: sim3k` line or `ssh:` block to edit');
  if (o.timeScale !== undefined) {
    const scaled = out.replace(/^(\s+)timeScale: [\d.]+/m, `$1timeScale: ${o.timeScale}`);
    if (scaled === out && !out.includes(`timeScale: ${o.timeScale}`)) throw new Error('inventories/sim-swarm3k.yml changed: no timeScale to set');
    out = scaled;
  }
  return out;
}

export interface CampaignOptions {
  /** `ssh.connectTimeout` of both runs (default 30). */
  connectTimeout?: number;
  /** `providers.sim.timeScale` of both runs (default: the shipped inventory's, 0.01). */
  timeScale?: number;
}

/** The same inventory with the campaign's faults switched on. */
export function faultyInventory(text: string, cluster: string, o: CampaignOptions = {}): string {
  const edits: [RegExp, string][] = [
    [/^(\s+)like: digitalocean(.*)$/m, '$1like: digitalocean$2\n$1burst: 1'],
    [/^(\s+)(mirrorConcurrency: .*)$/m, '$1$2\n    ssh:\n      failShare: 0.02'],
    [/^(\s+)timeoutShare: 0 .*$/m, '$1timeoutShare: 0.01\n$1managerLossAfter: 1500'],
  ];
  let out = cleanInventory(text, cluster, o);
  for (const [re, to] of edits) {
    if (!re.test(out)) throw new Error(`inventories/sim-swarm3k.yml changed: ${re} not found`);
    out = out.replace(re, to);
  }
  return out;
}
